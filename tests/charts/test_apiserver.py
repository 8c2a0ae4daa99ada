"""charts/modelgate against a real kube-apiserver: every mode passes server-side validation, the
non-workload objects are really created, and `helm install`/`upgrade` keep the generated TLS."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.discovery.kubernetes import KubernetesSource
from tests.charts.helm import CHART, CI_VALUES, helm, render
from tests.fixtures.cluster import Cluster

pytestmark = pytest.mark.e2e

CERT_MANAGER_CRDS = Path(__file__).parent / "crds" / "cert-manager.yaml"
# the auditor's ClusterRole names these kinds: `kubectl auth can-i` needs them served
MODEL_CRDS = Path(__file__).parent.parent / "e2e" / "crds" / "kserve-seldon.yaml"
# metrics.k8s.io, which the auditor lists for pod usage
POD_METRICS_CRD = Path(__file__).parent / "crds" / "pod-metrics.yaml"
METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/pods"
# real objects on the shared test cluster must not intercept other tests' requests
NEVER = {"matchLabels": {"modelgate.dev/chart-test": "never-matches"}}
# kinds whose objects would run pods in a real cluster
WORKLOADS = {"Deployment", "Job", "CronJob"}


def _mode(values: Path) -> str:
    return values.name.removesuffix("-values.yaml")


@pytest.fixture(scope="module")
def cluster(kube_cluster: Cluster) -> Cluster:
    for crds in (CERT_MANAGER_CRDS, MODEL_CRDS):
        kube_cluster.kubectl("apply", "-f", str(crds))
        kube_cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds)
        )
    return kube_cluster


def _namespace(cluster: Cluster, name: str) -> str:
    cluster.create_namespace(name)
    return name


def _dump(objs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False)


@pytest.mark.parametrize("values", CI_VALUES, ids=_mode)
def test_every_rendered_object_passes_server_side_dry_run(cluster: Cluster, values: Path) -> None:
    ns = _namespace(cluster, f"chart-dry-{_mode(values)}")
    objs = render(values, namespace=ns, release=f"dry-{_mode(values)}", base=False)
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=_dump(objs)).stdout
    # kubectl reports one line per object: nothing was skipped
    assert out.count("(server dry run)") == len(objs), out
    for obj in objs:
        assert f"{obj['kind'].lower()}" in out.lower()


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


@pytest.mark.parametrize("values", CI_VALUES, ids=_mode)
def test_every_pod_meets_the_restricted_pod_security_standard(
    cluster: Cluster, values: Path
) -> None:
    """The API server's own PodSecurity admission (level `restricted`) finds nothing to warn
    about in the webhook, OPA sidecar, migration Job or auditor pods of any mode."""
    ns = f"chart-pss-{_mode(values)}"
    cluster.create_namespace(ns, RESTRICTED)
    objs = render(values, namespace=ns, release=f"pss-{_mode(values)}", base=False)
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=_dump(objs))
    assert "PodSecurity" not in proc.stderr, proc.stderr
    # the check is live: a container keeping its capabilities is reported
    weakened = render(
        values,
        namespace=ns,
        release=f"pss-{_mode(values)}",
        base=False,
        set_json={"securityContext": {"capabilities": None}},
    )
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=_dump(weakened))
    assert 'would violate PodSecurity "restricted' in proc.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=_mode)
def test_non_workload_objects_are_created(cluster: Cluster, values: Path) -> None:
    mode = _mode(values)
    ns = _namespace(cluster, f"chart-real-{mode}")
    objs = render(
        values,
        namespace=ns,
        release=f"real-{mode}",
        base=False,
        set_json={"webhook.objectSelector": NEVER},
    )
    created = [o for o in objs if o["kind"] not in WORKLOADS]
    cluster_scoped = [o for o in created if "namespace" not in o["metadata"]]
    try:
        cluster.kubectl("apply", "-f", "-", input=_dump(created))
        for obj in created:
            ref = f"{obj['kind']}/{obj['metadata']['name']}"
            args = ["-n", ns] if obj["metadata"].get("namespace") else []
            got = cluster.get_json(ref, *args)
            assert got["metadata"]["name"] == obj["metadata"]["name"]
        vwc = next(o for o in created if o["kind"] == "ValidatingWebhookConfiguration")
        stored = cluster.get_json(f"validatingwebhookconfiguration/{vwc['metadata']['name']}")
        assert [w["name"] for w in stored["webhooks"]] == [w["name"] for w in vwc["webhooks"]]
        for hook in stored["webhooks"]:
            assert hook["sideEffects"] == "NoneOnDryRun"
    finally:
        for obj in cluster_scoped:
            cluster.kubectl(
                "delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found", check=False
            )


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[tuple[Cluster, str, str]]:
    """A real `helm install` of the generated-TLS mode (hooks off: no controller runs Jobs)."""
    ns = _namespace(cluster, "chart-helm")
    release = "hi"
    args = [
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--namespace",
        ns,
        "--set",
        "database.existingSecret=modelgate-database",
        "--set",
        "migrations.enabled=false",
        "--set-json",
        f"webhook.objectSelector={json.dumps(NEVER)}",
    ]
    helm("install", release, str(CHART), *args)
    try:
        yield cluster, ns, release
    finally:
        helm("uninstall", release, "--kubeconfig", str(cluster.kubeconfig), "-n", ns, check=False)


def _tls_state(cluster: Cluster, ns: str, release: str) -> tuple[dict[str, str], set[str]]:
    secret = cluster.get_json(f"secret/{release}-modelgate-tls", "-n", ns)
    vwc = cluster.get_json(f"validatingwebhookconfiguration/{release}-modelgate")
    bundles = {w["clientConfig"]["caBundle"] for w in vwc["webhooks"]}
    return secret["data"], bundles


def test_helm_upgrade_keeps_the_generated_certificate(installed: tuple[Cluster, str, str]) -> None:
    cluster, ns, release = installed
    before, bundles = _tls_state(cluster, ns, release)
    signing = cluster.get_json(f"secret/{release}-modelgate-log-signing", "-n", ns)["data"]
    assert bundles == {before["ca.crt"]}
    assert b"BEGIN CERTIFICATE" in base64.b64decode(before["tls.crt"])
    helm(
        "upgrade",
        release,
        str(CHART),
        "--kubeconfig",
        str(cluster.kubeconfig),
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "replicaCount=3",
    )
    after, bundles_after = _tls_state(cluster, ns, release)
    assert after == before
    # and the log signing key every earlier checkpoint was signed with
    assert cluster.get_json(f"secret/{release}-modelgate-log-signing", "-n", ns)["data"] == signing
    assert bundles_after == {before["ca.crt"]}
    dep = cluster.get_json(f"deployment/{release}-modelgate", "-n", ns)
    assert dep["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("list", "deployments.apps", True),
        ("watch", "statefulsets.apps", True),
        ("get", "cronjobs.batch", True),
        ("list", "inferenceservices.serving.kserve.io", True),
        ("list", "seldondeployments.machinelearning.seldon.io", True),
        ("list", "namespaces", True),
        ("create", "deployments.apps", False),
        ("delete", "pods", False),
        ("list", "secrets", False),
        ("list", "configmaps", False),
    ],
)
def test_auditor_service_account_is_read_only(
    installed: tuple[Cluster, str, str], verb: str, resource: str, allowed: bool
) -> None:
    cluster, ns, release = installed
    proc = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "--all-namespaces",
        "--as",
        f"system:serviceaccount:{ns}:{release}-modelgate-auditor",
        check=False,
    )
    assert proc.stdout.strip() == ("yes" if allowed else "no"), proc.stdout + proc.stderr


def test_auditor_role_covers_every_list_the_auditor_makes(
    installed: tuple[Cluster, str, str],
) -> None:
    """The chart's auditor identity runs a real discovery with nothing forbidden: every
    workload kind (KServe and Seldon included) and the pod metrics behind the usage columns."""
    cluster, ns, release = installed
    cluster.kubectl("apply", "-f", str(POD_METRICS_CRD))
    try:
        cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(POD_METRICS_CRD)
        )
        # Established can come a moment before the group is served: wait until it lists
        deadline = time.monotonic() + 60
        while cluster.kubectl("get", "--raw", METRICS_PATH, check=False).returncode != 0:
            assert time.monotonic() < deadline, f"{METRICS_PATH} never served"
            time.sleep(0.5)
        identity = f"system:serviceaccount:{ns}:{release}-modelgate-auditor"
        source = KubernetesSource(
            cluster="chart", kubeconfig=str(cluster.user_kubeconfig(identity))
        )
        list(source.discover())
        assert source.skipped_kinds == set(), source.notes
        blocked = [n for n in source.notes if "cannot list" in n or "unavailable" in n]
        assert not blocked, blocked
        # each API group was really served, so each list above went through RBAC
        assert not [n for n in source.notes if "not served" in n or "not installed" in n]
    finally:
        cluster.kubectl("delete", "-f", str(POD_METRICS_CRD), "--ignore-not-found", check=False)
