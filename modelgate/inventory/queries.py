"""Read-only queries over the inventory. Everything returned is plain data (TypedDicts of
str/int/float/bool/list/dict, timestamps as ISO 8601 strings in UTC), so the CLI, the dashboard
and the auditor can use it without importing SQLAlchemy; they pass the session they got from
:meth:`modelgate.inventory.db.Database.read`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TypedDict, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from modelgate.inventory.models import (
    Certification,
    Dataset,
    Decision,
    Deployment,
    Model,
    ModelVersion,
    model_version_datasets,
)


class ModelSummary(TypedDict):
    name: str
    version: str  # the most recently admitted version
    owner: str
    risk_tier: str
    compliance_status: str
    deployments: int  # live deployments running any version of the model
    versions: int
    last_admitted: str | None


class CertificationRow(TypedDict):
    name: str
    expires: str | None  # YYYY-MM-DD; None when the annotation had no parseable date
    expires_raw: str | None


class TrainingRunRow(TypedDict):
    run_ref: str
    url: str | None
    datasets: list[str]


class DeploymentRow(TypedDict):
    cluster: str
    namespace: str
    kind: str
    name: str
    images: list[str]
    model: str | None
    version: str | None
    first_admitted: str | None
    last_admitted: str | None
    replicas: int | None
    ready_replicas: int | None
    resources: dict[str, Any] | None
    last_seen: str | None
    status: str | None


class VersionDetail(TypedDict):
    version: str
    owner: str
    training_date: str | None
    training_date_raw: str | None
    compliance_status: str
    risk_tier: str
    model_card: str | None
    metrics: dict[str, float]
    source: str | None
    exempt_reason: str | None
    training_run: TrainingRunRow | None
    datasets: list[str]
    certifications: list[CertificationRow]
    deployments: list[DeploymentRow]
    first_admitted: str
    last_admitted: str
    metadata: dict[str, str]


class LineageEdge(TypedDict):
    source_type: str  # dataset | training_run | model_version
    source: str
    target_type: str  # training_run | model_version | deployment
    target: str


class DecisionRow(TypedDict):
    time: str
    uid: str
    user: str
    operation: str
    cluster: str
    kind: str
    namespace: str
    name: str
    allowed: bool
    is_model: bool
    model: str | None
    version: str | None
    violations: list[str]
    warnings: list[str]
    enforcement: str
    bundle_digest: str
    engine: str
    error: str | None


class ModelDetail(TypedDict):
    name: str
    owner: str
    created_at: str
    updated_at: str
    latest_version: str | None
    versions: list[VersionDetail]  # most recently admitted first
    lineage: list[LineageEdge]
    decisions: list[DecisionRow]  # most recent first


class CertificationStatus(TypedDict):
    model: str
    version: str
    name: str
    expires: str | None
    expires_raw: str | None
    risk_tier: str


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _live(deployment: Deployment) -> bool:
    return deployment.status != "deleted"


def _versions_desc(versions: Iterable[ModelVersion]) -> list[ModelVersion]:
    return sorted(versions, key=lambda v: (v.last_admitted, v.id), reverse=True)


def list_models(
    session: Session,
    *,
    search: str | None = None,
    risk_tier: str | None = None,
    compliance_status: str | None = None,
    dataset: str | None = None,
) -> list[ModelSummary]:
    """Every model with its latest version's metadata, sorted by name. ``search`` matches
    name or owner (case-insensitive substring); ``dataset`` keeps models with any version
    trained on a dataset whose URI contains it; ``risk_tier`` and ``compliance_status`` apply
    to the latest version."""
    stmt = select(Model).options(
        selectinload(Model.versions).selectinload(ModelVersion.deployments)
    )
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
    out: list[ModelSummary] = []
    for model in session.scalars(stmt.order_by(Model.name)):
        versions = _versions_desc(model.versions)
        latest = versions[0] if versions else None
        summary = ModelSummary(
            name=model.name,
            version=latest.version if latest else "",
            owner=(latest.owner if latest else "") or model.owner,
            risk_tier=latest.risk_tier if latest else "",
            compliance_status=latest.compliance_status if latest else "",
            deployments=sum(1 for v in versions for d in v.deployments if _live(d)),
            versions=len(versions),
            last_admitted=_iso(latest.last_admitted) if latest else None,
        )
        if risk_tier and summary["risk_tier"] != risk_tier:
            continue
        if compliance_status and summary["compliance_status"] != compliance_status:
            continue
        out.append(summary)
    return out


def _deployment_row(d: Deployment) -> DeploymentRow:
    mv = d.model_version
    return DeploymentRow(
        cluster=d.cluster,
        namespace=d.namespace,
        kind=d.kind,
        name=d.name,
        images=list(d.images or []),
        model=mv.model.name if mv is not None else None,
        version=mv.version if mv is not None else None,
        first_admitted=_iso(d.first_admitted),
        last_admitted=_iso(d.last_admitted),
        replicas=d.replicas,
        ready_replicas=d.ready_replicas,
        resources=dict(d.resources) if d.resources is not None else None,
        last_seen=_iso(d.last_seen),
        status=d.status,
    )


def _decision_row(d: Decision) -> DecisionRow:
    return DecisionRow(
        time=_iso(d.time) or "",
        uid=d.uid,
        user=d.user,
        operation=d.operation,
        cluster=d.cluster,
        kind=d.kind,
        namespace=d.namespace,
        name=d.name,
        allowed=d.allowed,
        is_model=d.is_model,
        model=d.model_name,
        version=d.model_version,
        violations=list(d.violations or []),
        warnings=list(d.warnings or []),
        enforcement=d.enforcement,
        bundle_digest=d.bundle_digest,
        engine=d.engine,
        error=d.error,
    )


def _deployment_id(d: DeploymentRow) -> str:
    return f"{d['cluster']}/{d['namespace']}/{d['kind']}/{d['name']}"


def show_model(session: Session, name: str, *, decision_limit: int = 20) -> ModelDetail | None:
    """One model with every version, its lineage, certifications and recent decisions;
    ``None`` when there is no such model."""
    model = session.scalars(
        select(Model)
        .where(Model.name == name)
        .options(
            selectinload(Model.versions).options(
                selectinload(ModelVersion.datasets),
                selectinload(ModelVersion.certifications),
                selectinload(ModelVersion.deployments),
                selectinload(ModelVersion.training_run),
            )
        )
    ).first()
    if model is None:
        return None
    versions: list[VersionDetail] = []
    lineage: list[LineageEdge] = []
    for v in _versions_desc(model.versions):
        run = v.training_run
        datasets = sorted(ds.uri for ds in v.datasets)
        deployments = [
            _deployment_row(d) for d in sorted(v.deployments, key=lambda d: d.id) if _live(d)
        ]
        version_id = f"{model.name}@{v.version}"
        run_row: TrainingRunRow | None = None
        if run is not None:
            run_row = TrainingRunRow(
                run_ref=run.run_ref, url=run.url, datasets=sorted(ds.uri for ds in run.datasets)
            )
            for uri in datasets:
                lineage.append(
                    LineageEdge(
                        source_type="dataset",
                        source=uri,
                        target_type="training_run",
                        target=run.run_ref,
                    )
                )
            lineage.append(
                LineageEdge(
                    source_type="training_run",
                    source=run.run_ref,
                    target_type="model_version",
                    target=version_id,
                )
            )
        else:
            for uri in datasets:
                lineage.append(
                    LineageEdge(
                        source_type="dataset",
                        source=uri,
                        target_type="model_version",
                        target=version_id,
                    )
                )
        for d in deployments:
            lineage.append(
                LineageEdge(
                    source_type="model_version",
                    source=version_id,
                    target_type="deployment",
                    target=_deployment_id(d),
                )
            )
        versions.append(
            VersionDetail(
                version=v.version,
                owner=v.owner,
                training_date=_iso(v.training_date),
                training_date_raw=v.training_date_raw,
                compliance_status=v.compliance_status,
                risk_tier=v.risk_tier,
                model_card=v.model_card,
                metrics=dict(v.metrics or {}),
                source=v.source,
                exempt_reason=v.exempt_reason,
                training_run=run_row,
                datasets=datasets,
                certifications=[
                    CertificationRow(
                        name=c.name, expires=_iso(c.expires), expires_raw=c.expires_raw
                    )
                    for c in v.certifications
                ],
                deployments=deployments,
                first_admitted=_iso(v.first_admitted) or "",
                last_admitted=_iso(v.last_admitted) or "",
                metadata=dict(v.raw_metadata or {}),
            )
        )
    return ModelDetail(
        name=model.name,
        owner=model.owner,
        created_at=_iso(model.created_at) or "",
        updated_at=_iso(model.updated_at) or "",
        latest_version=versions[0]["version"] if versions else None,
        versions=versions,
        lineage=lineage,
        decisions=decisions(session, model=model.name, limit=decision_limit),
    )


def _deployments_stmt() -> Select[tuple[Deployment]]:
    return select(Deployment).options(
        selectinload(Deployment.model_version).selectinload(ModelVersion.model)
    )


def deployments(
    session: Session, *, cluster: str | None = None, include_deleted: bool = False
) -> list[DeploymentRow]:
    """Recorded deployments (of one cluster, or all), sorted by cluster/namespace/kind/name."""
    stmt = _deployments_stmt()
    if cluster is not None:
        stmt = stmt.where(Deployment.cluster == cluster)
    stmt = stmt.order_by(Deployment.cluster, Deployment.namespace, Deployment.kind, Deployment.name)
    return [_deployment_row(d) for d in session.scalars(stmt) if include_deleted or _live(d)]


def deployments_for_cluster(session: Session, cluster: str) -> list[DeploymentRow]:
    """The deployments the inventory holds for ``cluster`` (what the auditor reconciles)."""
    return deployments(session, cluster=cluster)


def decisions(
    session: Session,
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
) -> list[DecisionRow]:
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
    return [_decision_row(d) for d in session.scalars(stmt)]


def count_decisions(
    session: Session,
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
    return int(session.scalar(stmt) or 0)


def decision_namespaces(session: Session) -> list[str]:
    """Every namespace that appears in the decision log, sorted."""
    return sorted(session.scalars(select(Decision.namespace).distinct()))


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


def certifications(session: Session) -> list[CertificationStatus]:
    """Every certification with its model and version, soonest expiry first."""
    stmt = (
        select(Certification, ModelVersion, Model)
        .join(ModelVersion, Certification.model_version_id == ModelVersion.id)
        .join(Model, ModelVersion.model_id == Model.id)
        .order_by(Certification.expires, Model.name, ModelVersion.version, Certification.name)
    )
    return [
        CertificationStatus(
            model=m.name,
            version=v.version,
            name=c.name,
            expires=_iso(c.expires),
            expires_raw=c.expires_raw,
            risk_tier=v.risk_tier,
        )
        for c, v, m in session.execute(stmt).tuples()
    ]


class InventoryCounts(TypedDict):
    models: int
    versions: int
    live_deployments: int  # recorded deployments not deleted


def inventory_counts(session: Session) -> InventoryCounts:
    """How many models, model versions and live deployments the inventory holds."""
    live = or_(Deployment.status.is_(None), Deployment.status != "deleted")
    return InventoryCounts(
        models=int(session.scalar(select(func.count(Model.id))) or 0),
        versions=int(session.scalar(select(func.count(ModelVersion.id))) or 0),
        live_deployments=int(session.scalar(select(func.count(Deployment.id)).where(live)) or 0),
    )


#: metadata every model version must carry (the policy's defaults)
REQUIRED_FIELDS = (
    "model-name",
    "model-version",
    "owner",
    "training-date",
    "training-data",
    "compliance-status",
)
#: optional metadata a complete documentation record carries as well
RECOMMENDED_FIELDS = ("model-card", "metrics", "training-run", "source")


class VersionDocumentation(TypedDict):
    model: str
    version: str
    owner: str
    risk_tier: str
    live_deployments: int
    missing_required: list[str]  # includes model-card and certifications for the high tier
    missing_recommended: list[str]


def documentation_gaps(
    session: Session, required_fields: Sequence[str] = REQUIRED_FIELDS
) -> list[VersionDocumentation]:
    """Every model version with at least one live deployment and the metadata fields it lacks
    (required ones, and the recommended ``model-card``, ``metrics``, ``training-run``,
    ``source``), sorted by model and version. A field whose value could not be parsed (e.g. a
    training date that is not a date) counts as missing."""
    stmt = (
        select(ModelVersion)
        .join(Model, ModelVersion.model_id == Model.id)
        .options(
            selectinload(ModelVersion.model),
            selectinload(ModelVersion.datasets),
            selectinload(ModelVersion.certifications),
            selectinload(ModelVersion.deployments),
        )
        .order_by(Model.name, ModelVersion.version)
    )
    out: list[VersionDocumentation] = []
    for v in session.scalars(stmt):
        live = sum(1 for d in v.deployments if _live(d))
        if not live:
            continue
        present = {
            "model-name": True,
            "model-version": bool(v.version),
            "owner": bool(v.owner),
            "training-date": v.training_date is not None,
            "training-data": bool(v.datasets),
            "compliance-status": bool(v.compliance_status),
            "model-card": bool(v.model_card),
            "metrics": bool(v.metrics),
            "training-run": v.training_run_id is not None,
            "source": bool(v.source),
            "certifications": bool(v.certifications),
        }
        required = list(required_fields)
        if v.risk_tier == "high":
            required += ["model-card", "certifications"]
        missing_required = [f for f in required if not present[f]]
        missing_recommended = [
            f for f in RECOMMENDED_FIELDS if not present[f] and f not in missing_required
        ]
        out.append(
            VersionDocumentation(
                model=v.model.name,
                version=v.version,
                owner=v.owner,
                risk_tier=v.risk_tier,
                live_deployments=live,
                missing_required=missing_required,
                missing_recommended=missing_recommended,
            )
        )
    return out
