"""The dashboard pod's identity wiring, on rendered YAML: the `auth.*` values reach the
dashboard's environment, secrets are referenced and never inlined, the token file is a read-only
Secret volume, and the service-account token is mounted only for Kubernetes identity."""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.helm import by_kind, render

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


def test_a_given_service_account_is_used_not_created() -> None:
    objs = _render(**{"auth.kubernetesTokens": "true", "auth.serviceAccountName": "inventory-api"})
    pod = _dashboard(objs)
    assert pod["serviceAccountName"] == "inventory-api"
    assert pod["automountServiceAccountToken"] is True
    assert DASHBOARD not in {a["metadata"]["name"] for a in by_kind(objs, "ServiceAccount")}
    assert "inventory-api" not in {a["metadata"]["name"] for a in by_kind(objs, "ServiceAccount")}
