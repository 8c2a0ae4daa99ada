"""``helm install modelgate charts/modelgate`` with no values at all, for real, against a
kube-apiserver of its own (its webhook configuration matches every namespace, so it must not
meet other suites' objects): every object is accepted in a namespace enforcing the
``restricted`` Pod Security Standard without a warning, the bundled PostgreSQL's generated
password survives ``helm upgrade``, and the dashboard stays cluster-internal, without a
service-account token.

No controller runs on the test control plane, so ``--no-hooks`` leaves out the migration Job
(rendered and server-side validated with every other object by tests/charts/test_apiserver.py's
``trial`` mode)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import yaml

from tests.charts.helm import CHART, helm, render
from tests.fixtures.cluster import Cluster, running_cluster

pytestmark = pytest.mark.e2e

NS = "modelgate"
RELEASE = "modelgate"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("trial-install"), "trial") as cluster:
        cluster.create_namespace(NS, RESTRICTED)
        yield cluster


def _helm(cluster: Cluster, *args: str) -> str:
    proc = helm(*args, "--kubeconfig", str(cluster.kubeconfig), "--namespace", NS)
    return proc.stderr


def test_install_without_values_then_upgrade_keeps_the_database_password(
    own_cluster: Cluster,
) -> None:
    stderr = _helm(own_cluster, "install", RELEASE, str(CHART), "--no-hooks")
    assert "PodSecurity" not in stderr, stderr
    try:
        secret = own_cluster.get_json("secret/modelgate-postgresql", "-n", NS)
        password = base64.b64decode(secret["data"]["password"]).decode()
        assert len(password) == 32
        sts = own_cluster.get_json("statefulset/modelgate-postgresql", "-n", NS)
        assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        dashboard = own_cluster.get_json("deployment/modelgate-dashboard", "-n", NS)
        env = {e["name"]: e for e in dashboard["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["MODELGATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
            "modelgate-postgresql"
        )
        service = own_cluster.get_json("service/modelgate-dashboard", "-n", NS)
        assert service["spec"]["type"] == "ClusterIP"
        # no Kubernetes identity without values: its own service account, no token mounted
        pod = dashboard["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "modelgate-dashboard"
        assert pod["automountServiceAccountToken"] is False
        account = own_cluster.get_json("serviceaccount/modelgate-dashboard", "-n", NS)
        assert account["automountServiceAccountToken"] is False
        webhook = own_cluster.get_json("deployment/modelgate", "-n", NS)
        assert webhook["spec"]["replicas"] == 2

        stderr = _helm(
            own_cluster,
            "upgrade",
            RELEASE,
            str(CHART),
            "--no-hooks",
            "--reuse-values",
            "--set",
            "dashboard.replicaCount=2",
        )
        assert "PodSecurity" not in stderr, stderr
        after = own_cluster.get_json("secret/modelgate-postgresql", "-n", NS)
        assert after["data"] == secret["data"]  # same password, same URL
        assert (
            own_cluster.get_json("deployment/modelgate-dashboard", "-n", NS)["spec"]["replicas"]
            == 2
        )
    finally:
        helm(
            "uninstall", RELEASE, "--kubeconfig", str(own_cluster.kubeconfig), "-n", NS, check=False
        )


def test_the_restricted_check_sees_the_postgresql_and_dashboard_pods(
    own_cluster: Cluster,
) -> None:
    """The PodSecurity check above is live for the objects of this issue: a PostgreSQL or a
    dashboard container that keeps its capabilities is reported."""
    for kind, name, container in (
        ("StatefulSet", "x-modelgate-postgresql", "postgresql"),
        ("Deployment", "x-modelgate-dashboard", "dashboard"),
    ):
        objs = render(namespace=NS, release="x", base=False)
        target = next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)
        del target["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]
        proc = own_cluster.kubectl(
            "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(target)
        )
        assert 'would violate PodSecurity "restricted' in proc.stderr, (kind, proc.stderr)
        assert f'container "{container}"' in proc.stderr
