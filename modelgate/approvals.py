"""The sign-off rules, defined once: which recorded approvals count, whether a model version
is signed off (where), separation of duties, and the ``input.registry`` document the Rego
bundle decides admission from.

- An approval's **status** (:func:`annotate_approvals`): ``revoked`` once revoked;
  ``superseded`` when a later rejection or any later revocation wins over it ("a rejection or
  revocation by any approver wins until a new approval"), or, for a rejection, when a later
  approval replaced it; else ``expired`` after its ``expires`` day; else ``current``.
- **In scope** (:func:`in_scope`): an approval's scope lists clusters and/or namespaces; an
  absent or empty list means every one.
- **Signed off** (:func:`sign_off`): a current exemption, or enough current approvals in
  scope from distinct approvers: two for the policy data's ``two_approver_tiers``
  (default ``high``), else one.
- **Separation of duties** (:func:`duty_conflict`): nobody approves (or exempts) a version
  whose owner is them, or that they registered or deployed, matched on user name and e-mail,
  case-insensitively; nobody approves twice towards the same sign-off.

Admission decides with Rego from :func:`registry_entry` (``policies/modelgate/compliance/
signoff.rego``); the tests check that both agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, TypedDict

from modelgate.inventory.records import (
    ApprovalRecord,
    ExemptionRecord,
    RecordedCertificationRecord,
    Scope,
)
from policies.config import PolicyConfig

APPROVED = "approved"
REJECTED = "rejected"
DECISIONS = (APPROVED, REJECTED)

CURRENT = "current"
EXPIRED = "expired"
REVOKED = "revoked"
SUPERSEDED = "superseded"

SignOffState = Literal["approved", "exempt", "pending-review", "rejected"]


class SignOffRefused(Exception):
    """A sign-off the rules do not allow (403, with the reason)."""


# --- statuses -----------------------------------------------------------------------------


def _blocking_time(approvals: Sequence[ApprovalRecord]) -> tuple[datetime, int] | None:
    """When (time, id) the newest rejection (not revoked) or revocation of an approval
    happened (a revocation ranks after every record of its instant)."""
    times = [
        (a["created"], a["id"])
        for a in approvals
        if a["decision"] == REJECTED and not a["revoked_at"]
    ]
    times += [
        (a["revoked_at"], 2**62) for a in approvals if a["decision"] == APPROVED and a["revoked_at"]
    ]
    return max(times) if times else None


def history_status(a: ApprovalRecord, approvals: Sequence[ApprovalRecord]) -> str:
    """``revoked``, ``superseded`` or ``live`` (what the date does not change)."""
    if a["revoked_at"] is not None:
        return REVOKED
    if a["decision"] == REJECTED:
        later = [
            b
            for b in approvals
            if b["decision"] == APPROVED
            and b["revoked_at"] is None
            and (b["created"], b["id"]) > (a["created"], a["id"])
        ]
        return SUPERSEDED if later else "live"
    blocked = _blocking_time(approvals)
    if blocked is not None and (a["created"], a["id"]) <= blocked:
        return SUPERSEDED
    return "live"


def approval_status(a: ApprovalRecord, approvals: Sequence[ApprovalRecord], today: date) -> str:
    status = history_status(a, approvals)
    if status != "live":
        return status
    if a["expires"] is not None and a["expires"] < today:
        return EXPIRED
    return CURRENT


def annotate_approvals(approvals: Sequence[ApprovalRecord], today: date) -> list[ApprovalRecord]:
    """The history with every status filled in, newest first."""
    out = [
        ApprovalRecord(**{**a, "status": approval_status(a, approvals, today)}) for a in approvals
    ]  # type: ignore[typeddict-item]
    return sorted(out, key=lambda a: (a["created"], a["id"]), reverse=True)


def dated_status(revoked_at: datetime | None, expires: date, today: date) -> str:
    """Status of an exemption or a recorded certification."""
    if revoked_at is not None:
        return REVOKED
    return EXPIRED if expires < today else CURRENT


# --- scope and sign-off -------------------------------------------------------------------


def in_scope(scope: Mapping[str, Any] | None, cluster: str | None, namespace: str | None) -> bool:
    """Whether an approval with ``scope`` holds in ``cluster``/``namespace`` (``None``: the
    question is not asked, e.g. for a version not deployed anywhere yet)."""
    if not scope:
        return True
    clusters = [str(c) for c in scope.get("clusters") or []]
    namespaces = [str(n) for n in scope.get("namespaces") or []]
    if clusters and cluster is not None and cluster not in clusters:
        return False
    return not (namespaces and namespace is not None and namespace not in namespaces)


def approvers_needed(risk_tier: str, config: PolicyConfig) -> int:
    return 2 if risk_tier in config.two_approver_tiers else 1


class SignOffRef(TypedDict):
    type: str  # approval / exemption
    id: int


@dataclass(frozen=True)
class SignOff:
    """Where a model version stands."""

    state: SignOffState
    #: the current approvals (or the exemption) that sign it off, when it is signed off
    by: tuple[SignOffRef, ...] = ()
    needed: int = 1
    #: distinct approvers of the current approvals in scope
    approvers: tuple[str, ...] = ()
    reason: str = ""
    rejection: ApprovalRecord | None = field(default=None)

    @property
    def admitted(self) -> bool:
        return self.state in ("approved", "exempt")


def current_approvals(
    approvals: Sequence[ApprovalRecord],
    today: date,
    cluster: str | None = None,
    namespace: str | None = None,
) -> list[ApprovalRecord]:
    """The approvals (not rejections) that hold today, in ``cluster``/``namespace`` when
    given: not revoked, superseded or expired, and in scope."""
    return [
        a
        for a in approvals
        if a["decision"] == APPROVED
        and approval_status(a, approvals, today) == CURRENT
        and in_scope(a["scope"], cluster, namespace)
    ]


def sign_off(
    *,
    model: str,
    version: str,
    risk_tier: str,
    approvals: Sequence[ApprovalRecord],
    exemptions: Sequence[ExemptionRecord],
    today: date,
    config: PolicyConfig,
    cluster: str | None = None,
    namespace: str | None = None,
) -> SignOff:
    """Whether ``model`` ``version`` is signed off today (in ``cluster``/``namespace``)."""
    needed = approvers_needed(risk_tier, config)
    current = current_approvals(approvals, today, cluster, namespace)
    approvers: list[str] = []
    counted: list[ApprovalRecord] = []
    for a in sorted(current, key=lambda a: (a["created"], a["id"])):
        if a["approver"].lower() not in approvers:
            approvers.append(a["approver"].lower())
            counted.append(a)
    rejection = next(
        (
            a
            for a in sorted(approvals, key=lambda a: a["created"], reverse=True)
            if a["decision"] == REJECTED and approval_status(a, approvals, today) == CURRENT
        ),
        None,
    )
    exemption = next(
        (
            e
            for e in sorted(exemptions, key=lambda e: e["created"], reverse=True)
            if dated_status(e["revoked_at"], e["expires"], today) == CURRENT
        ),
        None,
    )
    if len(counted) >= needed:
        return SignOff(
            "approved",
            tuple(SignOffRef(type="approval", id=a["id"]) for a in counted),
            needed,
            tuple(approvers),
            f"approved by {', '.join(a['approver'] for a in counted)}",
        )
    if exemption is not None:
        return SignOff(
            "exempt",
            (SignOffRef(type="exemption", id=exemption["id"]),),
            needed,
            tuple(approvers),
            f"exempt until {exemption['expires'].isoformat()} (granted by "
            f"{exemption['granted_by']}: {exemption['reason']})",
        )
    if rejection is not None:
        return SignOff(
            "rejected",
            (),
            needed,
            tuple(approvers),
            f"rejected by {rejection['approver']}: {rejection['reason']}",
            rejection,
        )
    missing = needed - len(counted)
    have = f" ({len(counted)} of {needed} so far)" if needed > 1 else ""
    return SignOff(
        "pending-review",
        (),
        needed,
        tuple(approvers),
        f"{model} {version} needs {missing} more approval{'s' if missing > 1 else ''}"
        f"{have}: modelgate approve {model} {version}",
    )


# --- separation of duties -------------------------------------------------------------------


def _names(values: Iterable[str | None]) -> set[str]:
    return {v.strip().lower() for v in values if v and v.strip()}


def duty_conflict(
    *,
    approver_names: Iterable[str],
    owner: str,
    registered_by: str | None,
    deployers: Iterable[str],
) -> str | None:
    """Why an approver with these names (user name, e-mail) may not sign off a version with
    this owner, registrant and deployers; ``None`` when nothing conflicts."""
    names = _names(approver_names)
    owner_names = _names(o for o in owner.replace(";", ",").split(","))
    if names & owner_names:
        return f"separation of duties: {owner.strip()} owns this model version"
    if registered_by and names & _names([registered_by]):
        return f"separation of duties: {registered_by} registered this model version"
    deployed = names & _names(deployers)
    if deployed:
        return f"separation of duties: {sorted(deployed)[0]} deployed this model version"
    return None


def already_approved(approver: str, approvals: Sequence[ApprovalRecord], today: date) -> bool:
    """Whether ``approver`` holds a current approval of the version (a second one would not
    count: two-approver tiers need distinct approvers)."""
    return any(
        a["decision"] == APPROVED
        and a["approver"].lower() == approver.lower()
        and approval_status(a, approvals, today) == CURRENT
        for a in approvals
    )


# --- the policy input ---------------------------------------------------------------------


class RegistryApproval(TypedDict):
    id: int
    approver: str
    time: str
    expires: str | None
    scope: Scope


class RegistryRejection(TypedDict):
    id: int
    approver: str
    time: str
    reason: str


class RegistryExemption(TypedDict):
    id: int
    granted_by: str
    time: str
    expires: str
    reason: str


class RegistryCertification(TypedDict):
    id: int
    name: str
    expires: str
    evidence: str | None
    recorded_by: str


class RegistryEntry(TypedDict):
    """``input.registry``: the recorded sign-off of the version being admitted. Statuses
    that depend on the day (expiry) and on the deployment (scope) are left to the policy."""

    source: str  # "inventory"
    cluster: str
    model: str
    version: str
    registered: bool
    approvals: list[RegistryApproval]  # not revoked, not superseded (expiry: the policy's)
    rejections: list[RegistryRejection]  # the rejections that stand
    exemptions: list[RegistryExemption]  # not revoked
    certifications: list[RegistryCertification]  # not revoked


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def registry_entry(
    *,
    cluster: str,
    model: str,
    version: str,
    registered: bool,
    approvals: Sequence[ApprovalRecord] = (),
    exemptions: Sequence[ExemptionRecord] = (),
    certifications: Sequence[RecordedCertificationRecord] = (),
) -> RegistryEntry:
    live = [a for a in approvals if history_status(a, approvals) == "live"]
    return RegistryEntry(
        source="inventory",
        cluster=cluster,
        model=model,
        version=version,
        registered=registered,
        approvals=[
            RegistryApproval(
                id=a["id"],
                approver=a["approver"],
                time=a["created"].isoformat(),
                expires=_iso(a["expires"]),
                scope=Scope(
                    clusters=list((a["scope"] or {}).get("clusters") or []),
                    namespaces=list((a["scope"] or {}).get("namespaces") or []),
                ),
            )
            for a in live
            if a["decision"] == APPROVED
        ],
        rejections=[
            RegistryRejection(
                id=a["id"],
                approver=a["approver"],
                time=a["created"].isoformat(),
                reason=a["reason"],
            )
            for a in live
            if a["decision"] == REJECTED
        ],
        exemptions=[
            RegistryExemption(
                id=e["id"],
                granted_by=e["granted_by"],
                time=e["created"].isoformat(),
                expires=e["expires"].isoformat(),
                reason=e["reason"],
            )
            for e in exemptions
            if e["revoked_at"] is None
        ],
        certifications=[
            RegistryCertification(
                id=c["id"],
                name=c["name"],
                expires=c["expires"].isoformat(),
                evidence=c["evidence"],
                recorded_by=c["recorded_by"],
            )
            for c in certifications
            if c["revoked_at"] is None
        ],
    )


def assumed_signed_off(cluster: str, model: str, version: str) -> RegistryEntry:
    """``input.registry`` that counts as signed off in any tier and scope: what the auditor
    evaluates the rest of the policy with (it judges sign-off itself, with :func:`sign_off`,
    and reports ``unapproved`` once rather than as a policy violation too)."""
    entry = unregistered_entry(cluster, model, version)
    entry["approvals"] = [
        RegistryApproval(
            id=0,
            approver=f"audit:{n}",
            time="",
            expires=None,
            scope=Scope(clusters=[], namespaces=[]),
        )
        for n in (1, 2)
    ]
    return entry


def expiring_approvals(
    state: SignOff,
    approvals: Sequence[ApprovalRecord],
    today: date,
    warning_days: int,
) -> list[ApprovalRecord]:
    """The counted approvals of a signed-off version that expire within ``warning_days``."""
    counted = {r["id"] for r in state.by if r["type"] == "approval"}
    return [
        a
        for a in approvals
        if a["id"] in counted
        and a["expires"] is not None
        and (a["expires"] - today).days <= warning_days
    ]


def unregistered_entry(cluster: str, model: str, version: str) -> RegistryEntry:
    """``input.registry`` for a version the inventory has no sign-off of."""
    return registry_entry(cluster=cluster, model=model, version=version, registered=False)


def admitted_by(
    entry: RegistryEntry, *, risk_tier: str, namespace: str, today: date, config: PolicyConfig
) -> list[SignOffRef]:
    """The recorded sign-off that admits a model with this registry entry (what the decision
    log records): the counted approvals, or the exemption."""
    approvals = [
        ApprovalRecord(
            id=a["id"],
            model=entry["model"],
            version=entry["version"],
            decision=APPROVED,
            approver=a["approver"],
            approver_email=None,
            approver_groups=[],
            created=datetime.fromisoformat(a["time"]),
            reason="",
            evidence=[],
            expires=date.fromisoformat(a["expires"]) if a["expires"] else None,
            scope=a["scope"],
            status="",
            revoked_at=None,
            revoked_by=None,
            revoke_reason=None,
        )
        for a in entry["approvals"]
    ]
    exemptions = [
        ExemptionRecord(
            id=e["id"],
            model=entry["model"],
            version=entry["version"],
            granted_by=e["granted_by"],
            granted_by_groups=[],
            created=datetime.fromisoformat(e["time"]),
            reason=e["reason"],
            expires=date.fromisoformat(e["expires"]),
            status="",
            revoked_at=None,
            revoked_by=None,
            revoke_reason=None,
        )
        for e in entry["exemptions"]
    ]
    result = sign_off(
        model=entry["model"],
        version=entry["version"],
        risk_tier=risk_tier,
        approvals=approvals,
        exemptions=exemptions,
        today=today,
        config=config,
        cluster=entry["cluster"],
        namespace=namespace,
    )
    return list(result.by)
