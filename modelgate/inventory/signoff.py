"""Sign-off in the inventory: registering versions, approvals, rejections, revocations,
exemptions and recorded certifications, each appended to the hash-chained approval log in
the same transaction; the history and state of a version; the snapshot the webhook admits
from.

The rules (statuses, scope, separation of duties, two-approver tiers) are
:mod:`modelgate.approvals`; this module applies them inside the write's transaction, which
holds the approval log's head lock from its start, so two writes cannot both pass a check
that only one of them should, and concurrent writers never fork the chain. Every function takes the
:class:`~modelgate.inventory.db.Database` and returns records of
:mod:`modelgate.inventory.records`. Refusals are :class:`~modelgate.approvals.SignOffRefused`
(403), a missing version or record :class:`NotFound` (404), a duplicate registration
:class:`Conflict` (409), bad input :class:`InvalidSignOff` (400).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypedDict

from sqlalchemy import exc, select
from sqlalchemy.orm import Session, selectinload

from modelgate import approvals as rules
from modelgate.approvals import RegistryEntry, SignOff, SignOffRefused
from modelgate.identity.base import Identity
from modelgate.inventory.base import utcnow
from modelgate.inventory.db import Database, DatabaseUnavailable, InventoryError, classify, redact
from modelgate.inventory.models import (
    Approval,
    ApprovalLogEntry,
    Decision,
    Exemption,
    Model,
    ModelVersion,
    RecordedCertification,
)
from modelgate.inventory.parse import clean, parse_metadata
from modelgate.inventory.records import (
    ApprovalLogRecord,
    ApprovalRecord,
    ExemptionRecord,
    RecordedCertificationRecord,
    Scope,
    VersionRecord,
    approval_log_record,
    approval_record,
    exemption_record,
    recorded_certification_record,
    version_record,
)
from modelgate.inventory.writes import (
    append_log,
    find_version,
    lock_approval_log,
    register_version_rows,
)
from policies.config import PolicyConfig

__all__ = [
    "Conflict",
    "InvalidSignOff",
    "NotFound",
    "SignOffRefused",
]


class NotFound(InventoryError, LookupError):
    """No such model version, approval, exemption or certification."""


class Conflict(InventoryError):
    """The version is registered already."""


class InvalidSignOff(InventoryError, ValueError):
    """The request cannot be recorded as given (the message says which field)."""


@contextmanager
def _writing(db: Database) -> Iterator[Session]:
    """A write transaction that holds the approval log's head lock from its start: sign-off
    writes run one after another, so their checks see every earlier write, and each
    appends to the chain where the previous one ended."""
    try:
        with db.session() as session:
            lock_approval_log(session)
            yield session
    except (exc.OperationalError, exc.ProgrammingError) as e:
        raise classify(e, db.url) from e
    except exc.InterfaceError as e:
        raise DatabaseUnavailable(f"database {redact(db.url)} unavailable: {e}") from e


def _version(session: Session, model: str, version: str) -> ModelVersion:
    found = find_version(session, model, version)
    if found is None:
        raise NotFound(
            f"no version {version!r} of model {model!r} in the inventory: register it first "
            f"(POST /api/v1/models/{model}/versions) or deploy it once"
        )
    return found


def _approvals_of(session: Session, mv: ModelVersion, model: str) -> list[ApprovalRecord]:
    rows = session.scalars(select(Approval).where(Approval.model_version_id == mv.id))
    return [approval_record(a, model, mv.version) for a in rows]


def deployers_of(session: Session, model: str, version: str) -> set[str]:
    """Everyone who asked the API server to create or update a workload of this version
    (the decision log's users, allowed or denied)."""
    users = session.scalars(
        select(Decision.user)
        .where(
            Decision.model_name == model,
            Decision.model_version == version,
            Decision.operation.in_(("CREATE", "UPDATE")),
        )
        .distinct()
    )
    return {u for u in users if u}


def _check_duties(session: Session, mv: ModelVersion, model: str, actor: Identity) -> None:
    conflict = rules.duty_conflict(
        approver_names=actor.names,
        owner=mv.owner,
        registered_by=mv.registered_by,
        deployers=deployers_of(session, model, mv.version),
    )
    if conflict is not None:
        raise SignOffRefused(f"{actor.user} may not sign off {model} {mv.version}: {conflict}")


def _log(session: Session, actor: Identity, **fields: Any) -> ApprovalLogEntry:
    return append_log(session, actor=actor.user, actor_groups=actor.groups, **fields)


def _text(value: Any, what: str, *, required: bool = True, limit: int = 4000) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidSignOff(f"{what} must be a string")
    text = clean(value).strip()
    if required and not text:
        raise InvalidSignOff(f"{what} is required")
    if len(text) > limit:
        raise InvalidSignOff(f"{what} is longer than {limit} characters")
    return text


def _future_day(value: Any, what: str, today: date, *, required: bool) -> date | None:
    if value is None or value == "":
        if required:
            raise InvalidSignOff(f"{what} is required (YYYY-MM-DD)")
        return None
    if not isinstance(value, str):
        raise InvalidSignOff(f"{what} must be a date YYYY-MM-DD")
    try:
        day = date.fromisoformat(value.strip())
    except ValueError as e:
        raise InvalidSignOff(f"{what} must be a date YYYY-MM-DD, not {value[:40]!r}") from e
    if day < today:
        raise InvalidSignOff(f"{what} {day.isoformat()} is in the past")
    return day


def _urls(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSignOff(f"{what} must be a list of URLs")
    out = []
    for v in value:
        v = clean(v).strip()
        if not v.lower().startswith(("https://", "http://")):
            raise InvalidSignOff(f"{what}: {v[:80]!r} is not an http(s) URL")
        out.append(v)
    return out


def _scope(value: Any) -> Scope | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"clusters", "namespaces"}:
        raise InvalidSignOff('scope must be {"clusters": [...], "namespaces": [...]}')
    scope = Scope()
    for key in ("clusters", "namespaces"):
        items = value.get(key)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise InvalidSignOff(f"scope.{key} must be a list of names")
        if items:
            scope[key] = [i.strip() for i in items]  # type: ignore[literal-required]
    return scope or None


# --- registration ---------------------------------------------------------------------------


def register_version(
    db: Database,
    *,
    model: str,
    version: str,
    metadata: Mapping[str, Any],
    actor: Identity,
    config: PolicyConfig,
    now: datetime | None = None,
) -> VersionRecord:
    """Register ``model`` ``version`` (submitted for review, ``pending-review``) with the same
    metadata the annotations carry (short keys: ``owner``, ``training-date``, ...)."""
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise InvalidSignOff("metadata must be an object of annotation keys to strings")
    model = _text(model, "model name", limit=253)
    version = _text(version, "version", limit=253)
    md_raw = {k.removeprefix("modelgate.dev/"): v for k, v in metadata.items()}
    md_raw.update({"model-name": model, "model-version": version})
    md_raw.setdefault("compliance-status", "pending-review")
    missing = [
        f
        for f in config.required_fields
        if f not in ("compliance-status",) and not str(md_raw.get(f, "")).strip()
    ]
    if missing:
        raise InvalidSignOff(f"missing required metadata: {', '.join(missing)}")
    md = parse_metadata(md_raw)
    if md.training_date is None:
        raise InvalidSignOff("training-date must be an ISO 8601 date or date-time")
    if not md.datasets:
        raise InvalidSignOff("training-data must list dataset URIs")
    when = now or utcnow()
    with _writing(db) as session:
        if find_version(session, model, version) is not None:
            raise Conflict(f"version {version!r} of model {model!r} is registered already")
        mv = register_version_rows(session, md, when, registered_by=actor.user)
        _log(
            session,
            actor,
            time=when,
            action="register",
            model=model,
            version=version,
            record_type="version",
            record_id=mv.id,
            reason="registered for review",
        )
        session.flush()
        session.refresh(mv)
        loaded = session.scalars(
            select(ModelVersion)
            .where(ModelVersion.id == mv.id)
            .options(
                selectinload(ModelVersion.datasets),
                selectinload(ModelVersion.certifications),
                selectinload(ModelVersion.deployments),
                selectinload(ModelVersion.training_run),
            )
        ).one()
        return version_record(loaded, model)


# --- approvals ------------------------------------------------------------------------------


def record_approval(
    db: Database,
    *,
    model: str,
    version: str,
    decision: str,
    actor: Identity,
    reason: Any,
    evidence: Any = None,
    expires: Any = None,
    scope: Any = None,
    config: PolicyConfig,
    today: date,
    now: datetime | None = None,
) -> ApprovalRecord:
    """Record an approver's decision. Approving is refused (``SignOffRefused``) for the
    version's owner, registrant and deployers, and for an approver who already holds a
    current approval of it."""
    if decision not in rules.DECISIONS:
        raise InvalidSignOff('decision must be "approved" or "rejected"')
    text = _text(reason, "reason", required=decision == rules.REJECTED)
    urls = _urls(evidence, "evidence")
    day = _future_day(expires, "expires", today, required=False)
    where = _scope(scope)
    when = now or utcnow()
    with _writing(db) as session:
        mv = _version(session, model, version)
        history = _approvals_of(session, mv, model)
        if decision == rules.APPROVED:
            _check_duties(session, mv, model, actor)
            if rules.already_approved(actor.user, history, today):
                raise SignOffRefused(
                    f"{actor.user} already approved {model} {version}: a second approval must "
                    "come from another approver"
                )
        row = Approval(
            model_version_id=mv.id,
            decision=decision,
            approver=actor.user,
            approver_email=actor.email,
            approver_groups=list(actor.groups),
            created=when,
            reason=text,
            evidence=urls,
            expires=day,
            scope=dict(where) if where else None,
        )
        session.add(row)
        session.flush()
        _log(
            session,
            actor,
            time=when,
            action="approve" if decision == rules.APPROVED else "reject",
            model=model,
            version=version,
            record_type="approval",
            record_id=row.id,
            reason=text,
            evidence=urls,
            expires=day.isoformat() if day else None,
            scope=dict(where) if where else None,
        )
        record = approval_record(row, model, version)
        return _with_status(record, [*history, record], today)


def _with_status(
    record: ApprovalRecord, history: Sequence[ApprovalRecord], today: date
) -> ApprovalRecord:
    return ApprovalRecord(**{**record, "status": rules.approval_status(record, history, today)})  # type: ignore[typeddict-item]


def revoke_approval(
    db: Database,
    approval_id: int,
    *,
    actor: Identity,
    reason: Any,
    today: date,
    now: datetime | None = None,
) -> ApprovalRecord:
    text = _text(reason, "reason")
    when = now or utcnow()
    with _writing(db) as session:
        row = session.get(Approval, approval_id)
        if row is None:
            raise NotFound(f"no approval {approval_id}")
        mv = row.model_version
        model = mv.model.name
        if row.revoked_at is not None:
            raise Conflict(f"approval {approval_id} was revoked already")
        row.revoked_at, row.revoked_by, row.revoke_reason = when, actor.user, text
        session.flush()
        _log(
            session,
            actor,
            time=when,
            action="revoke",
            model=model,
            version=mv.version,
            record_type="approval",
            record_id=row.id,
            reason=text,
        )
        history = _approvals_of(session, mv, model)
        record = next(a for a in history if a["id"] == row.id)
        return _with_status(record, history, today)


# --- exemptions and recorded certifications ---------------------------------------------------


def record_exemption(
    db: Database,
    *,
    model: str,
    version: str,
    actor: Identity,
    reason: Any,
    expires: Any,
    today: date,
    now: datetime | None = None,
) -> ExemptionRecord:
    text = _text(reason, "reason")
    day = _future_day(expires, "expires", today, required=True)
    assert day is not None
    when = now or utcnow()
    with _writing(db) as session:
        mv = _version(session, model, version)
        _check_duties(session, mv, model, actor)
        row = Exemption(
            model_version_id=mv.id,
            granted_by=actor.user,
            granted_by_groups=list(actor.groups),
            created=when,
            reason=text,
            expires=day,
        )
        session.add(row)
        session.flush()
        _log(
            session,
            actor,
            time=when,
            action="exempt",
            model=model,
            version=version,
            record_type="exemption",
            record_id=row.id,
            reason=text,
            expires=day.isoformat(),
        )
        return exemption_record(row, model, version, rules.dated_status(None, day, today))


def record_certification(
    db: Database,
    *,
    model: str,
    version: str,
    actor: Identity,
    name: Any,
    expires: Any,
    evidence: Any = None,
    today: date,
    now: datetime | None = None,
) -> RecordedCertificationRecord:
    title = _text(name, "name", limit=200)
    day = _future_day(expires, "expires", today, required=True)
    assert day is not None
    urls = _urls(evidence, "evidence")
    if len(urls) > 1:
        raise InvalidSignOff("evidence must be one URL")
    when = now or utcnow()
    with _writing(db) as session:
        mv = _version(session, model, version)
        _check_duties(session, mv, model, actor)
        row = RecordedCertification(
            model_version_id=mv.id,
            name=title,
            expires=day,
            evidence=urls[0] if urls else None,
            recorded_by=actor.user,
            recorded_by_groups=list(actor.groups),
            created=when,
        )
        session.add(row)
        session.flush()
        _log(
            session,
            actor,
            time=when,
            action="certify",
            model=model,
            version=version,
            record_type="certification",
            record_id=row.id,
            reason=title,
            evidence=urls,
            expires=day.isoformat(),
        )
        return recorded_certification_record(
            row, model, version, rules.dated_status(None, day, today)
        )


def _revoke_dated(
    db: Database,
    table: type[Exemption] | type[RecordedCertification],
    record_type: str,
    record_id: int,
    *,
    actor: Identity,
    reason: Any,
    now: datetime | None,
) -> tuple[Any, str, str]:
    text = _text(reason, "reason")
    when = now or utcnow()
    with _writing(db) as session:
        row: Exemption | RecordedCertification | None = session.get(table, record_id)  # type: ignore[assignment]
        if row is None:
            raise NotFound(f"no {record_type} {record_id}")
        if row.revoked_at is not None:
            raise Conflict(f"{record_type} {record_id} was revoked already")
        row.revoked_at, row.revoked_by, row.revoke_reason = when, actor.user, text
        mv = row.model_version
        model = mv.model.name
        session.flush()
        _log(
            session,
            actor,
            time=when,
            action="revoke",
            model=model,
            version=mv.version,
            record_type=record_type,
            record_id=row.id,
            reason=text,
        )
        return row, model, mv.version


def revoke_exemption(
    db: Database, exemption_id: int, *, actor: Identity, reason: Any, now: datetime | None = None
) -> ExemptionRecord:
    row, model, version = _revoke_dated(
        db, Exemption, "exemption", exemption_id, actor=actor, reason=reason, now=now
    )
    return exemption_record(row, model, version, rules.REVOKED)


def revoke_certification(
    db: Database,
    certification_id: int,
    *,
    actor: Identity,
    reason: Any,
    now: datetime | None = None,
) -> RecordedCertificationRecord:
    row, model, version = _revoke_dated(
        db,
        RecordedCertification,
        "certification",
        certification_id,
        actor=actor,
        reason=reason,
        now=now,
    )
    return recorded_certification_record(row, model, version, rules.REVOKED)


# --- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSignOff:
    """A version's sign-off history and where it stands (today, anywhere)."""

    model: str
    version: str
    owner: str
    risk_tier: str
    registered_by: str | None
    state: SignOff
    approvals: list[ApprovalRecord]  # newest first, with statuses
    exemptions: list[ExemptionRecord]
    certifications: list[RecordedCertificationRecord]


def _exemptions_of(
    session: Session, mv: ModelVersion, model: str, today: date
) -> list[ExemptionRecord]:
    rows = session.scalars(
        select(Exemption)
        .where(Exemption.model_version_id == mv.id)
        .order_by(Exemption.created.desc(), Exemption.id.desc())
    )
    return [
        exemption_record(e, model, mv.version, rules.dated_status(e.revoked_at, e.expires, today))
        for e in rows
    ]


def _certifications_of(
    session: Session, mv: ModelVersion, model: str, today: date
) -> list[RecordedCertificationRecord]:
    rows = session.scalars(
        select(RecordedCertification)
        .where(RecordedCertification.model_version_id == mv.id)
        .order_by(RecordedCertification.created.desc(), RecordedCertification.id.desc())
    )
    return [
        recorded_certification_record(
            c, model, mv.version, rules.dated_status(c.revoked_at, c.expires, today)
        )
        for c in rows
    ]


def _sign_off_of(
    session: Session,
    mv: ModelVersion,
    model: str,
    today: date,
    config: PolicyConfig,
    cluster: str | None = None,
    namespace: str | None = None,
) -> VersionSignOff:
    history = _approvals_of(session, mv, model)
    exemptions = _exemptions_of(session, mv, model, today)
    state = rules.sign_off(
        model=model,
        version=mv.version,
        risk_tier=mv.risk_tier,
        approvals=history,
        exemptions=exemptions,
        today=today,
        config=config,
        cluster=cluster,
        namespace=namespace,
    )
    return VersionSignOff(
        model=model,
        version=mv.version,
        owner=mv.owner,
        risk_tier=mv.risk_tier,
        registered_by=mv.registered_by,
        state=state,
        approvals=rules.annotate_approvals(history, today),
        exemptions=exemptions,
        certifications=_certifications_of(session, mv, model, today),
    )


def version_sign_off(
    db: Database,
    model: str,
    version: str,
    *,
    today: date,
    config: PolicyConfig,
    cluster: str | None = None,
    namespace: str | None = None,
) -> VersionSignOff:
    """The sign-off of one version (``NotFound`` when the inventory lacks it)."""
    with db.read() as session:
        return _sign_off_of(
            session, _version(session, model, version), model, today, config, cluster, namespace
        )


def sign_offs(
    db: Database, *, today: date, config: PolicyConfig, model: str | None = None
) -> list[VersionSignOff]:
    """The sign-off of every version (of one model), by model, newest version first."""
    stmt = select(ModelVersion, Model.name).join(Model, Model.id == ModelVersion.model_id)
    if model is not None:
        stmt = stmt.where(Model.name == model)
    stmt = stmt.order_by(Model.name, ModelVersion.last_admitted.desc(), ModelVersion.id.desc())
    with db.read() as session:
        return [
            _sign_off_of(session, mv, name, today, config) for mv, name in session.execute(stmt)
        ]


def approvals(
    db: Database, *, today: date, model: str | None = None, version: str | None = None
) -> list[ApprovalRecord]:
    """Approval history (of one model, or one version), newest first, with statuses."""
    stmt = (
        select(Approval, ModelVersion.version, Model.name)
        .join(ModelVersion, ModelVersion.id == Approval.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
    )
    if model is not None:
        stmt = stmt.where(Model.name == model)
    if version is not None:
        stmt = stmt.where(ModelVersion.version == version)
    with db.read() as session:
        if model is not None and version is not None:
            _version(session, model, version)  # 404 for an unknown version
        grouped: dict[int, list[ApprovalRecord]] = {}
        for a, v, name in session.execute(stmt):
            grouped.setdefault(a.model_version_id, []).append(approval_record(a, name, v))
    out: list[ApprovalRecord] = []
    for history in grouped.values():
        out.extend(rules.annotate_approvals(history, today))
    return sorted(out, key=lambda a: (a["created"], a["id"]), reverse=True)


def approval_log(
    db: Database, *, model: str | None = None, limit: int | None = 200
) -> list[ApprovalLogRecord]:
    """The approval log (of one model), newest first."""
    stmt = select(ApprovalLogEntry)
    if model is not None:
        stmt = stmt.where(ApprovalLogEntry.model == model)
    stmt = stmt.order_by(ApprovalLogEntry.time.desc(), ApprovalLogEntry.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with db.read() as session:
        return [approval_log_record(e) for e in session.scalars(stmt)]


@dataclass(frozen=True)
class SignOffInput:
    """What :func:`modelgate.approvals.sign_off` needs of one version (the auditor's)."""

    risk_tier: str
    approvals: list[ApprovalRecord]
    exemptions: list[ExemptionRecord]


def sign_off_inputs(db: Database) -> dict[tuple[str, str], SignOffInput]:
    """The sign-off records of every version, keyed by (model, version); one query per
    table."""
    with db.read() as session:
        versions = {
            mv_id: (name, version, tier)
            for mv_id, name, version, tier in session.execute(
                select(
                    ModelVersion.id, Model.name, ModelVersion.version, ModelVersion.risk_tier
                ).join(Model, Model.id == ModelVersion.model_id)
            )
        }
        out = {
            (name, version): SignOffInput(tier, [], []) for name, version, tier in versions.values()
        }
        for a in session.scalars(select(Approval)):
            name, version, _ = versions[a.model_version_id]
            out[(name, version)].approvals.append(approval_record(a, name, version))
        for e in session.scalars(select(Exemption)):
            name, version, _ = versions[e.model_version_id]
            out[(name, version)].exemptions.append(exemption_record(e, name, version))
    return out


# --- the webhook's snapshot -------------------------------------------------------------------


class SnapshotRows(TypedDict):
    approvals: list[ApprovalRecord]
    exemptions: list[ExemptionRecord]
    certifications: list[RecordedCertificationRecord]


def registry_entries(db: Database, cluster: str) -> dict[tuple[str, str], RegistryEntry]:
    """``input.registry`` of every version the inventory holds, keyed by (model, version):
    what the webhook's snapshot serves. One query per table, whatever the number of
    versions."""
    with db.read() as session:
        versions = {
            mv_id: (name, version)
            for mv_id, name, version in session.execute(
                select(ModelVersion.id, Model.name, ModelVersion.version).join(
                    Model, Model.id == ModelVersion.model_id
                )
            )
        }
        rows: dict[int, SnapshotRows] = {}

        def bucket(mv_id: int) -> SnapshotRows:
            return rows.setdefault(
                mv_id, SnapshotRows(approvals=[], exemptions=[], certifications=[])
            )

        for a in session.scalars(select(Approval)):
            name, version = versions[a.model_version_id]
            bucket(a.model_version_id)["approvals"].append(approval_record(a, name, version))
        for e in session.scalars(select(Exemption).where(Exemption.revoked_at.is_(None))):
            name, version = versions[e.model_version_id]
            bucket(e.model_version_id)["exemptions"].append(exemption_record(e, name, version))
        for c in session.scalars(
            select(RecordedCertification).where(RecordedCertification.revoked_at.is_(None))
        ):
            name, version = versions[c.model_version_id]
            bucket(c.model_version_id)["certifications"].append(
                recorded_certification_record(c, name, version)
            )
    out: dict[tuple[str, str], RegistryEntry] = {}
    for mv_id, (name, version) in versions.items():
        found = rows.get(mv_id)
        out[(name, version)] = rules.registry_entry(
            cluster=cluster,
            model=name,
            version=version,
            registered=True,
            approvals=found["approvals"] if found else (),
            exemptions=found["exemptions"] if found else (),
            certifications=found["certifications"] if found else (),
        )
    return out
