"""The inventory's write model: how admission events become rows.

:func:`apply_events` appends every decision to the decision log and, for admitted models,
upserts model, version (metadata, datasets, training run, certifications) and deployment,
coalesced per entity; :func:`mark_deleted` follows admitted deletions. A model denied in a
namespace that is checked (enforcement ``enforce`` or ``warn``) registers its version as
``pending-review`` with its metadata when the inventory does not hold it yet, so approvers see
what waits for them (:func:`register_version_rows`, also what the API's registration uses).
Writes are
order-tolerant: a replayed older event never overwrites newer metadata, and an event
already recorded (same id) is skipped as a whole.

The decision log is a hash chain (:mod:`modelgate.inventory.chain`): decisions are appended
under the chain head's lock, which is taken first, so replays already recorded are filtered
out before sequence numbers are given (no gaps) and concurrent writers never fork the chain.
The approval log is one too (:func:`append_log`); a transaction that appends to both takes
the decision log's head lock first, then the approval log's, then writes other rows.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from modelgate.compliance import DELETED, NOT_LIVE_STATUSES
from modelgate.events import AdmissionEvent, SubmittedEvent, utc
from modelgate.inventory import chain
from modelgate.inventory.models import (
    ApprovalLogEntry,
    Certification,
    Dataset,
    Decision,
    Deployment,
    Model,
    ModelVersion,
    TrainingRun,
    model_version_datasets,
    training_run_datasets,
)
from modelgate.inventory.parse import (
    ParsedMetadata,
    clean,
    clean_key,
    is_url,
    parse_metadata,
)

_DECISIONS = cast(Table, Decision.__table__)


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _get_or_create(session: Session, model: Any, keys: dict[str, Any], **defaults: Any) -> Any:
    """The row with ``keys``, inserted if missing; safe against concurrent writers."""
    where = [getattr(model, k) == v for k, v in keys.items()]
    found = session.scalars(select(model).where(*where)).first()
    if found is not None:
        return found
    stmt = _insert(session)(model).values(**keys, **defaults)
    session.execute(stmt.on_conflict_do_nothing(index_elements=list(keys)))
    return session.scalars(
        select(model).where(*where).execution_options(populate_existing=True)
    ).one()


def _link(session: Session, table: Any, **values: int) -> None:
    stmt = _insert(session)(table).values(**values).on_conflict_do_nothing()
    session.execute(stmt)


def _decision_row(item: SubmittedEvent, md: ParsedMetadata | None) -> dict[str, Any]:
    ev = item.event
    return {
        "event_id": item.event_id,
        "time": utc(ev.time),
        "uid": clean(ev.uid),
        "user": clean(ev.user),
        "operation": clean(ev.operation),
        "cluster": clean(ev.cluster),
        "kind": clean(ev.kind),
        "namespace": clean(ev.namespace),
        "name": clean(ev.name),
        "allowed": bool(ev.allowed),
        "is_model": bool(ev.is_model),
        "model_name": md.model_name if md else None,
        "model_version": md.version if md and md.model_name else None,
        "violations": [clean(v) for v in ev.violations],
        "warnings": [clean(w) for w in ev.warnings],
        "enforcement": clean(ev.enforcement),
        "bundle_digest": clean(ev.bundle_digest),
        "engine": clean(ev.engine),
        "error": clean(ev.error) if ev.error is not None else None,
        "caller_verified": ev.caller_verified,
        "approvals": [dict(a) for a in ev.approvals] or None,
    }


def _metadata_of(event: AdmissionEvent) -> ParsedMetadata | None:
    if event.workload is None or not event.is_model:
        return None
    workload: Any = event.workload
    return parse_metadata(workload.get("metadata") if isinstance(workload, dict) else None)


def _insert_decisions(
    session: Session, parsed: Sequence[tuple[SubmittedEvent, ParsedMetadata | None]]
) -> set[str]:
    """Append the decisions to the chained log, in order; the ids of those not recorded
    before (replays are skipped before they are given a sequence number)."""
    if not parsed:
        return set()
    log = chain.LOGS["decisions"]
    head = chain.lock_head(session, log)  # first: the existence check below is then race-free
    inserted: set[str] = set()
    for start in range(0, len(parsed), 500):
        chunk = parsed[start : start + 500]
        ids = [item.event_id for item, _ in chunk]
        known = set(
            session.connection()
            .execute(select(_DECISIONS.c.event_id).where(_DECISIONS.c.event_id.in_(ids)))
            .scalars()
        )
        rows = []
        for item, md in chunk:
            if item.event_id in known or item.event_id in inserted:
                continue
            inserted.add(item.event_id)
            rows.append(_decision_row(item, md))
        if rows:
            chain.link(log, head, rows)
            # Core, not the ORM's bulk insert: a third of a batch's CPU went there
            session.connection().execute(_DECISIONS.insert(), rows)
    chain.save_head(session, head)
    return inserted


def write_decision(session: Session, item: SubmittedEvent, md: ParsedMetadata | None) -> bool:
    """Append one decision; False when this event was already recorded."""
    return bool(_insert_decisions(session, [(item, md)]))


def apply_event(session: Session, item: SubmittedEvent) -> None:
    """Record one event in ``session`` (see :func:`apply_events`)."""
    apply_events(session, [item])


def apply_events(session: Session, items: Sequence[SubmittedEvent]) -> None:
    """Record events in ``session``: every decision, and for admitted models the inventory.

    Work is coalesced per model, version and deployment (one upsert each, newest event wins,
    first/last admitted from the earliest/latest), which gives the same result as applying the
    events one by one in time order, and does it in far fewer statements.
    """
    with session.no_autoflush:
        parsed = [(item, _metadata_of(item.event)) for item in items]
        fresh = _insert_decisions(session, parsed)
        admissions: list[tuple[int, AdmissionEvent, ParsedMetadata]] = []
        deletes: list[AdmissionEvent] = []
        denials: list[tuple[AdmissionEvent, ParsedMetadata]] = []
        for n, (item, md) in enumerate(parsed):
            if item.event_id not in fresh:
                continue  # a replay of an event already recorded (all of it, atomically)
            ev = item.event
            if ev.records_model and md is not None:
                admissions.append((n, ev, md))
            elif ev.operation == "DELETE" and ev.allowed:
                deletes.append(ev)
            elif _registers_pending(ev, md):
                assert md is not None
                denials.append((ev, md))
        if denials:
            # a registration appends to the approval log: its head is locked before any
            # model or version row is written, in the order sign-off writes take them too
            lock_approval_log(session)
        versions = _upsert_models(session, admissions)
        _upsert_deployments(session, admissions, versions)
        for ev in sorted(deletes, key=lambda e: utc(e.time)):
            mark_deleted(session, ev)
        for ev, md in sorted(denials, key=lambda d: utc(d[0].time)):
            _register_denied(session, ev, md)
    session.flush()


#: the compliance status of a version registered before any admission
PENDING_REVIEW = "pending-review"
#: model names a denial may register (the policy's DNS-style rule; others are only logged)
_MODEL_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$")


def _registers_pending(ev: AdmissionEvent, md: ParsedMetadata | None) -> bool:
    return (
        not ev.allowed
        and ev.is_model
        and ev.error is None  # an engine failure says nothing about the model
        and ev.operation in ("CREATE", "UPDATE")
        and ev.enforcement in ("enforce", "warn")
        and md is not None
        and bool(md.model_name)
        and _MODEL_NAME.match(md.model_name or "") is not None
        and bool(md.version)
    )


def find_version(session: Session, model: str, version: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Model.name == model, ModelVersion.version == version)
    ).first()


def register_version_rows(
    session: Session,
    md: ParsedMetadata,
    when: datetime,
    *,
    registered_by: str | None,
) -> ModelVersion:
    """Insert the version ``md`` describes (and its model) as ``pending-review``; the caller
    made sure it is not there yet."""
    assert md.model_name
    model: Model = _get_or_create(
        session, Model, {"name": md.model_name}, owner=md.owner, created_at=when, updated_at=when
    )
    pending = dataclasses.replace(
        md, compliance_status=PENDING_REVIEW, raw={**md.raw, "compliance-status": PENDING_REVIEW}
    )
    version: ModelVersion = _get_or_create(
        session,
        ModelVersion,
        {"model_id": model.id, "version": md.version},
        owner=md.owner,
        compliance_status=PENDING_REVIEW,
        risk_tier=md.risk_tier,
        metrics={},
        raw_metadata={},
        first_admitted=when,
        last_admitted=when,
        registered_by=registered_by,
        registered_at=when,
    )
    _update_version(session, version, pending, when)
    return version


def _register_denied(session: Session, ev: AdmissionEvent, md: ParsedMetadata) -> None:
    assert md.model_name
    if find_version(session, md.model_name, md.version) is not None:
        return
    when = utc(ev.time)
    version = register_version_rows(session, md, when, registered_by=None)
    where = f"{ev.kind} {ev.namespace}/{ev.name}" if ev.namespace else f"{ev.kind} {ev.name}"
    append_log(
        session,
        time=when,
        action="register",
        actor=clean(ev.user) or "system:unknown",
        actor_groups=(),
        model=md.model_name,
        version=md.version,
        record_type="version",
        record_id=version.id,
        reason=f"registered as pending-review by a denied admission of {where} ({ev.cluster})",
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def lock_approval_log(session: Session) -> chain.Head:
    """Lock the approval log's chain head for the rest of the transaction (see
    :func:`modelgate.inventory.chain.lock_head`). Writers that append to it take this lock
    before they write any other row a sign-off write also touches, so the lock order is
    always the decision log's head, the approval log's head, then rows."""
    return chain.lock_head(session, chain.LOGS["approval_log"])


def append_log(
    session: Session,
    *,
    time: datetime,
    action: str,
    actor: str,
    actor_groups: Iterable[str],
    model: str,
    version: str,
    record_type: str,
    record_id: int | None,
    reason: str = "",
    evidence: Iterable[str] = (),
    expires: str | None = None,
    scope: Any = None,
) -> ApprovalLogEntry:
    """Append one entry to the approval log, chained (in the caller's transaction, which
    holds the log's head lock from here on, if it did not already)."""
    log = chain.LOGS["approval_log"]
    head = lock_approval_log(session)
    row: dict[str, Any] = {
        "time": utc(time),
        "action": action,
        "actor": clean(actor),
        "actor_groups": ",".join(clean(g).replace(",", " ") for g in actor_groups),
        "model": clean(model),
        "version": clean(version),
        "record_type": record_type,
        "record_id": record_id,
        "reason": clean(reason),
        "evidence": _canonical([clean(e) for e in evidence]),
        "expires": expires,
        "scope": _canonical(scope) if scope else None,
    }
    chain.link(log, head, [row])
    entry = ApprovalLogEntry(**row)
    session.add(entry)
    session.flush()
    chain.save_head(session, head)
    return entry


_Admission = tuple[int, AdmissionEvent, ParsedMetadata]


def _order(a: _Admission) -> tuple[datetime, int]:
    return (utc(a[1].time), a[0])


def _group(admissions: Iterable[_Admission], key: Any) -> dict[Any, list[_Admission]]:
    groups: dict[Any, list[_Admission]] = {}
    for a in admissions:
        groups.setdefault(key(a), []).append(a)
    return groups


def _upsert_models(
    session: Session, admissions: list[_Admission]
) -> dict[tuple[str, str], ModelVersion]:
    versions: dict[tuple[str, str], ModelVersion] = {}
    named = [a for a in admissions if a[2].model_name]
    for name, group in _group(named, lambda a: a[2].model_name).items():
        newest, earliest = max(group, key=_order), min(group, key=_order)
        last, first = utc(newest[1].time), utc(earliest[1].time)
        model: Model = _get_or_create(
            session, Model, {"name": name}, owner=newest[2].owner, created_at=first, updated_at=last
        )
        if last >= model.updated_at:
            model.owner = newest[2].owner or model.owner
            model.updated_at = last
        model.created_at = min(model.created_at, first)

        for version_name, vgroup in _group(group, lambda a: a[2].version).items():
            newest, earliest = max(vgroup, key=_order), min(vgroup, key=_order)
            last, first = utc(newest[1].time), utc(earliest[1].time)
            md = newest[2]
            version: ModelVersion = _get_or_create(
                session,
                ModelVersion,
                {"model_id": model.id, "version": version_name},
                owner=md.owner,
                compliance_status=md.compliance_status,
                risk_tier=md.risk_tier,
                metrics={},
                raw_metadata={},  # "not filled yet": every real admission has a model-name
                first_admitted=first,
                last_admitted=last,
            )
            is_newest = last >= version.last_admitted
            if version.registered_at is not None and not version.deployments:
                # registered, never admitted before: admission times start now
                version.first_admitted = first
            else:
                version.first_admitted = min(version.first_admitted, first)
            version.last_admitted = max(version.last_admitted, last)
            if is_newest and version.raw_metadata != md.raw:
                _update_version(session, version, md, last)
            versions[(name, version_name)] = version
    return versions


def _upsert_deployments(
    session: Session,
    admissions: list[_Admission],
    versions: dict[tuple[str, str], ModelVersion],
) -> None:
    for key, group in _group(admissions, lambda a: tuple(_deployment_key(a[1]).items())).items():
        newest, earliest = max(group, key=_order), min(group, key=_order)
        last, first = utc(newest[1].time), utc(earliest[1].time)
        ev, md = newest[1], newest[2]
        version = versions.get((md.model_name, md.version)) if md.model_name else None
        images = [clean(i) for i in (_workload_field(ev, "images") or []) if i]
        deployment: Deployment = _get_or_create(
            session, Deployment, dict(key), images=images, first_admitted=first, last_admitted=last
        )
        if deployment.last_admitted is None or last >= deployment.last_admitted:
            deployment.images = images
            deployment.model_version_id = version.id if version is not None else None
            deployment.last_admitted = last
            if deployment.status in NOT_LIVE_STATUSES:  # admitted again: live until a scan
                deployment.status = None
        if deployment.first_admitted is None or first < deployment.first_admitted:
            deployment.first_admitted = first


def _workload_field(event: AdmissionEvent, key: str) -> Any:
    workload: Any = event.workload
    return workload.get(key) if isinstance(workload, dict) else None


def _deployment_key(ev: AdmissionEvent) -> dict[str, str]:
    return {
        "cluster": clean_key(ev.cluster) or "default",
        "namespace": clean_key(ev.namespace or _workload_field(ev, "namespace")),
        "kind": clean_key(ev.kind or _workload_field(ev, "kind")),
        "name": clean_key(ev.name or _workload_field(ev, "name")),
    }


def _update_version(
    session: Session, version: ModelVersion, md: ParsedMetadata, when: datetime
) -> None:
    """The newest admission defines the version's metadata, dataset links and certifications."""
    version.owner = md.owner
    version.training_date = md.training_date
    version.training_date_raw = md.training_date_raw
    version.compliance_status = md.compliance_status
    version.risk_tier = md.risk_tier
    version.model_card = md.model_card
    version.metrics = md.metrics
    version.source = md.source
    version.exempt_reason = md.exempt_reason
    version.raw_metadata = md.raw

    datasets: list[Dataset] = [
        _get_or_create(session, Dataset, {"uri": uri}, first_seen=when) for uri in md.datasets
    ]
    run: TrainingRun | None = None
    if md.training_run:
        run = _get_or_create(
            session,
            TrainingRun,
            {"run_ref": md.training_run},
            url=md.training_run if is_url(md.training_run) else None,
            first_seen=when,
        )
        for ds in datasets:
            _link(session, training_run_datasets, training_run_id=run.id, dataset_id=ds.id)
    version.training_run_id = run.id if run is not None else None

    session.execute(
        delete(model_version_datasets).where(
            model_version_datasets.c.model_version_id == version.id
        )
    )
    for ds in datasets:
        _link(session, model_version_datasets, model_version_id=version.id, dataset_id=ds.id)
    session.execute(delete(Certification).where(Certification.model_version_id == version.id))
    for cert in md.certifications:
        session.execute(
            _insert(session)(Certification).values(
                model_version_id=version.id,
                name=cert.name,
                expires=cert.expires,
                expires_raw=cert.expires_raw,
            )
        )
    session.expire(version, ["certifications", "datasets", "training_run"])


def mark_deleted(session: Session, ev: AdmissionEvent) -> None:
    key = _deployment_key(ev)
    deployment = session.scalars(
        select(Deployment).where(*[getattr(Deployment, k) == v for k, v in key.items()])
    ).first()
    when = utc(ev.time)
    if deployment is not None and (
        deployment.last_admitted is None or when >= deployment.last_admitted
    ):
        deployment.status = DELETED
        deployment.last_seen = when
