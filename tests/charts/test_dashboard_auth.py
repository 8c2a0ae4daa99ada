"""The dashboard pod's identity wiring, on rendered YAML: the `auth.*` values reach the
dashboard's environment, secrets are referenced and never inlined, the token file is a read-only
Secret volume, the service-account token is mounted only for Kubernetes identity, and
combinations the dashboard would refuse (or that would sign people out at random) fail the
render with a message naming the values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelgate.settings import Settings
from tests.charts.helm import CHART, by_kind, render, render_error
from tests.fixtures.tools import REPO_ROOT

DASHBOARD = "mg-modelgate-dashboard"
# the dashboard on, on an external database (the webhook-centred BASE_SET leaves it out)
ON = {"database.existingSecret": "modelgate-database", "dashboard.enabled": "true"}
OIDC = {
    "auth.oidc.issuer": "https://idp.example.com",
    "auth.oidc.clientId": "modelgate",
    "auth.oidc.clientSecretName": "modelgate-oidc",
    "auth.oidc.redirectUrl": "https://mg.example.com/auth/callback",
    "auth.sessionSecretName": "modelgate-session",
}


def _render(**sets: str) -> list[dict[str, Any]]:
    return render(base=False, sets={**ON, **sets})


def _dashboard(objs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [d for d in by_kind(objs, "Deployment") if d["metadata"]["name"] == DASHBOARD]
    assert len(found) == 1
    pod: dict[str, Any] = found[0]["spec"]["template"]["spec"]
    return pod


def _env(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in pod["containers"][0]["env"]}


def _values(pod: dict[str, Any]) -> dict[str, str]:
    return {name: e["value"] for name, e in _env(pod).items() if "value" in e}


def _error(**sets: str) -> str:
    return render_error(base=False, sets={**ON, **sets})


def test_auth_values_reach_the_dashboard_environment() -> None:
    pod = _dashboard(
        _render(
            **OIDC,
            **{
                "auth.oidc.usernameClaim": "preferred_username",
                "auth.oidc.groupsClaim": "roles",
                "auth.tokenFileSecret": "modelgate-tokens",
                "auth.roleGroups": "viewer=ml-readers|auditors\\,approver=model-risk",
                "auth.trustedProxyHeaders": "true",
                "auth.trustedProxies": "10.1.0.0/16\\,10.2.0.5",
                "auth.allowAnonymous": "true",
                "auth.sessionCookieSecure": "false",
            },
        )
    )
    values = _values(pod)
    assert values["MODELGATE_TOKEN_FILE"] == "/etc/modelgate/auth/tokens.csv"
    assert values["MODELGATE_OIDC_ISSUER"] == "https://idp.example.com"
    assert values["MODELGATE_OIDC_AUDIENCE"] == "modelgate"  # the client id by default
    assert values["MODELGATE_OIDC_USERNAME_CLAIM"] == "preferred_username"
    assert values["MODELGATE_OIDC_GROUPS_CLAIM"] == "roles"
    assert values["MODELGATE_OIDC_CLIENT_ID"] == "modelgate"
    assert values["MODELGATE_OIDC_REDIRECT_URL"] == "https://mg.example.com/auth/callback"
    assert values["MODELGATE_ROLE_GROUPS"] == "viewer=ml-readers|auditors,approver=model-risk"
    assert values["MODELGATE_TRUSTED_PROXY_HEADERS"] == "true"
    assert values["MODELGATE_TRUSTED_PROXIES"] == "10.1.0.0/16,10.2.0.5"
    assert values["MODELGATE_ALLOW_ANONYMOUS"] == "true"
    assert values["MODELGATE_SESSION_COOKIE_SECURE"] == "false"
    assert values["MODELGATE_KUBE_AUTH"] == "false"
    assert values["MODELGATE_KUBE_AUTHZ"] == "false"
    audience = _values(_dashboard(_render(**OIDC, **{"auth.oidc.audience": "api://mg"})))
    assert audience["MODELGATE_OIDC_AUDIENCE"] == "api://mg"


@pytest.mark.parametrize("example", [None, "dashboard-ingress"], ids=["defaults", "ci-example"])
def test_the_dashboard_starts_with_the_rendered_environment(
    example: str | None, tmp_path: Path
) -> None:
    """The settings parse and the app (authenticators, browser sign-in client) is built from
    exactly what the chart renders; nothing connects until a request needs it."""
    from dashboard.app import create_app

    files = [CHART / "ci" / f"{example}-values.yaml"] if example else []
    objs = render(*files, base=False, sets=ON if not example else None)
    env = {
        name: entry.get("value", "from-a-secret") for name, entry in _env(_dashboard(objs)).items()
    }
    env["MODELGATE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'inventory.db'}"
    env["MODELGATE_POLICY_DIR"] = str(REPO_ROOT / "policies")
    settings = Settings.from_env(env)
    assert settings.kube_auth is bool(example)
    assert settings.session_cookie_secure is True
    app = create_app(settings)
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_defaults_turn_nothing_on_and_keep_the_cookie_secure() -> None:
    pod = _dashboard(_render())
    values = _values(pod)
    for name in ("MODELGATE_TOKEN_FILE", "MODELGATE_OIDC_ISSUER", "MODELGATE_OIDC_CLIENT_ID"):
        assert name not in values
    assert "MODELGATE_SESSION_SECRET" not in _env(pod)
    assert values["MODELGATE_SESSION_COOKIE_SECURE"] == "true"
    for name in (
        "MODELGATE_KUBE_AUTH",
        "MODELGATE_KUBE_AUTHZ",
        "MODELGATE_TRUSTED_PROXY_HEADERS",
        "MODELGATE_ALLOW_ANONYMOUS",
    ):
        assert values[name] == "false", name


def test_secrets_are_referenced_never_inlined() -> None:
    env = _env(_dashboard(_render(**OIDC)))
    assert env["MODELGATE_OIDC_CLIENT_SECRET"] == {
        "name": "MODELGATE_OIDC_CLIENT_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "modelgate-oidc", "key": "client-secret"}},
    }
    assert env["MODELGATE_SESSION_SECRET"] == {
        "name": "MODELGATE_SESSION_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "modelgate-session", "key": "session-secret"}},
    }
    for name, entry in env.items():
        if "SECRET" in name or name in ("MODELGATE_DATABASE_URL",):
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], name
    # and no Secret of the chart carries them
    names = {s["metadata"]["name"] for s in by_kind(_render(**OIDC), "Secret")}
    assert not names & {"modelgate-oidc", "modelgate-session"}


def test_the_token_file_is_a_read_only_secret_volume() -> None:
    pod = _dashboard(_render(**{"auth.tokenFileSecret": "modelgate-tokens"}))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["auth-tokens"]["secret"] == {
        "secretName": "modelgate-tokens",
        "defaultMode": 0o440,  # root-owned, group fsGroup: the non-root user reads it
        "items": [{"key": "tokens.csv", "path": "tokens.csv"}],
    }
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["auth-tokens"] == {
        "name": "auth-tokens",
        "mountPath": "/etc/modelgate/auth",
        "readOnly": True,
    }
    path = _values(pod)["MODELGATE_TOKEN_FILE"]
    assert path == mounts["auth-tokens"]["mountPath"] + "/tokens.csv"
    # without a token file there is neither the volume nor the setting
    plain = _dashboard(_render())
    assert "auth-tokens" not in {v["name"] for v in plain["volumes"]}
    assert "MODELGATE_TOKEN_FILE" not in _values(plain)


@pytest.mark.parametrize("option", ["auth.kubernetesTokens", "auth.kubernetesAuthorization"])
def test_kubernetes_identity_runs_the_dashboard_with_its_service_account_token(
    option: str,
) -> None:
    objs = _render(**{option: "true"})
    pod = _dashboard(objs)
    assert pod["serviceAccountName"] == DASHBOARD
    assert pod["automountServiceAccountToken"] is True
    env = _values(pod)
    assert env["MODELGATE_KUBE_AUTH" if option.endswith("Tokens") else "MODELGATE_KUBE_AUTHZ"] == (
        "true"
    )
    account = [a for a in by_kind(objs, "ServiceAccount") if a["metadata"]["name"] == DASHBOARD]
    assert len(account) == 1
    assert account[0]["automountServiceAccountToken"] is False  # only this pod asks for it
    binding = next(
        b
        for b in by_kind(objs, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": DASHBOARD, "namespace": "modelgate"}
    ]


@pytest.mark.parametrize("option", ["auth.kubernetesTokens", "auth.kubernetesAuthorization"])
@pytest.mark.parametrize("account", ["", "inventory-api"], ids=["chart-account", "given-account"])
def test_kubernetes_identity_grants_nothing_without_the_dashboard(
    option: str, account: str
) -> None:
    objs = _render(
        **{option: "true", "auth.serviceAccountName": account, "dashboard.enabled": "false"}
    )
    # nothing runs as the dashboard's service account, so nothing may review tokens as it
    delegators = [
        b
        for b in by_kind(objs, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
    ]
    assert delegators == []
    assert DASHBOARD not in {a["metadata"]["name"] for a in by_kind(objs, "ServiceAccount")}
    assert not [d for d in by_kind(objs, "Deployment") if d["metadata"]["name"] == DASHBOARD]
    # with the dashboard deployed the same values bind it
    bound = _render(**{option: "true", "auth.serviceAccountName": account})
    subjects = [
        b["subjects"]
        for b in by_kind(bound, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
    ]
    name = account or DASHBOARD
    assert subjects == [[{"kind": "ServiceAccount", "name": name, "namespace": "modelgate"}]]


def test_a_given_service_account_is_used_not_created() -> None:
    objs = _render(**{"auth.kubernetesTokens": "true", "auth.serviceAccountName": "inventory-api"})
    pod = _dashboard(objs)
    assert pod["serviceAccountName"] == "inventory-api"
    assert pod["automountServiceAccountToken"] is True
    assert DASHBOARD not in {a["metadata"]["name"] for a in by_kind(objs, "ServiceAccount")}
    assert "inventory-api" not in {a["metadata"]["name"] for a in by_kind(objs, "ServiceAccount")}


@pytest.mark.parametrize(
    "sets",
    [
        {"auth.tokenFileSecret": "modelgate-tokens"},
        {**OIDC},
        {"auth.oidc.issuer": "https://idp.example.com", "auth.oidc.audience": "modelgate"},
        {"auth.kubernetesTokens": "true"},
        {
            "auth.trustedProxyHeaders": "true",
            "auth.trustedProxies": "10.1.0.0/16",
            "auth.sessionSecretName": "modelgate-session",
        },
        {"auth.allowAnonymous": "true"},
    ],
    ids=["token-file", "oidc-sign-in", "oidc-tokens", "kubernetes", "proxy", "anonymous"],
)
def test_the_dashboard_is_exposed_once_callers_can_sign_in(sets: dict[str, str]) -> None:
    objs = _render(
        **sets,
        **{"dashboard.ingress.enabled": "true", "dashboard.ingress.host": "mg.example.com"},
    )
    assert [i["metadata"]["name"] for i in by_kind(objs, "Ingress")] == [DASHBOARD]
    service = _render(**sets, **{"dashboard.service.type": "LoadBalancer"})
    assert any(s["spec"]["type"] == "LoadBalancer" for s in by_kind(service, "Service"))


def test_one_process_may_sign_browsers_in_without_a_shared_key() -> None:
    single = {**OIDC, "auth.sessionSecretName": "", "dashboard.workers": "1"}
    assert "MODELGATE_SESSION_SECRET" not in _env(_dashboard(_render(**single)))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            {"dashboard.ingress.enabled": "true", "dashboard.ingress.host": "mg.example.com"},
            "exposing the dashboard (dashboard.ingress.enabled, or a dashboard.service.type other "
            "than ClusterIP) needs a way to sign callers in",
        ),
        ({"dashboard.service.type": "NodePort"}, "auth.allowAnonymous=true instead"),
        (
            # a role source is not an authenticator
            {"dashboard.service.type": "NodePort", "auth.kubernetesAuthorization": "true"},
            "needs a way to sign callers in",
        ),
        (
            {"auth.trustedProxyHeaders": "true"},
            "auth.trustedProxyHeaders needs auth.trustedProxies",
        ),
        (
            {"auth.oidc.clientId": "modelgate"},
            "auth.oidc.clientId (browser sign-in) needs auth.oidc.issuer",
        ),
        (
            {"auth.oidc.issuer": "https://idp.example.com"},
            "auth.oidc.issuer needs auth.oidc.audience (or auth.oidc.clientId",
        ),
        (
            {
                "auth.oidc.issuer": "https://idp.example.com",
                "auth.oidc.audience": "a",
                "auth.oidc.clientSecretName": "modelgate-oidc",
            },
            "auth.oidc.clientSecretName and auth.oidc.redirectUrl are only used with "
            "auth.oidc.clientId",
        ),
        (
            {**OIDC, "auth.sessionSecretName": ""},
            "with 2 dashboard processes (dashboard.replicaCount=1 x dashboard.workers=2) need "
            "auth.sessionSecretName",
        ),
        (
            {
                **OIDC,
                "auth.sessionSecretName": "",
                "dashboard.workers": "1",
                "dashboard.replicaCount": "3",
            },
            "with 3 dashboard processes",
        ),
        (
            # the sign-off forms' CSRF token lives in the session too
            {"auth.trustedProxyHeaders": "true", "auth.trustedProxies": "10.1.0.0/16"},
            "need auth.sessionSecretName",
        ),
        ({"dashboard.auth.oidc": "x"}, "dashboard.allowAnonymous and dashboard.auth are gone"),
    ],
)
def test_unusable_auth_values_fail_with_a_message_naming_them(
    sets: dict[str, str], message: str
) -> None:
    assert message in _error(**sets)
