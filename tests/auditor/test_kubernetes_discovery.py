"""Discovery against real API servers (two clusters) with objects in several namespaces:
orphans, drift, retired and violations are found; pod facts (image digests) are attached to
their controllers; KServe resources are listed once the CRD exists; paging works; an
unreachable cluster is reported and the scan goes on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from auditor.discovery import create_sources
from auditor.discovery.kubernetes import KubernetesSource
from auditor.reconcile import Reconciler
from modelgate.cli import main
from modelgate.inventory import audit, queries
from modelgate.inventory.db import Database
from modelgate.inventory.records import FindingRecord, jsonable
from policies.engines import PolicyEngine
from tests.fixtures.cluster import Cluster, running_cluster
from tests.fixtures.inventory import admit, certs, deployment, in_days, metadata, namespace
from tests.fixtures.tools import free_port

pytestmark = pytest.mark.e2e

NS_A1, NS_A2, NS_B = "aud-risk", "aud-growth", "aud-prod"
DIGEST = "sha256:" + "ab" * 32


def _expired_model() -> dict[str, Any]:
    obj = deployment(
        "underwriter",
        NS_A1,
        image="registry.example.com/underwriter:5.0",
        annotations=metadata(
            model_name="underwriter",
            model_version="5.0",
            risk_tier="high",
            model_card="https://models.example.com/underwriter",
            certifications=certs(("EU-AI-Act", in_days(-3))),
        ),
    )
    obj["kind"] = "StatefulSet"
    obj["spec"]["serviceName"] = "underwriter"
    return obj


def _pod(
    name: str, ns: str, owner: dict[str, str] | None, image: str, model: bool
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": {}}
    if model:
        meta["labels"]["modelgate.dev/model"] = "true"
        meta["annotations"] = metadata(model_name=name, model_version="0.1")
    if owner:
        meta["ownerReferences"] = [{**owner, "controller": True}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "server", "image": image}]},
    }


def _owner(cluster: Cluster, api_version: str, kind: str, name: str, ns: str) -> dict[str, str]:
    obj = cluster.get_json(kind.lower(), name, "-n", ns)
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": obj["metadata"]["uid"]}


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Cluster]]:
    """Two control planes of our own (``start_cluster``), named ``a`` and ``b``: the CRDs and
    objects created here cannot meet other suites' webhooks or CRDs on the shared clusters."""
    with (
        running_cluster(tmp_path_factory.mktemp("audit-a"), "a") as a,
        running_cluster(tmp_path_factory.mktemp("audit-b"), "b") as b,
    ):
        yield a, b


@pytest.fixture(scope="module")
def populated(clusters: tuple[Cluster, Cluster]) -> tuple[Cluster, Cluster]:
    a, b = clusters
    a.apply([namespace(NS_A1, {"team": "risk"}), namespace(NS_A2)])
    b.apply([namespace(NS_B)])
    a.apply(
        [
            deployment(
                "fraud",
                NS_A1,
                image="registry.example.com/fraud:1.1.0",
                annotations=metadata(model_version="1.1.0"),
            ),
            _expired_model(),
            deployment("web", NS_A1, image="nginx:1.27", model=False),
            deployment(
                "recsys",
                NS_A2,
                image="registry.example.com/recsys:2.0",
                annotations=metadata(model_name="recsys", model_version="2.0"),
            ),
            deployment(
                "ranker",
                NS_A2,
                image="registry.example.com/ranker:1.0",
                annotations=metadata(model_name="ranker", model_version="1.0"),
            ),
        ]
    )
    # a ReplicaSet + pod of "fraud" (no controller-manager runs: created by hand) with a status
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "fraud-7d9f",
            "namespace": NS_A1,
            "labels": {"app": "fraud"},
            "ownerReferences": [
                {**_owner(a, "apps/v1", "Deployment", "fraud", NS_A1), "controller": True}
            ],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "fraud"}},
            "template": {
                "metadata": {"labels": {"app": "fraud"}},
                "spec": {
                    "containers": [{"name": "server", "image": "registry.example.com/fraud:1.1.0"}]
                },
            },
        },
    }
    a.apply(rs)
    a.apply(
        _pod(
            "fraud-7d9f-x1",
            NS_A1,
            _owner(a, "apps/v1", "ReplicaSet", "fraud-7d9f", NS_A1),
            "registry.example.com/fraud:1.1.0",
            model=False,
        )
    )
    status = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "server",
                    "image": "registry.example.com/fraud:1.1.0",
                    "imageID": f"registry.example.com/fraud@{DIGEST}",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
            ],
        }
    }
    a.kubectl(
        "patch",
        "pod",
        "fraud-7d9f-x1",
        "-n",
        NS_A1,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    # a bare model pod (a notebook serving a model by hand) -> orphan
    a.apply(_pod("notebook-model", NS_A2, None, "pytorch/torchserve:0.11.0", model=True))

    b.apply(
        deployment(
            "b-scorer",
            NS_B,
            image="registry.example.com/scorer:1.0",
            annotations=metadata(model_name="b-scorer", model_version="1.0"),
        )
    )
    return a, b


def _seed(db: Database) -> None:
    admit(
        db,
        "a",
        deployment(
            "fraud", NS_A1, image="registry.example.com/fraud:1.0.0", annotations=metadata()
        ),
    )
    admit(db, "a", _expired_model())
    admit(
        db,
        "a",
        deployment(
            "recsys",
            NS_A2,
            image="registry.example.com/recsys:2.0",
            annotations=metadata(model_name="recsys", model_version="2.0"),
        ),
    )
    admit(
        db,
        "a",
        deployment(
            "gone",
            NS_A2,
            image="registry.example.com/gone:1.0",
            annotations=metadata(model_name="gone-model", model_version="1.0"),
        ),
    )


def _kubeconfig(tmp_path: Path, *clusters: Cluster, dead: bool = True) -> Path:
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    for c in clusters:
        cfg = yaml.safe_load(c.kubeconfig.read_text(encoding="utf-8"))
        for key in ("clusters", "users", "contexts"):
            merged[key].extend(cfg[key])
    if dead:
        first = yaml.safe_load(clusters[0].kubeconfig.read_text(encoding="utf-8"))
        merged["clusters"].append(
            {
                "name": "dead",
                "cluster": {
                    "server": f"https://127.0.0.1:{free_port()}",
                    "certificate-authority": str(clusters[0].ca),
                },
            }
        )
        merged["contexts"].append(
            {"name": "dead", "context": {"cluster": "dead", "user": first["users"][0]["name"]}}
        )
    merged["current-context"] = clusters[0].name
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(merged), encoding="utf-8")
    return path


def _ours(findings: list[FindingRecord]) -> set[tuple[str, str, str]]:
    return {
        (f["cluster"], f["name"], f["type"])
        for f in findings
        if f["namespace"] in (NS_A1, NS_A2, NS_B)
    }


def test_two_clusters_reconciled_and_unreachable_one_reported(
    populated: tuple[Cluster, Cluster], tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    _seed(sqlite_db)
    kubeconfig = _kubeconfig(tmp_path, *populated)
    sources = create_sources(
        "kubernetes",
        {"kubeconfig": kubeconfig, "all_contexts": True, "page_size": 2, "timeout": 5},
    )
    assert [s.cluster for s in sources] == ["a", "b", "dead"]

    result = Reconciler(sqlite_db, engine).scan(sources)

    states = {s.cluster: s.status for s in result.sources}
    assert states == {"a": "ok", "b": "ok", "dead": "unreachable"}
    dead = next(s for s in result.sources if s.cluster == "dead")
    assert dead.error and "unreachable" in dead.error
    notes = " ".join(next(s for s in result.sources if s.cluster == "a").notes)
    assert "KServe not installed" in notes

    found = _ours(audit.scan_findings_of(sqlite_db, result.scan_id))
    assert ("a", "fraud", "drift") in found
    assert ("a", "ranker", "orphan") in found
    assert ("a", "notebook-model", "orphan") in found
    assert ("a", "underwriter", "violation") in found
    # its expired certification is what the violation is about: one finding, not two
    assert ("a", "underwriter", "expiring-certification") not in found
    assert ("a", "gone", "retired") in found
    assert ("b", "b-scorer", "orphan") in found
    assert not any(name in ("web", "fraud-7d9f", "fraud-7d9f-x1") for _, name, _ in found)
    assert ("a", "recsys", "orphan") not in found and ("a", "underwriter", "orphan") not in found
    underwriter = next(
        f
        for f in audit.scan_findings_of(sqlite_db, result.scan_id)
        if f["name"] == "underwriter" and f["type"] == "violation"
    )
    assert "expired" in underwriter["message"] or "certification" in underwriter["message"]
    assert any("expired on" in c for c in underwriter["details"]["certifications"])

    # pod facts (image digest) attached to the controller, runtime written to the inventory
    deps = queries.deployments_by_key(sqlite_db, "a")
    assert deps[(NS_A2, "Deployment", "gone")]["status"] == "not-running"
    models = {m["name"]: m for m in jsonable(queries.list_models(sqlite_db))}
    fraud = models["fraud-detector"]["versions"][0]["deployments"][0]
    assert fraud["status"] == "running" and fraud["replicas"] == 2
    assert fraud["resources"] is not None
    assert [i["digest"] for i in fraud["resources"]["images"]] == [DIGEST]


def test_kserve_resources_listed_when_the_crd_exists(
    populated: tuple[Cluster, Cluster], sqlite_db: Database, engine: PolicyEngine
) -> None:
    _, b = populated
    b.apply(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "inferenceservices.serving.kserve.io"},
            "spec": {
                "group": "serving.kserve.io",
                "scope": "Namespaced",
                "names": {
                    "kind": "InferenceService",
                    "plural": "inferenceservices",
                    "singular": "inferenceservice",
                    "listKind": "InferenceServiceList",
                },
                "versions": [
                    {
                        "name": "v1beta1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "sklearn-iris",
            "namespace": NS_B,
            "annotations": metadata(model_name="iris", owner=None),
        },
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://models/iris"}
            }
        },
    }
    deadline = time.monotonic() + 60
    while True:
        proc = b.kubectl("apply", "-f", "-", input=json.dumps(isvc), check=False)
        if proc.returncode == 0:
            break
        assert time.monotonic() < deadline, proc.stderr
        time.sleep(1)

    source = KubernetesSource(cluster="b", context="b", kubeconfig=str(b.kubeconfig))
    result = Reconciler(sqlite_db, engine).scan([source])
    found = _ours(audit.scan_findings_of(sqlite_db, result.scan_id))
    assert ("b", "sklearn-iris", "orphan") in found
    orphan = next(
        f for f in audit.scan_findings_of(sqlite_db, result.scan_id) if f["name"] == "sklearn-iris"
    )
    assert orphan["details"]["missing"]  # one finding: what it lacks is in its details
    assert not any("KServe not installed" in n for n in result.sources[0].notes)


def test_cli_scans_contexts_and_reports_the_dead_one(
    populated: tuple[Cluster, Cluster],
    tmp_path: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    kubeconfig = _kubeconfig(tmp_path, *populated)
    result = CliRunner().invoke(
        main,
        [
            "audit",
            "--kubeconfig",
            str(kubeconfig),
            "--context",
            "b",
            "--context",
            "dead",
            "--export",
            str(tmp_path / "out.json"),
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "kubernetes:dead: UNREACHABLE" in result.output
    doc = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert {s["cluster"]: s["status"] for s in doc["scan"]["sources"]} == {
        "b": "ok",
        "dead": "unreachable",
    }
    assert any(f["name"] == "b-scorer" and f["type"] == "orphan" for f in doc["findings"])

    unknown = CliRunner().invoke(
        main, ["audit", "--kubeconfig", str(kubeconfig), "--context", "nope"]
    )
    assert unknown.exit_code == 2 and "unknown kubeconfig context" in unknown.output


def test_forbidden_kinds_are_noted_and_never_reported_retired(
    populated: tuple[Cluster, Cluster], tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    a, _ = populated
    _seed(sqlite_db)
    # a user that may list pods and deployments only (not even namespaces)
    a.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "aud-limited"},
                "rules": [
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]},
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "aud-limited"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "aud-limited",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "aud-limited"}
                ],
            },
        ]
    )
    pair = a.ca_authority.issue(tmp_path, "limited", "aud-limited", client=True)
    config = yaml.safe_load(a.kubeconfig.read_text(encoding="utf-8"))
    config["users"][0]["user"] = {
        "client-certificate": str(pair.cert),
        "client-key": str(pair.key),
    }
    limited = tmp_path / "limited.kubeconfig"
    limited.write_text(yaml.safe_dump(config), encoding="utf-8")

    # a complete scan first: the StatefulSet "underwriter" has open findings
    admin = KubernetesSource(cluster="a", context="a", kubeconfig=str(a.kubeconfig))
    first = Reconciler(sqlite_db, engine).scan([admin])
    assert ("a", "underwriter", "violation") in _ours(
        audit.scan_findings_of(sqlite_db, first.scan_id)
    )

    source = KubernetesSource(cluster="a", context="a", kubeconfig=str(limited))
    result = Reconciler(sqlite_db, engine).scan([source])

    assert result.sources[0].status == "ok"
    assert {"StatefulSet", "ReplicaSet", "Job"} <= source.skipped_kinds
    assert "Deployment" not in source.skipped_kinds
    assert any("cannot list StatefulSet" in n for n in result.sources[0].notes)
    assert any("cannot list namespaces" in n for n in result.sources[0].notes)
    found = _ours(audit.scan_findings_of(sqlite_db, result.scan_id))
    assert ("a", "fraud", "drift") in found
    assert ("a", "gone", "retired") in found  # a Deployment: listable, so provably gone
    assert not any(name == "underwriter" for _, name, _ in found)  # StatefulSet: unknown
    # ... and its findings from the complete scan are not resolved by the partial one
    underwriter = [f for f in audit.findings(sqlite_db) if f["name"] == "underwriter"]
    assert underwriter and all(f["status"] == "open" for f in underwriter)


def test_pod_metrics_become_usage_when_metrics_api_is_served(
    populated: tuple[Cluster, Cluster], tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    """metrics.k8s.io served (here by a CRD of the same group and shape as metrics-server's
    PodMetrics): CPU/memory per pod are summed onto the controller and onto bare pods."""
    a, _ = populated
    a.apply(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": "pods.metrics.k8s.io",
                "annotations": {"api-approved.kubernetes.io": "unapproved, test double"},
            },
            "spec": {
                "group": "metrics.k8s.io",
                "scope": "Namespaced",
                "names": {"kind": "PodMetrics", "plural": "pods", "singular": "podmetrics"},
                "versions": [
                    {
                        "name": "v1beta1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
    )

    def metrics(name: str, ns: str, cpu: str, memory: str) -> dict[str, Any]:
        return {
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "PodMetrics",
            "metadata": {"name": name, "namespace": ns},
            "timestamp": "2026-01-01T00:00:00Z",
            "window": "30s",
            "containers": [{"name": "server", "usage": {"cpu": cpu, "memory": memory}}],
        }

    docs = [
        metrics("fraud-7d9f-x1", NS_A1, "250m", "512Mi"),
        metrics("notebook-model", NS_A2, "1", "1Gi"),
    ]
    deadline = time.monotonic() + 60
    while True:
        proc = a.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=False)
        if proc.returncode == 0:
            break
        assert time.monotonic() < deadline, proc.stderr
        time.sleep(1)

    _seed(sqlite_db)
    source = KubernetesSource(cluster="a", context="a", kubeconfig=str(a.kubeconfig))
    seen = {d.workload["name"]: d for d in source.discover()}
    assert seen["notebook-model"].runtime["usage"] == {"cpu": "1", "memory": "1Gi"}
    assert seen["fraud"].runtime["usage"] == {"cpu": "250m", "memory": "512Mi"}
    assert not any("metrics.k8s.io not served" in n for n in source.notes)

    Reconciler(sqlite_db, engine).scan(
        [KubernetesSource(cluster="a", context="a", kubeconfig=str(a.kubeconfig))]
    )
    fraud = jsonable(queries.list_models(sqlite_db))
    dep = next(m for m in fraud if m["name"] == "fraud-detector")["versions"][0]["deployments"][0]
    assert dep["resources"] is not None
    assert dep["resources"]["usage"] == {"cpu": "250m", "memory": "512Mi"}


def test_in_cluster_mode_uses_the_service_account(
    populated: tuple[Cluster, Cluster],
    tmp_path: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the chart's CronJob runs: ``modelgate audit --in-cluster`` with a service-account
    token and the cluster CA where a pod has them, the cluster named by MODELGATE_CLUSTER_NAME."""
    import kubernetes.config.incluster_config as incluster

    a, _ = populated
    a.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "auditor", "namespace": "default"},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "aud-auditor-view"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "auditor", "namespace": "default"}],
            },
        ]
    )
    token = a.kubectl("create", "token", "auditor", "-n", "default").stdout.strip()
    secrets = tmp_path / "serviceaccount"
    secrets.mkdir()
    (secrets / "token").write_text(token, encoding="utf-8")
    (secrets / "ca.crt").write_bytes(a.ca.read_bytes())
    # where a pod finds them: the kubelet's mount and the service environment
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(secrets / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(secrets / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", a.server.rsplit(":", 1)[1])
    monkeypatch.setenv("MODELGATE_CLUSTER_NAME", "prod-eu")
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)

    result = CliRunner().invoke(
        main,
        ["audit", "--in-cluster", "--export", str(tmp_path / "e.json"), "--no-progress"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "kubernetes:prod-eu: ok" in result.output
    doc = json.loads((tmp_path / "e.json").read_text(encoding="utf-8"))
    assert ("prod-eu", "ranker", "orphan") in {
        (f["cluster"], f["name"], f["type"]) for f in doc["findings"]
    }
