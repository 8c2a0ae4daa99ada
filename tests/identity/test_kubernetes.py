"""Kubernetes identity against the test kube-apiserver: service-account tokens checked with
TokenReview, roles from RBAC through SubjectAccessReview on the modelgate.dev virtual
resources, granted by the chart's ClusterRoles; the kubeconfig token for ``--kube``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboard.app import create_app
from modelgate.identity.kubernetes import KubeConfigError, kubeconfig_token
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from tests.charts.helm import by_kind, render
from tests.dashboard.openapi_check import ApiClient
from tests.fixtures.cluster import Cluster
from tests.fixtures.inventory import admit, deployment, metadata

pytestmark = pytest.mark.e2e

NS = "mg-identity"
RELEASE = "idt"
DASHBOARD_SA = "idt-modelgate-dashboard"


def _token(cluster: Cluster, sa: str) -> str:
    return cluster.kubectl("create", "token", sa, "-n", NS, "--duration", "1h").stdout.strip()


@pytest.fixture(scope="module")
def rbac(kube_cluster: Cluster) -> dict[str, Any]:
    """The chart's ClusterRoles and auth-delegator binding, service accounts and bindings."""
    objs = render(
        sets={
            "auth.kubernetesTokens": "true",
            "auth.kubernetesAuthorization": "true",
            "dashboard.enabled": "true",  # the auth-delegator binding comes with the dashboard
        },
        release=RELEASE,
        namespace=NS,
    )
    roles = [
        o for o in by_kind(objs, "ClusterRole") if "modelgate.dev/role" in o["metadata"]["labels"]
    ]
    assert sorted(r["metadata"]["labels"]["modelgate.dev/role"] for r in roles) == [
        "admin",
        "approver",
        "owner",
        "viewer",
    ]
    delegator = [
        o
        for o in by_kind(objs, "ClusterRoleBinding")
        if o["roleRef"]["name"] == "system:auth-delegator"
    ]
    assert [s["name"] for s in delegator[0]["subjects"]] == [DASHBOARD_SA]
    kube_cluster.create_namespace(NS)
    accounts = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": n, "namespace": NS}}
        for n in (DASHBOARD_SA, "ci-approver", "ci-viewer", "stranger")
    ]
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"idt-{sa}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"{RELEASE}-modelgate-{role}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": NS}],
        }
        for sa, role in (("ci-approver", "approver"), ("ci-viewer", "viewer"))
    ]
    kube_cluster.apply([*roles, *delegator, *accounts, *bindings])
    # modelgate's own credentials: the dashboard's service account (a client certificate for
    # its user name; RBAC matches ServiceAccount subjects on that name)
    kubeconfig = kube_cluster.user_kubeconfig(f"system:serviceaccount:{NS}:{DASHBOARD_SA}")
    return {
        "kubeconfig": kubeconfig,
        "approver": _token(kube_cluster, "ci-approver"),
        "viewer": _token(kube_cluster, "ci-viewer"),
        "stranger": _token(kube_cluster, "stranger"),
    }


@pytest.fixture
def api(rbac: dict[str, Any], sqlite_url: str, sqlite_db: Database) -> ApiClient:
    admit(sqlite_db, "prod", deployment("fraud", annotations=metadata(owner="risk-ml@example.com")))
    app = create_app(
        Settings.from_env(
            {},
            database_url=sqlite_url,
            kube_auth=True,
            kube_authz=True,
            kube_config=str(rbac["kubeconfig"]),
        )
    )
    return ApiClient(app.test_client())


def test_a_bound_service_account_approves(api: ApiClient, rbac: dict[str, Any]) -> None:
    approver = api.as_(rbac["approver"])
    who = approver.get("/api/v1/whoami").get_json()
    assert who["user"] == f"system:serviceaccount:{NS}:ci-approver"
    assert who["source"] == "kubernetes"
    assert f"system:serviceaccounts:{NS}" in who["groups"]
    assert who["role"] == "approver"
    resp = approver.post(
        "/api/v1/models/fraud-detector/versions/1.0.0/approvals",
        {"decision": "approved", "reason": "pipeline gate passed"},
    )
    assert resp.status_code == 201
    assert resp.get_json()["approver"] == f"system:serviceaccount:{NS}:ci-approver"


def test_a_viewer_binding_reads_but_may_not_approve(api: ApiClient, rbac: dict[str, Any]) -> None:
    viewer = api.as_(rbac["viewer"])
    assert viewer.get("/api/v1/models").status_code == 200
    resp = viewer.post(
        "/api/v1/models/fraud-detector/versions/1.0.0/approvals", {"decision": "approved"}
    )
    assert resp.status_code == 403
    assert "no RBAC rule allows it" in resp.get_json()["error"]


def test_a_service_account_without_binding_is_refused(api: ApiClient, rbac: dict[str, Any]) -> None:
    stranger = api.as_(rbac["stranger"])
    who = stranger.get("/api/v1/whoami").get_json()  # authenticated, but no role
    assert who["user"] == f"system:serviceaccount:{NS}:stranger" and who["role"] is None
    resp = stranger.get("/api/v1/models")
    assert resp.status_code == 403
    assert "may not list models.modelgate.dev" in resp.get_json()["error"]


def test_a_token_the_api_server_rejects_is_401(api: ApiClient) -> None:
    resp = api.as_("not-a-kubernetes-token").get("/api/v1/models")
    assert resp.status_code == 401
    assert "did not authenticate the token" in resp.get_json()["error"]


def test_an_unreachable_api_server_is_503(
    tmp_path: Path, sqlite_url: str, kube_cluster: Cluster
) -> None:
    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    app = create_app(
        Settings.from_env({}, database_url=sqlite_url, kube_auth=True, kube_config=str(dead))
    )
    resp = ApiClient(app.test_client(), "some-token").get("/api/v1/models")
    assert resp.status_code == 503
    assert "does not answer" in resp.get_json()["error"]


def test_kubeconfig_token_reads_the_context_token(tmp_path: Path, kube_cluster: Cluster) -> None:
    config = yaml.safe_load(kube_cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": "context-token-value"}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    assert kubeconfig_token(path) == "context-token-value"
    with pytest.raises(KubeConfigError, match="client certificate"):
        kubeconfig_token(kube_cluster.kubeconfig)  # the admin context uses a certificate
