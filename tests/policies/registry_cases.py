"""Policy inputs with ``input.registry`` (MODELGATE_APPROVAL_SOURCE=inventory), built with
:func:`modelgate.approvals.registry_entry` from approval records: for the engine parity test
and for the check that the Rego rule and :func:`modelgate.approvals.sign_off` agree."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modelgate.approvals import RegistryEntry, registry_entry
from modelgate.inventory.records import ApprovalRecord, ExemptionRecord, Scope
from modelgate.policy_input import PolicyInput
from tests.policies.samples import NOW, TODAY, sample, to_input, with_annotations

CLUSTER = "prod-eu"


def approval(
    n: int,
    approver: str,
    *,
    decision: str = "approved",
    days_ago: int = 3,
    expires_in: int | None = None,
    scope: Scope | None = None,
    revoked: bool = False,
) -> ApprovalRecord:
    created = NOW - timedelta(days=days_ago, minutes=-n)
    return ApprovalRecord(
        id=n,
        model="",
        version="",
        decision=decision,
        approver=approver,
        approver_email=approver,
        approver_groups=["model-risk"],
        created=created,
        reason="reviewed" if decision == "approved" else "biased holdout",
        evidence=[],
        expires=None if expires_in is None else TODAY + timedelta(days=expires_in),
        scope=scope,
        status="",
        revoked_at=created + timedelta(hours=1) if revoked else None,
        revoked_by="carol@example.com" if revoked else None,
        revoke_reason="withdrawn" if revoked else None,
    )


def exemption(n: int, expires_in: int, revoked: bool = False) -> ExemptionRecord:
    return ExemptionRecord(
        id=n,
        model="",
        version="",
        granted_by="risk-officer@example.com",
        granted_by_groups=["model-risk"],
        created=NOW - timedelta(days=2),
        reason='research "sandbox"',
        expires=TODAY + timedelta(days=expires_in),
        status="",
        revoked_at=NOW - timedelta(days=1) if revoked else None,
        revoked_by="carol@example.com" if revoked else None,
        revoke_reason="ended" if revoked else None,
    )


#: (case name, sample file, annotations to change, approvals, exemptions, namespace)
Case = tuple[str, str, dict[str, str], list[ApprovalRecord], list[ExemptionRecord]]

PLAIN = "01-compliant-deployment.yaml"
HIGH = "05-high-risk-certified-deployment.yaml"

CASES: list[Case] = [
    ("none", PLAIN, {}, [], []),
    ("one", PLAIN, {}, [approval(1, "a@example.com")], []),
    (
        "one-pending-annotation",
        PLAIN,
        {"compliance_status": "pending-review"},
        [approval(1, "a@example.com")],
        [],
    ),
    (
        "one-rejected-annotation",
        PLAIN,
        {"compliance_status": "rejected"},
        [approval(1, "a@example.com")],
        [],
    ),
    (
        "exempt-annotation-no-record",
        PLAIN,
        {"compliance_status": "exempt", "exempt_reason": "x"},
        [],
        [],
    ),
    ("revoked", PLAIN, {}, [approval(1, "a@example.com", revoked=True)], []),
    (
        "rejected",
        PLAIN,
        {},
        [
            approval(1, "a@example.com"),
            approval(2, "b@example.com", decision="rejected", days_ago=1),
        ],
        [],
    ),
    (
        "approved-after-rejection",
        PLAIN,
        {},
        [
            approval(1, "b@example.com", decision="rejected", days_ago=2),
            approval(2, "a@example.com", days_ago=1),
        ],
        [],
    ),
    ("expired", PLAIN, {}, [approval(1, "a@example.com", expires_in=-1)], []),
    ("expires-today", PLAIN, {}, [approval(1, "a@example.com", expires_in=0)], []),
    ("expires-soon", PLAIN, {}, [approval(1, "a@example.com", expires_in=10)], []),
    (
        "scope-namespace-in",
        PLAIN,
        {},
        [approval(1, "a@example.com", scope=Scope(namespaces=["ml-prod"]))],
        [],
    ),
    (
        "scope-namespace-out",
        PLAIN,
        {},
        [approval(1, "a@example.com", scope=Scope(namespaces=["staging"]))],
        [],
    ),
    (
        "scope-cluster-out",
        PLAIN,
        {},
        [approval(1, "a@example.com", scope=Scope(clusters=["prod-us"]))],
        [],
    ),
    ("high-one", HIGH, {}, [approval(1, "a@example.com")], []),
    ("high-same-twice", HIGH, {}, [approval(1, "a@example.com"), approval(2, "A@EXAMPLE.COM")], []),
    ("high-two", HIGH, {}, [approval(1, "a@example.com"), approval(2, "b@example.com")], []),
    ("exemption", PLAIN, {"compliance_status": "exempt"}, [], [exemption(7, 30)]),
    ("exemption-expired", PLAIN, {}, [], [exemption(7, -1)]),
    ("exemption-revoked", PLAIN, {}, [], [exemption(7, 30, revoked=True)]),
    ("odd-version", PLAIN, {"model_version": '1.4.2 "beta"'}, [], []),
]


def entry(
    name: str,
    md: dict[str, Any],
    approvals: list[ApprovalRecord],
    exemptions: list[ExemptionRecord],
) -> RegistryEntry:
    return registry_entry(
        cluster=CLUSTER,
        model=str(md.get("model-name", "")),
        version=str(md.get("model-version", "")),
        registered=True,
        approvals=approvals,
        exemptions=exemptions,
    )


def registry_inputs() -> dict[str, tuple[PolicyInput, Case]]:
    out: dict[str, tuple[PolicyInput, Case]] = {}
    for case in CASES:
        name, file, changes, approvals, exemptions = case
        obj = with_annotations(sample(file), **changes) if changes else sample(file)
        policy_input = to_input(obj)
        md = policy_input["workload"]["metadata"]
        policy_input["registry"] = entry(name, md, approvals, exemptions)
        out[f"registry-{name}"] = (policy_input, case)
    return out
