"""The inventory's write model: how admission events become rows.

:func:`apply_events` appends every decision to the decision log and, for admitted models,
upserts model, version (metadata, datasets, training run, certifications) and deployment,
coalesced per entity; :func:`mark_deleted` follows admitted deletions. Writes are
order-tolerant: a replayed older event never overwrites newer metadata, and an event
already recorded (same id) is skipped as a whole.

The decision log is a hash chain (:mod:`modelgate.inventory.chain`): decisions are appended
under the chain head's lock, which is taken first, so replays already recorded are filtered
out before sequence numbers are given (no gaps) and concurrent writers never fork the chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from modelgate.compliance import DELETED, NOT_LIVE_STATUSES
from modelgate.events import AdmissionEvent, SubmittedEvent, utc
from modelgate.inventory import chain
from modelgate.inventory.models import (
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
        known = set(session.scalars(select(Decision.event_id).where(Decision.event_id.in_(ids))))
        rows = []
        for item, md in chunk:
            if item.event_id in known or item.event_id in inserted:
                continue
            inserted.add(item.event_id)
            rows.append(_decision_row(item, md))
        if rows:
            chain.link(log, head, rows)
            session.execute(insert(Decision), rows)
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
        for n, (item, md) in enumerate(parsed):
            if item.event_id not in fresh:
                continue  # a replay of an event already recorded (all of it, atomically)
            ev = item.event
            if ev.records_model and md is not None:
                admissions.append((n, ev, md))
            elif ev.operation == "DELETE" and ev.allowed:
                deletes.append(ev)
        versions = _upsert_models(session, admissions)
        _upsert_deployments(session, admissions, versions)
        for ev in sorted(deletes, key=lambda e: utc(e.time)):
            mark_deleted(session, ev)
    session.flush()


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
