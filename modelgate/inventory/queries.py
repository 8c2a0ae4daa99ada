"""Read-only queries over the inventory: models, versions, deployments and decisions.

Every function takes the :class:`~modelgate.inventory.db.Database` and returns records of
:mod:`modelgate.inventory.records` (plain data, aware UTC datetimes), so the CLI, the
dashboard, the API and the auditor read the inventory without importing SQLAlchemy. Database
failures are :class:`~modelgate.inventory.db.InventoryError` with a one-line message. The
audit tables' reads and writes are in :mod:`modelgate.inventory.audit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import selectinload

from modelgate.compliance import NOT_LIVE_STATUSES, is_recorded
from modelgate.inventory.db import Database
from modelgate.inventory.models import (
    Dataset,
    Decision,
    Deployment,
    Model,
    ModelVersion,
    TrainingRun,
    model_version_datasets,
)
from modelgate.inventory.records import (
    DecisionRecord,
    DeploymentRecord,
    ModelRecord,
    decision_record,
    deployment_record,
    model_record,
)


def live_clause() -> ColumnElement[bool]:
    """SQL for :func:`modelgate.compliance.is_live` on :class:`Deployment` rows."""
    return or_(Deployment.status.is_(None), Deployment.status.not_in(NOT_LIVE_STATUSES))


def _model_options() -> Any:
    return selectinload(Model.versions).options(
        selectinload(ModelVersion.datasets),
        selectinload(ModelVersion.certifications),
        selectinload(ModelVersion.deployments),
        selectinload(ModelVersion.training_run).selectinload(TrainingRun.datasets),
    )


def list_models(
    db: Database,
    *,
    search: str | None = None,
    risk_tier: str | None = None,
    compliance_status: str | None = None,
    dataset: str | None = None,
) -> list[ModelRecord]:
    """Every model with all its versions, sorted by name. ``search`` matches name or owner
    (case-insensitive substring); ``dataset`` keeps models with any version trained on a
    dataset whose URI contains it; ``risk_tier`` and ``compliance_status`` apply to the
    latest version."""
    stmt = select(Model).options(_model_options())
    if search:
        pattern = f"%{search.lower()}%"
        stmt = stmt.where(
            or_(func.lower(Model.name).like(pattern), func.lower(Model.owner).like(pattern))
        )
    if dataset:
        trained_on = (
            select(ModelVersion.model_id)
            .join(
                model_version_datasets, model_version_datasets.c.model_version_id == ModelVersion.id
            )
            .join(Dataset, Dataset.id == model_version_datasets.c.dataset_id)
            .where(func.lower(Dataset.uri).like(f"%{dataset.lower()}%"))
        )
        stmt = stmt.where(Model.id.in_(trained_on))
    out: list[ModelRecord] = []
    with db.read() as session:
        for model in session.scalars(stmt.order_by(Model.name)):
            record = model_record(model)
            latest = record["versions"][0] if record["versions"] else None
            if risk_tier and (latest is None or latest["risk_tier"] != risk_tier):
                continue
            if compliance_status and (
                latest is None or latest["compliance_status"] != compliance_status
            ):
                continue
            out.append(record)
    return out


def get_model(db: Database, name: str) -> ModelRecord | None:
    """One model with every version, its lineage, certifications and deployments; ``None``
    when there is no such model."""
    with db.read() as session:
        model = session.scalars(
            select(Model).where(Model.name == name).options(_model_options())
        ).first()
        return model_record(model) if model is not None else None


def _deployments_stmt() -> Select[tuple[Deployment]]:
    return select(Deployment).options(
        selectinload(Deployment.model_version).selectinload(ModelVersion.model)
    )


def deployments(
    db: Database, *, cluster: str | None = None, include_deleted: bool = False
) -> list[DeploymentRecord]:
    """Recorded deployments (of one cluster, or all), sorted by cluster/namespace/kind/name."""
    stmt = _deployments_stmt()
    if cluster is not None:
        stmt = stmt.where(Deployment.cluster == cluster)
    stmt = stmt.order_by(Deployment.cluster, Deployment.namespace, Deployment.kind, Deployment.name)
    with db.read() as session:
        rows = [deployment_record(d) for d in session.scalars(stmt)]
    return [d for d in rows if include_deleted or is_recorded(d["status"])]


def deployments_by_key(db: Database, cluster: str) -> dict[tuple[str, str, str], DeploymentRecord]:
    """Every deployment the inventory holds for ``cluster`` (deleted ones included), keyed by
    (namespace, kind, name): what the auditor reconciles a scan against."""
    stmt = _deployments_stmt().where(Deployment.cluster == cluster)
    with db.read() as session:
        return {
            (d.namespace, d.kind, d.name): deployment_record(d)
            for d in session.scalars(stmt.execution_options(yield_per=1000))
        }


_S = TypeVar("_S", bound=Select[Any])


def _filter_decisions(
    stmt: _S,
    *,
    cluster: str | None = None,
    namespace: str | None = None,
    kind: str | None = None,
    name: str | None = None,
    model: str | None = None,
    version: str | None = None,
    allowed: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> _S:
    for column, value in (
        (Decision.cluster, cluster),
        (Decision.namespace, namespace),
        (Decision.kind, kind),
        (Decision.name, name),
        (Decision.model_name, model),
        (Decision.model_version, version),
        (Decision.allowed, allowed),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(Decision.time >= since)
    if until is not None:
        stmt = stmt.where(Decision.time < until)
    return stmt


def decisions(
    db: Database,
    *,
    cluster: str | None = None,
    namespace: str | None = None,
    kind: str | None = None,
    name: str | None = None,
    model: str | None = None,
    version: str | None = None,
    allowed: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> list[DecisionRecord]:
    """Decision-log entries matching every given filter, most recent first; ``offset`` skips
    that many of them (pagination)."""
    stmt = _filter_decisions(
        select(Decision),
        cluster=cluster,
        namespace=namespace,
        kind=kind,
        name=name,
        model=model,
        version=version,
        allowed=allowed,
        since=since,
        until=until,
    )
    stmt = stmt.order_by(Decision.time.desc(), Decision.id.desc())
    if offset:
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    with db.read() as session:
        return [decision_record(d) for d in session.scalars(stmt)]


def count_decisions(
    db: Database,
    *,
    cluster: str | None = None,
    namespace: str | None = None,
    allowed: bool | None = None,
    model: str | None = None,
) -> int:
    """How many decision-log entries match the filters (same meaning as :func:`decisions`)."""
    stmt = _filter_decisions(
        select(func.count(Decision.id)),
        cluster=cluster,
        namespace=namespace,
        model=model,
        allowed=allowed,
    )
    with db.read() as session:
        return int(session.scalar(stmt) or 0)


def decision_namespaces(db: Database) -> list[str]:
    """Every namespace that appears in the decision log, sorted."""
    with db.read() as session:
        return sorted(session.scalars(select(Decision.namespace).distinct()))


def existing_models(db: Database, names: Iterable[str]) -> set[str]:
    """Which of ``names`` are models of the inventory (a decision or finding may name a model
    that was never admitted)."""
    wanted = sorted({n for n in names if n})
    found: set[str] = set()
    with db.read() as session:
        for i in range(0, len(wanted), 500):
            found.update(
                session.scalars(select(Model.name).where(Model.name.in_(wanted[i : i + 500])))
            )
    return found


def model_owners(db: Database) -> dict[str, str]:
    """Every model's name and owner."""
    with db.read() as session:
        return {str(n): str(o or "") for n, o in session.execute(select(Model.name, Model.owner))}


class DayActivity(TypedDict):
    day: date
    allowed: int  # allowed without warnings
    warned: int  # allowed with warnings (warn-mode violations, expiring certifications, ...)
    denied: int


def decisions_per_day(db: Database, since: datetime, until: datetime) -> list[DayActivity]:
    """Admission decisions per UTC day from ``since`` to ``until`` (every day listed, oldest
    first)."""
    counts: dict[date, DayActivity] = {}
    day = since.astimezone(UTC).date()
    last = until.astimezone(UTC).date()
    while day <= last:
        counts[day] = DayActivity(day=day, allowed=0, warned=0, denied=0)
        day += timedelta(days=1)
    stmt = (
        select(Decision.time, Decision.allowed, Decision.warnings)
        .where(Decision.time >= since, Decision.time <= until)
        .execution_options(yield_per=2000)
    )
    with db.read() as session:
        for time, allowed, warnings in session.execute(stmt):
            entry = counts.get(time.astimezone(UTC).date())
            if entry is None:
                continue
            if not allowed:
                entry["denied"] += 1
            elif warnings:
                entry["warned"] += 1
            else:
                entry["allowed"] += 1
    return list(counts.values())


class InventoryCounts(TypedDict):
    models: int
    versions: int
    live_deployments: int  # modelgate.compliance.is_live


def inventory_counts(db: Database) -> InventoryCounts:
    """How many models, model versions and live deployments the inventory holds."""
    with db.read() as session:
        return InventoryCounts(
            models=int(session.scalar(select(func.count(Model.id))) or 0),
            versions=int(session.scalar(select(func.count(ModelVersion.id))) or 0),
            live_deployments=int(
                session.scalar(select(func.count(Deployment.id)).where(live_clause())) or 0
            ),
        )


class DecisionSummary(TypedDict):
    total: int
    allowed: int
    denied: int
    denials_by_namespace: list[tuple[str, str, int]]  # cluster, namespace, count
    denials_by_reason: list[tuple[str, int]]
    period_start: datetime | None
    period_end: datetime | None


def decision_summary(
    db: Database, since: datetime | None = None, until: datetime | None = None
) -> DecisionSummary:
    """Admission decisions in a period: totals, denials by namespace and by reason."""
    with db.read() as session:
        conds = []
        if since is not None:
            conds.append(Decision.time >= since)
        if until is not None:
            conds.append(Decision.time <= until)
        total = session.scalar(select(func.count(Decision.id)).where(*conds)) or 0
        denied = (
            session.scalar(
                select(func.count(Decision.id)).where(*conds, Decision.allowed.is_(False))
            )
            or 0
        )
        by_ns = session.execute(
            select(Decision.cluster, Decision.namespace, func.count(Decision.id))
            .where(*conds, Decision.allowed.is_(False))
            .group_by(Decision.cluster, Decision.namespace)
            .order_by(func.count(Decision.id).desc(), Decision.cluster, Decision.namespace)
        ).all()
        reasons: dict[str, int] = {}
        for (violations,) in session.execute(
            select(Decision.violations)
            .where(*conds, Decision.allowed.is_(False))
            .execution_options(yield_per=1000)
        ):
            for v in violations or []:
                reasons[str(v)] = reasons.get(str(v), 0) + 1
        first = session.scalar(select(func.min(Decision.time)).where(*conds))
        last = session.scalar(select(func.max(Decision.time)).where(*conds))
    return DecisionSummary(
        total=int(total),
        allowed=int(total) - int(denied),
        denied=int(denied),
        denials_by_namespace=[(str(c), str(n), int(k)) for c, n, k in by_ns],
        denials_by_reason=sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:25],
        period_start=first,
        period_end=last,
    )
