"""charts/modelgate's dashboard and bundled trial PostgreSQL, on rendered YAML: the defaults
(no values at all) make a working trial system, the pods are hardened, the dashboard is not
exposed without a way to sign callers in, its own credentials are used when given, and bad
database and dashboard combinations fail once with a clear message (the dashboard's identity
values: tests/charts/test_dashboard_auth.py)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.charts.helm import CHART, by_kind, helm, one, render, render_error

NO_VALUES: dict[str, str] = {}


def _defaults(**sets: str) -> list[dict[str, Any]]:
    return render(base=False, sets=sets or NO_VALUES)


def _named(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {[o['metadata']['name'] for o in by_kind(objs, kind)]}"
    return found[0]


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        spec: dict[str, Any] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    pod: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _database_ref(obj: dict[str, Any]) -> dict[str, str]:
    ref: dict[str, str] = _env(_pod(obj)["containers"][0])["MODELGATE_DATABASE_URL"]["secretKeyRef"]
    return ref


def test_no_values_render_a_trial_system_with_a_bundled_postgresql() -> None:
    objs = _defaults()
    sts = _named(objs, "StatefulSet", "mg-modelgate-postgresql")
    assert sts["spec"]["replicas"] == 1
    assert "not for production" in sts["metadata"]["annotations"]["modelgate.dev/note"]
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    image = _pod(sts)["containers"][0]["image"]
    assert image == "docker.io/library/postgres:16.4-bookworm" and not image.endswith(":latest")
    svc = _named(objs, "Service", "mg-modelgate-postgresql")
    assert svc["spec"]["ports"][0]["port"] == 5432

    secret = _named(objs, "Secret", "mg-modelgate-postgresql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    password = base64.b64decode(secret["data"]["password"]).decode()
    url = urlparse(base64.b64decode(secret["data"]["url"]).decode())
    assert len(password) == 32 and password.isalnum()
    assert (url.scheme, url.username, url.password) == ("postgresql", "modelgate", password)
    assert (url.hostname, url.port, url.path) == (
        "mg-modelgate-postgresql.modelgate.svc",
        5432,
        "/modelgate",
    )
    env = _env(_pod(sts)["containers"][0])
    assert env["POSTGRES_PASSWORD"]["secretKeyRef"] == {
        "name": "mg-modelgate-postgresql",
        "key": "password",
    }

    # every process of the chart reads that URL
    for obj in [*by_kind(objs, "Deployment"), one(objs, "Job"), one(objs, "CronJob")]:
        assert _database_ref(obj) == {"name": "mg-modelgate-postgresql", "key": "url"}, obj[
            "metadata"
        ]["name"]
    # the database is created by the release: the first migration runs after it
    job = one(objs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


def test_an_external_database_replaces_the_bundled_one() -> None:
    objs = _defaults(**{"database.existingSecret": "prod-db"})
    assert not by_kind(objs, "StatefulSet")
    assert not [s for s in by_kind(objs, "Secret") if "postgresql" in s["metadata"]["name"]]
    assert one(objs, "Job")["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    for obj in by_kind(objs, "Deployment"):
        assert _database_ref(obj) == {"name": "prod-db", "key": "url"}

    url = "postgresql://mg:secret@db.example.com:5432/modelgate"
    objs = _defaults(**{"database.url": url})
    assert not by_kind(objs, "StatefulSet")
    secret = _named(objs, "Secret", "mg-modelgate-database")
    assert base64.b64decode(secret["data"]["url"]).decode() == url
    for obj in by_kind(objs, "Deployment"):
        assert _database_ref(obj) == {"name": "mg-modelgate-database", "key": "url"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"postgresql.enabled": "false"}, "no database: set database.existingSecret"),
        (
            {"database.existingSecret": "a", "database.url": "postgresql://u:p@h/db"},
            "database.existingSecret and database.url are both set",
        ),
        ({"database.url": "mysql://root:hunter2@h/db"}, 'got the scheme "mysql:"'),
        ({"dashboard.ingress.enabled": "true"}, "exposing the dashboard"),
        ({"dashboard.service.type": "LoadBalancer"}, "exposing the dashboard"),
        (
            {"dashboard.ingress.enabled": "true", "auth.allowAnonymous": "true"},
            "dashboard.ingress.enabled needs dashboard.ingress.host",
        ),
        (
            {"dashboard.allowAnonymous": "true"},
            "dashboard.allowAnonymous and dashboard.auth are gone",
        ),
        ({"dashboard.replicaCount": "0"}, "dashboard.replicaCount must be at least 1"),
    ],
)
def test_bad_database_and_dashboard_values_fail_once_with_a_clear_message(
    sets: dict[str, str], message: str
) -> None:
    error = render_error(base=False, sets=sets)
    assert message in error
    assert "hunter2" not in error  # a database password never appears in an error
    # helm lint reports `fail` per template that hits it: the chart says it once
    lint = helm(
        "lint",
        str(CHART),
        *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
        check=False,
    )
    assert lint.stderr.count(message) == 1, lint.stderr


def test_dashboard_is_deployed_hardened_and_cluster_internal_by_default() -> None:
    objs = _defaults()
    dep = _named(objs, "Deployment", "mg-modelgate-dashboard")
    spec = _pod(dep)
    # no Kubernetes identity by default: the pod runs as its own service account, without token
    assert spec["serviceAccountName"] == "mg-modelgate-dashboard"
    assert spec["automountServiceAccountToken"] is False
    account = _named(objs, "ServiceAccount", "mg-modelgate-dashboard")
    assert account["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = spec["containers"][0]
    assert c["args"][:5] == ["dashboard", "--host", "0.0.0.0", "--port", "8080"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert not c["image"].endswith(":latest")
    env = _env(c)
    assert env["MODELGATE_SCAN_INTERVAL_SECONDS"] == "86400"
    assert env["MODELGATE_POLICY_DIR"] == "/etc/modelgate/policies"
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/etc/modelgate/policies", "/tmp"}
    svc = _named(objs, "Service", "mg-modelgate-dashboard")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "dashboard"
    assert not by_kind(objs, "Ingress")


def test_postgresql_pod_is_hardened() -> None:
    spec = _pod(_named(_defaults(), "StatefulSet", "mg-modelgate-postgresql"))
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 999,
        "runAsGroup": 999,
        "fsGroup": 999,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c = spec["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {
        "data": "/var/lib/postgresql/data",
        "run": "/var/run/postgresql",
        "tmp": "/tmp",
    }
    assert _env(c)["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert c["readinessProbe"]["exec"]["command"][0] == "pg_isready"


def test_dashboard_uses_its_own_database_credentials_when_given() -> None:
    objs = _defaults(
        **{
            "database.existingSecret": "rw-db",
            "dashboard.database.existingSecret": "ro-db",
            "dashboard.database.urlKey": "reader-url",
        }
    )
    assert _database_ref(_named(objs, "Deployment", "mg-modelgate-dashboard")) == {
        "name": "ro-db",
        "key": "reader-url",
    }
    assert _database_ref(_named(objs, "Deployment", "mg-modelgate")) == {
        "name": "rw-db",
        "key": "url",
    }
    assert _database_ref(one(objs, "CronJob")) == {"name": "rw-db", "key": "url"}


def test_ingress_only_when_asked_for_and_callers_can_sign_in() -> None:
    objs = _defaults(
        **{
            "auth.tokenFileSecret": "modelgate-tokens",
            "dashboard.ingress.enabled": "true",
            "dashboard.ingress.host": "mg.example.com",
            "dashboard.ingress.className": "nginx",
        }
    )
    ingress = one(objs, "Ingress")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "mg.example.com"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "mg-modelgate-dashboard", "port": {"name": "http"}}


def test_dashboard_can_be_left_out() -> None:
    objs = _defaults(**{"dashboard.enabled": "false"})
    assert [d["metadata"]["name"] for d in by_kind(objs, "Deployment")] == ["mg-modelgate"]
    assert "mg-modelgate-dashboard" not in {s["metadata"]["name"] for s in by_kind(objs, "Service")}
    accounts = {a["metadata"]["name"] for a in by_kind(objs, "ServiceAccount")}
    assert "mg-modelgate-dashboard" not in accounts


# ------------------------------------------------------------------------ dashboard network


INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nginx"}}}
DNS = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
DATABASE = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 5432}]}
API_SERVER = {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 6443}]}
RESTRICTED = {"networkPolicy.restrictEgress": True, "networkPolicy.egressTo": [DATABASE]}


def _dashboard_policy(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return _named(objs, "NetworkPolicy", "mg-modelgate-dashboard")


def test_dashboard_network_policy_admits_only_its_port_from_the_release_namespace() -> None:
    objs = _defaults()
    np = _dashboard_policy(objs)
    dep = _named(objs, "Deployment", "mg-modelgate-dashboard")
    # it selects the dashboard pods, and the webhook's policy does not
    assert np["spec"]["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    webhook = _named(objs, "NetworkPolicy", "mg-modelgate")["spec"]["podSelector"]["matchLabels"]
    assert webhook["app.kubernetes.io/component"] == "webhook"
    assert np["metadata"]["namespace"] == "modelgate"
    # ingress only: egress stays open unless networkPolicy.restrictEgress
    assert np["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in np["spec"]
    # one rule: the container's named HTTP port, from pods of the policy's own namespace
    assert np["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"podSelector": {}}]}
    ]
    ports = {p["name"] for p in _pod(dep)["containers"][0]["ports"]}
    assert ports == {"http"}


def test_dashboard_network_policy_adds_the_listed_peers() -> None:
    objs = render(
        base=False,
        sets={
            "auth.tokenFileSecret": "modelgate-tokens",
            "dashboard.ingress.enabled": "true",
            "dashboard.ingress.host": "mg.example.com",
        },
        set_json={"dashboard.networkPolicy.ingressFrom": [INGRESS_NGINX]},
    )
    rule = _dashboard_policy(objs)["spec"]["ingress"]
    assert rule == [
        {
            "ports": [{"port": "http", "protocol": "TCP"}],
            "from": [{"podSelector": {}}, INGRESS_NGINX],
        }
    ]
    # the chart's Ingress example lets its controller's namespace in
    example = render(CHART / "ci" / "dashboard-ingress-values.yaml", base=False)
    peers = _dashboard_policy(example)["spec"]["ingress"][0]["from"]
    assert peers[0] == {"podSelector": {}} and len(peers) == 2
    assert peers[1]["namespaceSelector"]["matchLabels"]


@pytest.mark.parametrize(
    "sets",
    [{"dashboard.enabled": "false"}, {"networkPolicy.enabled": "false"}],
    ids=["no-dashboard", "no-network-policies"],
)
def test_dashboard_network_policy_only_with_the_dashboard_and_network_policies(
    sets: dict[str, str],
) -> None:
    names = {np["metadata"]["name"] for np in by_kind(_defaults(**sets), "NetworkPolicy")}
    assert "mg-modelgate-dashboard" not in names


def test_restricted_egress_is_mirrored_for_the_dashboard() -> None:
    np = _dashboard_policy(render(base=False, set_json=RESTRICTED))
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["egress"] == [DNS, DATABASE]
    # the dashboard's own destinations come on top, for the dashboard only
    objs = render(
        base=False,
        sets={"auth.kubernetesTokens": "true"},
        set_json={**RESTRICTED, "dashboard.networkPolicy.egressTo": [API_SERVER]},
    )
    assert _dashboard_policy(objs)["spec"]["egress"] == [DNS, DATABASE, API_SERVER]
    assert _named(objs, "NetworkPolicy", "mg-modelgate")["spec"]["egress"] == [DNS, DATABASE]


@pytest.mark.parametrize(
    ("sets", "needs"),
    [
        ({"auth.kubernetesTokens": "true"}, "the Kubernetes API server"),
        ({"auth.kubernetesAuthorization": "true"}, "the Kubernetes API server"),
        (
            {"auth.oidc.issuer": "https://idp.example.com", "auth.oidc.audience": "modelgate"},
            "the OIDC issuer https://idp.example.com",
        ),
    ],
    ids=["kubernetes-tokens", "kubernetes-authorization", "oidc"],
)
def test_restricted_egress_needs_the_dashboards_own_destinations(
    sets: dict[str, str], needs: str
) -> None:
    error = render_error(base=False, sets=sets, set_json=RESTRICTED)
    assert needs in error and "dashboard.networkPolicy.egressTo" in error
    # not when the dashboard is left out, or the webhook's egress is not restricted
    render(base=False, sets={**sets, "dashboard.enabled": "false"}, set_json=RESTRICTED)
    render(base=False, sets=sets, set_json={"networkPolicy.egressTo": [DATABASE]})
