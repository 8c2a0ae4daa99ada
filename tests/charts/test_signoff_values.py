"""The chart's sign-off values: the approval source reaches the webhook, the ClusterRoles of
the modelgate.dev virtual resources, the auth-delegator binding (see also
tests/identity/test_kubernetes.py, which binds these roles on a real API server)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.helm import by_kind, one, render, render_error


def _env(objs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def _roles(objs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        o["metadata"]["labels"]["modelgate.dev/role"]: o["rules"]
        for o in by_kind(objs, "ClusterRole")
        if "modelgate.dev/role" in o["metadata"]["labels"]
    }


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (resource, verb)
        for rule in rules
        if rule["apiGroups"] == ["modelgate.dev"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_webhook_checks_recorded_sign_off_by_default() -> None:
    env = _env(render())
    assert env["MODELGATE_APPROVAL_SOURCE"] == "inventory"
    assert env["MODELGATE_APPROVAL_REFRESH_SECONDS"] == "2"
    migrating = _env(render(sets={"approvals.source": "annotation"}))
    assert migrating["MODELGATE_APPROVAL_SOURCE"] == "annotation"


def test_a_bad_approval_source_fails_clearly() -> None:
    assert "approvals.source must be inventory or annotation" in render_error(
        sets={"approvals.source": "maybe"}
    )


def test_cluster_roles_grow_from_viewer_to_admin() -> None:
    roles = _roles(render())
    viewer, owner = _grants(roles["viewer"]), _grants(roles["owner"])
    approver, admin = _grants(roles["approver"]), _grants(roles["admin"])
    assert viewer == {
        (r, v) for r in ("models", "approvals", "exemptions") for v in ("get", "list")
    }
    assert owner == viewer | {("models", "create")}
    assert approver == owner | {
        ("models", "approve"),
        ("approvals", "approve"),
        ("exemptions", "create"),
    }
    assert admin == {("*", "*")}


def test_roles_can_be_left_out() -> None:
    assert _roles(render(sets={"rbac.roles": "false"})) == {}


@pytest.mark.parametrize("option", ["auth.kubernetesTokens", "auth.kubernetesAuthorization"])
def test_kubernetes_identity_binds_the_dashboard_to_auth_delegator(option: str) -> None:
    assert not [
        b
        for b in by_kind(render(), "ClusterRoleBinding")
        if b["roleRef"]["name"].startswith("system:")
    ]
    on = {option: "true", "dashboard.enabled": "true"}  # the binding is the dashboard's
    bindings = [
        b
        for b in by_kind(render(sets=on), "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
    ]
    assert [s["name"] for s in bindings[0]["subjects"]] == ["mg-modelgate-dashboard"]
    named = render(sets={**on, "auth.serviceAccountName": "api"})
    subjects = [
        s["name"]
        for b in by_kind(named, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "system:auth-delegator"
        for s in b["subjects"]
    ]
    assert subjects == ["api"]
