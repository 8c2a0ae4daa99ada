"""``GET /api/v1/capacity`` over a real scan of a real kube-apiserver: Deployments whose pods
request GPUs, a bare orphan pod holding an AMD GPU, pod statuses with restart counts, and
``metrics.k8s.io`` served by the fixture (a CRD of metrics-server's group and shape) — checked
number by number, the response validated against its JSON schema."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from auditor.discovery.kubernetes import KubernetesSource
from auditor.reconcile import Reconciler
from dashboard.capacity import response_schema
from modelgate.inventory.db import Database
from policies.engines import PolicyEngine
from tests.dashboard.conftest import make_client
from tests.fixtures.cluster import Cluster, running_cluster
from tests.fixtures.inventory import admit, deployment, metadata, namespace

pytestmark = pytest.mark.e2e

POD_METRICS_CRD = Path(__file__).parent.parent / "charts" / "crds" / "pod-metrics.yaml"
MI = 2**20
GI = 2**30
NS_GPU, NS_CPU, NS_LAB = "cap-gen", "cap-ml", "cap-lab"


def _llm() -> dict[str, Any]:
    return deployment(
        "llm",
        NS_GPU,
        image="vllm/vllm-openai:v0.6.3",
        gpus=2,
        annotations=metadata(model_name="llm-chat", model_version="0.9", owner="genai@example.com"),
    )


def _scorer() -> dict[str, Any]:
    return deployment(
        "scorer",
        NS_CPU,
        image="registry.example.com/scorer:3.2",
        replicas=1,
        annotations=metadata(model_name="credit-scorer", model_version="3.2"),
    )


def _pod(
    name: str, ns: str, owner: dict[str, Any] | None, resources: dict[str, Any]
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": {}}
    if owner:
        meta["ownerReferences"] = [{**owner, "controller": True}]
    else:
        meta["labels"]["modelgate.dev/model"] = "true"
        meta["annotations"] = metadata(model_name="notebook-llm", model_version="0.1")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [
                {"name": "server", "image": "vllm/vllm-openai:v0.6.3", "resources": resources}
            ]
        },
    }


def _owner(cluster: Cluster, api_version: str, kind: str, name: str, ns: str) -> dict[str, str]:
    uid = cluster.get_json(kind.lower(), name, "-n", ns)["metadata"]["uid"]
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}


def _status(cluster: Cluster, kind: str, name: str, ns: str, status: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch",
        kind,
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _running(restarts: int) -> dict[str, Any]:
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": "server",
                "image": "vllm/vllm-openai:v0.6.3",
                "imageID": "docker.io/vllm/vllm-openai@sha256:" + "cd" * 32,
                "ready": True,
                "restartCount": restarts,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    }


def _metrics(name: str, ns: str, cpu: str, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": ns},
        "timestamp": "2026-01-01T00:00:00Z",
        "window": "30s",
        "containers": [{"name": "server", "usage": {"cpu": cpu, "memory": memory}}],
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An API server of its own: the pod-metrics CRD is installed for good here."""
    with running_cluster(tmp_path_factory.mktemp("capacity"), "capacity") as c:
        c.kubectl("apply", "-f", str(POD_METRICS_CRD))
        c.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(POD_METRICS_CRD)
        )
        c.apply([namespace(NS_GPU), namespace(NS_CPU), namespace(NS_LAB)])
        c.apply([_llm(), _scorer()])
        _status(c, "deployment", "llm", NS_GPU, {"replicas": 2, "readyReplicas": 2})
        _status(c, "deployment", "scorer", NS_CPU, {"replicas": 1, "readyReplicas": 0})
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "llm-5f6d",
                "namespace": NS_GPU,
                "labels": {"app": "llm"},
                "ownerReferences": [
                    {**_owner(c, "apps/v1", "Deployment", "llm", NS_GPU), "controller": True}
                ],
            },
            "spec": {
                "selector": {"matchLabels": {"app": "llm"}},
                "template": _llm()["spec"]["template"],
            },
        }
        c.apply(rs)
        rs_owner = _owner(c, "apps/v1", "ReplicaSet", "llm-5f6d", NS_GPU)
        gpu_pod = {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "2"},
        }
        for pod, restarts in (("llm-5f6d-a", 3), ("llm-5f6d-b", 1)):
            c.apply(_pod(pod, NS_GPU, rs_owner, gpu_pod))
            _status(c, "pod", pod, NS_GPU, _running(restarts))
        # a notebook serving a model by hand, never admitted: an orphan holding an AMD GPU
        c.apply(
            _pod(
                "notebook",
                NS_LAB,
                None,
                {"limits": {"cpu": "1", "memory": "2Gi", "amd.com/gpu": "1"}},
            )
        )
        _status(c, "pod", "notebook", NS_LAB, _running(0))
        docs = [
            _metrics("llm-5f6d-a", NS_GPU, "10m", "200Mi"),
            _metrics("llm-5f6d-b", NS_GPU, "5m", "100Mi"),
            _metrics("notebook", NS_LAB, "900m", "1536Mi"),
        ]
        deadline = time.monotonic() + 60
        while True:  # Established can come a moment before the group is served
            proc = c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), check=False)
            if proc.returncode == 0:
                break
            assert time.monotonic() < deadline, proc.stderr
            time.sleep(1)
        yield c


@pytest.fixture
def capacity(cluster: Cluster, sqlite_db: Database, sqlite_url: str, engine: PolicyEngine) -> Any:
    admit(sqlite_db, "capacity", _llm())
    admit(sqlite_db, "capacity", _scorer())
    source = KubernetesSource(
        cluster="capacity", context="capacity", kubeconfig=str(cluster.kubeconfig)
    )
    Reconciler(sqlite_db, engine).scan([source])
    assert not [n for n in source.notes if "metrics" in n], source.notes
    return make_client(sqlite_url)[1]


def test_capacity_by_model_number_by_number(capacity: Any) -> None:
    body = capacity.get("/api/v1/capacity?group_by=model").get_json()
    jsonschema.validate(body, response_schema())
    rows = {r["key"]: r for r in body["rows"]}
    assert list(rows) == ["llm-chat", "notebook-llm", "credit-scorer"]  # most GPUs first

    llm = rows["llm-chat"]
    assert (llm["deployments"], llm["orphans"]) == (1, 0)
    assert llm["replicas"] == {"desired": 2, "ready": 2}
    assert llm["restarts"] == 4  # 3 + 1 over its two pods
    assert llm["requests"] == {"cpu": 1.0, "memory": 2 * GI, "gpu": {"nvidia.com/gpu": 4}}
    assert llm["limits"] == {"cpu": 4.0, "memory": 8 * GI, "gpu": {"nvidia.com/gpu": 4}}
    assert llm["usage"] == {"cpu": pytest.approx(0.015), "memory": 300 * MI}
    assert llm["usage_reported"] == 1
    # 15m of the 1 core requested (< 5 %): its 4 GPUs are idle; 300Mi of 2Gi: over-requested
    assert llm["idle_gpus"] == 4
    assert set(llm["flags"]) == {"idle-gpu", "over-requested-memory"}

    notebook = rows["notebook-llm"]
    assert (notebook["deployments"], notebook["orphans"]) == (1, 1)
    assert notebook["replicas"] == {"desired": 1, "ready": 1}
    assert notebook["restarts"] == 0
    # only limits set: the requests default to them (Kubernetes' defaulting)
    assert notebook["requests"] == {"cpu": 1.0, "memory": 2 * GI, "gpu": {"amd.com/gpu": 1}}
    assert notebook["usage"] == {"cpu": pytest.approx(0.9), "memory": 1536 * MI}
    assert notebook["idle_gpus"] == 0
    assert set(notebook["flags"]) == {"orphan"}

    scorer = rows["credit-scorer"]
    assert scorer["replicas"] == {"desired": 1, "ready": 0}
    assert scorer["restarts"] is None  # no pod of it exists: nothing reported
    assert scorer["requests"] == {"cpu": 0.5, "memory": GI, "gpu": {}}
    assert scorer["usage"] is None and scorer["usage_reported"] == 0
    assert set(scorer["flags"]) == {"not-ready"}

    totals = body["totals"]
    assert totals["requests"]["gpu"] == {"nvidia.com/gpu": 4, "amd.com/gpu": 1}
    assert totals["requests"]["cpu"] == pytest.approx(2.5)
    assert totals["usage"] == {"cpu": pytest.approx(0.915), "memory": 1836 * MI}
    assert (totals["deployments"], totals["orphans"], totals["idle_gpus"]) == (3, 1, 4)
    assert totals["orphan_requests"] == {"cpu": 1.0, "memory": 2 * GI, "gpu": {"amd.com/gpu": 1}}
    assert [(p["deployments"], p["gpus"]) for p in body["trend"]] == [(3, 5)]


def test_capacity_by_namespace_and_cluster(capacity: Any) -> None:
    by_ns = capacity.get("/api/v1/capacity?group_by=namespace").get_json()
    jsonschema.validate(by_ns, response_schema())
    assert {r["key"]: r["requests"]["gpu"] for r in by_ns["rows"]} == {
        f"capacity/{NS_GPU}": {"nvidia.com/gpu": 4},
        f"capacity/{NS_LAB}": {"amd.com/gpu": 1},
        f"capacity/{NS_CPU}": {},
    }
    by_cluster = capacity.get("/api/v1/capacity?group_by=cluster").get_json()
    (row,) = by_cluster["rows"]
    assert row["key"] == "capacity" and row["deployments"] == 3
    assert row["replicas"] == {"desired": 4, "ready": 3}
    assert row["restarts"] == 4


def test_model_page_shows_restarts_and_readiness(capacity: Any) -> None:
    detail = capacity.get("/api/v1/models/llm-chat").get_json()
    dep = detail["versions"][0]["deployments"][0]
    assert (dep["desired"], dep["ready"], dep["restarts"], dep["not_ready"]) == (2, 2, 4, False)
    scorer = capacity.get("/api/v1/models/credit-scorer").get_json()["versions"][0]["deployments"][
        0
    ]
    assert (scorer["desired"], scorer["ready"], scorer["not_ready"]) == (1, 0, True)
    overview = capacity.get("/api/v1/overview").get_json()
    assert [m["model"] for m in overview["not_ready"]] == ["credit-scorer"]
