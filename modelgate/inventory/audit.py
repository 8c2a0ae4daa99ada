"""Audit tables (scan runs, findings) and the queries the auditor needs.

The auditor never touches SQLAlchemy: it calls the plain functions here, which take a
:class:`~modelgate.inventory.db.Database` and return ``TypedDict`` records.

A finding is identified by its fingerprint ``type|cluster|namespace|kind|name``: a later scan
that sees it again updates ``last_seen``; a later successful scan of the same cluster that does
not see it marks it ``resolved``; seeing a resolved finding again reopens it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, TypedDict

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    exc,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, selectinload

from modelgate.inventory.base import Base, JSONType, UTCDateTime, utcnow
from modelgate.inventory.db import (
    Database,
    DatabaseUnavailable,
    InventoryError,
    classify,
    redact,
)
from modelgate.inventory.models import (
    Decision,
    Deployment,
    Model,
    ModelVersion,
    TrainingRun,
)

#: The kinds of audit finding, in report order.
FINDING_TYPES = (
    "orphan",
    "violation",
    "drift",
    "retired",
    "expiring-certification",
    "missing-metadata",
)
#: Finding severities, lowest first.
SEVERITIES = ("info", "low", "medium", "high", "critical")

BigID = BigInteger().with_variant(Integer(), "sqlite")
_CHUNK = 500
GONE_STATUSES = ("deleted",)


class ScanRun(Base):
    """One execution of ``modelgate audit``."""

    __tablename__ = "audit_scans"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(Text, default="running")  # running/completed/failed
    bundle_digest: Mapped[str] = mapped_column(Text, default="")
    engine: Mapped[str] = mapped_column(Text, default="")
    #: [{name, kind, cluster, status: ok|unreachable, error, notes, workloads, models}]
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: {"workloads": n, "models": n, "findings": {type: n}}
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


scan_findings = Table(
    "audit_scan_findings",
    Base.metadata,
    Column("scan_id", BigID, ForeignKey("audit_scans.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "finding_id", BigID, ForeignKey("audit_findings.id", ondelete="CASCADE"), primary_key=True
    ),
)


class Finding(Base):
    """Something the auditor found, tracked across scans."""

    __tablename__ = "audit_findings"
    __table_args__ = (Index(None, "cluster", "status"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text, unique=True)
    type: Mapped[str] = mapped_column(Text, index=True)
    severity: Mapped[str] = mapped_column(Text)
    cluster: Mapped[str] = mapped_column(Text)
    namespace: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(Text, default="")
    name: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(Text, default="open")  # open / resolved
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_scan_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("audit_scans.id", ondelete="SET NULL")
    )
    last_scan_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("audit_scans.id", ondelete="SET NULL"), index=True
    )


# --------------------------------------------------------------------------- records


class FindingInput(TypedDict):
    type: str
    severity: str
    cluster: str
    namespace: str
    kind: str
    name: str
    model: str | None
    version: str | None
    message: str
    details: dict[str, Any]


class FindingRecord(FindingInput):
    id: int
    status: str
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None


class ScanRecord(TypedDict):
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    bundle_digest: str
    engine: str
    sources: list[dict[str, Any]]
    summary: dict[str, Any]
    options: dict[str, Any]


class AdmittedDeployment(TypedDict):
    """What the inventory knows about one deployment (for matching)."""

    id: int
    cluster: str
    namespace: str
    kind: str
    name: str
    images: list[str]
    model: str | None
    version: str | None
    status: str | None
    last_admitted: datetime | None


class RuntimeUpdate(TypedDict):
    cluster: str
    namespace: str
    kind: str
    name: str
    replicas: int | None
    ready_replicas: int | None
    resources: dict[str, Any]


@contextmanager
def _guard(db: Database) -> Iterator[None]:
    """Database errors as :class:`InventoryError` (one line, password redacted)."""
    try:
        yield
    except (exc.OperationalError, exc.ProgrammingError) as e:
        raise classify(e, db.url) from e
    except exc.InterfaceError as e:
        raise DatabaseUnavailable(f"database {redact(db.url)} unavailable: {e}") from e
    except exc.SQLAlchemyError as e:
        raise InventoryError(f"audit data could not be written to {redact(db.url)}: {e}") from e


def fingerprint(f: Mapping[str, Any]) -> str:
    return "|".join(str(f[k]) for k in ("type", "cluster", "namespace", "kind", "name"))


def _finding_record(f: Finding) -> FindingRecord:
    return FindingRecord(
        id=f.id,
        type=f.type,
        severity=f.severity,
        cluster=f.cluster,
        namespace=f.namespace,
        kind=f.kind,
        name=f.name,
        model=f.model,
        version=f.version,
        message=f.message,
        details=dict(f.details or {}),
        status=f.status,
        first_seen=f.first_seen,
        last_seen=f.last_seen,
        resolved_at=f.resolved_at,
    )


def _scan_record(s: ScanRun) -> ScanRecord:
    return ScanRecord(
        id=s.id,
        started_at=s.started_at,
        finished_at=s.finished_at,
        status=s.status,
        bundle_digest=s.bundle_digest,
        engine=s.engine,
        sources=list(s.sources or []),
        summary=dict(s.summary or {}),
        options=dict(s.options or {}),
    )


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------- scans


def start_scan(
    db: Database,
    *,
    bundle_digest: str = "",
    engine: str = "",
    options: Mapping[str, Any] | None = None,
    started_at: datetime | None = None,
) -> int:
    """Record a new running scan. Raises :class:`~modelgate.inventory.db.InventoryError`
    (schema missing, database down) with a one-line message."""
    try:
        with db.session() as session:
            scan = ScanRun(
                started_at=started_at or utcnow(),
                status="running",
                bundle_digest=bundle_digest,
                engine=engine,
                options=dict(options or {}),
                sources=[],
                summary={},
            )
            session.add(scan)
            session.flush()
            return scan.id
    except (exc.OperationalError, exc.ProgrammingError) as e:
        raise classify(e, db.url) from e
    except exc.InterfaceError as e:
        raise DatabaseUnavailable(f"database {redact(db.url)} unavailable: {e}") from e


def record_findings(
    db: Database, scan_id: int, findings: Sequence[FindingInput], seen_at: datetime
) -> None:
    """Upsert findings seen by ``scan_id`` (open them, or reopen resolved ones)."""
    unique: dict[str, FindingInput] = {}
    for f in findings:
        unique[fingerprint(f)] = f
    keys = list(unique)
    for chunk in _chunks(keys):
        with _guard(db), db.session() as session:
            existing = {
                f.fingerprint: f
                for f in session.scalars(select(Finding).where(Finding.fingerprint.in_(chunk)))
            }
            rows: list[Finding] = []
            for key in chunk:
                data = unique[key]
                row = existing.get(key)
                if row is None:
                    row = Finding(
                        fingerprint=key,
                        first_seen=seen_at,
                        first_scan_id=scan_id,
                        status="open",
                        **_columns(data),
                    )
                    session.add(row)
                else:
                    for attr, value in _columns(data).items():
                        setattr(row, attr, value)
                    if row.status != "open":
                        row.status = "open"
                        row.resolved_at = None
                row.last_seen = seen_at
                row.last_scan_id = scan_id
                rows.append(row)
            session.flush()
            ids = [r.id for r in rows]
            linked = set(
                session.scalars(
                    select(scan_findings.c.finding_id).where(
                        scan_findings.c.scan_id == scan_id, scan_findings.c.finding_id.in_(ids)
                    )
                )
            )
            new_links = [{"scan_id": scan_id, "finding_id": i} for i in ids if i not in linked]
            if new_links:
                session.execute(scan_findings.insert(), new_links)


def _columns(data: FindingInput) -> dict[str, Any]:
    return {
        "type": data["type"],
        "severity": data["severity"],
        "cluster": data["cluster"],
        "namespace": data["namespace"],
        "kind": data["kind"],
        "name": data["name"],
        "model": data["model"],
        "version": data["version"],
        "message": data["message"],
        "details": dict(data["details"]),
    }


def finish_scan(
    db: Database,
    scan_id: int,
    *,
    sources: list[dict[str, Any]],
    summary: Mapping[str, Any],
    scanned_clusters: Mapping[str, Iterable[str]] | Iterable[str],
    status: str = "completed",
    finished_at: datetime | None = None,
    unevaluated: Mapping[str, Iterable[tuple[str, str, str]]] | None = None,
) -> int:
    """Close a scan; open findings of ``scanned_clusters`` it did not see become resolved.

    ``scanned_clusters`` maps each completely scanned cluster to the kinds its source could
    not list (their findings stay as they are); a plain iterable means no kind was skipped.
    ``unevaluated`` maps a cluster to the (namespace, kind, name) of workloads the scan saw
    but could not evaluate: their findings stay as they are too.
    Returns the number of findings resolved."""
    now = finished_at or utcnow()
    if isinstance(scanned_clusters, Mapping):
        skipped = {c: sorted(set(kinds)) for c, kinds in scanned_clusters.items()}
    else:
        skipped = {c: [] for c in scanned_clusters}
    resolved = 0
    with _guard(db), db.session() as session:
        scan = session.get(ScanRun, scan_id)
        if scan is None:
            raise LookupError(f"no scan {scan_id}")
        for cluster, kinds in sorted(skipped.items()):
            query = select(Finding).where(
                Finding.status == "open",
                Finding.cluster == cluster,
                (Finding.last_scan_id.is_(None)) | (Finding.last_scan_id != scan_id),
            )
            if kinds:
                query = query.where(Finding.kind.not_in(kinds))
            keep = set((unevaluated or {}).get(cluster, ()))
            for f in session.scalars(query):
                if (f.namespace, f.kind, f.name) in keep:
                    continue
                f.status = "resolved"
                f.resolved_at = now
                resolved += 1
        scan.finished_at = now
        scan.status = status
        scan.sources = list(sources)
        scan.summary = {**dict(summary), "resolved": resolved}
    return resolved


def get_scan(db: Database, scan_id: int) -> ScanRecord | None:
    with db.read() as session:
        scan = session.get(ScanRun, scan_id)
        return _scan_record(scan) if scan is not None else None


def latest_scan(db: Database) -> ScanRecord | None:
    with db.read() as session:
        scan = session.scalars(select(ScanRun).order_by(ScanRun.id.desc()).limit(1)).first()
        return _scan_record(scan) if scan is not None else None


def list_scans(db: Database, limit: int = 50) -> list[ScanRecord]:
    with db.read() as session:
        rows = session.scalars(select(ScanRun).order_by(ScanRun.id.desc()).limit(limit))
        return [_scan_record(s) for s in rows]


def scan_findings_of(db: Database, scan_id: int) -> list[FindingRecord]:
    """Findings seen by one scan (as they are now: first/last seen, status)."""
    with db.read() as session:
        rows = session.scalars(
            select(Finding)
            .join(scan_findings, scan_findings.c.finding_id == Finding.id)
            .where(scan_findings.c.scan_id == scan_id)
            .order_by(Finding.cluster, Finding.namespace, Finding.kind, Finding.name, Finding.type)
        )
        return [_finding_record(f) for f in rows]


def findings_resolved_by(db: Database, scan_id: int) -> list[FindingRecord]:
    """Findings of earlier scans that ``scan_id`` resolved (it scanned their cluster and did
    not see them again) and that are still resolved now."""
    with db.read() as session:
        scan = session.get(ScanRun, scan_id)
        if scan is None or scan.finished_at is None:
            return []
        rows = session.scalars(
            select(Finding)
            .where(
                Finding.status == "resolved",
                Finding.resolved_at == scan.finished_at,
                (Finding.last_scan_id.is_(None)) | (Finding.last_scan_id != scan_id),
            )
            .order_by(Finding.cluster, Finding.namespace, Finding.kind, Finding.name, Finding.type)
        )
        return [_finding_record(f) for f in rows]


def findings(
    db: Database,
    *,
    status: str | None = None,
    cluster: str | None = None,
    type: str | None = None,
) -> list[FindingRecord]:
    """Findings (of one status, cluster or type, or all), sorted by workload then type."""
    with db.read() as session:
        query = select(Finding)
        if status:
            query = query.where(Finding.status == status)
        if cluster:
            query = query.where(Finding.cluster == cluster)
        if type:
            query = query.where(Finding.type == type)
        query = query.order_by(
            Finding.cluster, Finding.namespace, Finding.kind, Finding.name, Finding.type
        )
        return [_finding_record(f) for f in session.scalars(query)]


# --------------------------------------------------------------------------- inventory side


def admitted_deployments(
    db: Database, cluster: str
) -> dict[tuple[str, str, str], AdmittedDeployment]:
    """Deployments the inventory holds for ``cluster``, keyed by (namespace, kind, name)."""
    out: dict[tuple[str, str, str], AdmittedDeployment] = {}
    with db.read() as session:
        rows = session.execute(
            select(Deployment, ModelVersion.version, Model.name)
            .outerjoin(ModelVersion, Deployment.model_version_id == ModelVersion.id)
            .outerjoin(Model, ModelVersion.model_id == Model.id)
            .where(Deployment.cluster == cluster)
            .execution_options(yield_per=1000)
        )
        for dep, version, model in rows:
            out[(dep.namespace, dep.kind, dep.name)] = AdmittedDeployment(
                id=dep.id,
                cluster=dep.cluster,
                namespace=dep.namespace,
                kind=dep.kind,
                name=dep.name,
                images=list(dep.images or []),
                model=model,
                version=version,
                status=dep.status,
                last_admitted=dep.last_admitted,
            )
    return out


def inventory_clusters(db: Database) -> list[str]:
    with db.read() as session:
        return sorted(
            c for c in session.scalars(select(Deployment.cluster).distinct()) if c is not None
        )


def update_runtime(db: Database, updates: Sequence[RuntimeUpdate], seen_at: datetime) -> int:
    """Write runtime metadata onto matching inventory deployments; returns how many matched."""
    matched = 0
    for chunk in _chunks(updates):
        by_key = {(u["cluster"], u["namespace"], u["kind"], u["name"]): u for u in chunk}
        with _guard(db), db.session() as session:
            clusters = {u["cluster"] for u in chunk}
            names = {u["name"] for u in chunk}
            for dep in session.scalars(
                select(Deployment).where(
                    Deployment.cluster.in_(clusters), Deployment.name.in_(names)
                )
            ):
                u = by_key.get((dep.cluster, dep.namespace, dep.kind, dep.name))
                if u is None:
                    continue
                dep.replicas = u["replicas"]
                dep.ready_replicas = u["ready_replicas"]
                dep.resources = dict(u["resources"])
                dep.last_seen = seen_at
                if dep.status != "deleted":
                    dep.status = "running"
                matched += 1
    return matched


def mark_not_running(db: Database, deployment_ids: Sequence[int]) -> None:
    """Deployments a successful scan did not find (retired) get status ``not-running``."""
    for chunk in _chunks(deployment_ids):
        with _guard(db), db.session() as session:
            for dep in session.scalars(select(Deployment).where(Deployment.id.in_(chunk))):
                if dep.status != "deleted":
                    dep.status = "not-running"


# --------------------------------------------------------------------------- report data


class CertificationInfo(TypedDict):
    name: str
    expires: str | None


class DeploymentInfo(TypedDict):
    cluster: str
    namespace: str
    kind: str
    name: str
    images: list[str]
    replicas: int | None
    ready_replicas: int | None
    resources: dict[str, Any] | None
    status: str | None
    first_admitted: str | None
    last_admitted: str | None
    last_seen: str | None


class VersionInfo(TypedDict):
    version: str
    owner: str
    training_date: str | None
    compliance_status: str
    risk_tier: str
    model_card: str | None
    metrics: dict[str, float]
    training_run: str | None
    training_run_url: str | None
    datasets: list[str]
    source: str | None
    exempt_reason: str | None
    certifications: list[CertificationInfo]
    first_admitted: str | None
    last_admitted: str | None
    deployments: list[DeploymentInfo]
    metadata: dict[str, str]


class DecisionInfo(TypedDict):
    time: str
    cluster: str
    namespace: str
    kind: str
    name: str
    operation: str
    user: str
    allowed: bool
    version: str | None
    violations: list[str]


class ModelInfo(TypedDict):
    name: str
    owner: str
    versions: list[VersionInfo]
    history: list[DecisionInfo]


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def report_models(db: Database, history_limit: int = 20) -> list[ModelInfo]:
    """Every model of the inventory with versions, lineage, certifications, deployments and its
    most recent admission decisions (plain data for the report and the JSON export)."""
    out: list[ModelInfo] = []
    with db.read() as session:
        models = session.scalars(
            select(Model)
            .order_by(Model.name)
            .options(
                selectinload(Model.versions).selectinload(ModelVersion.datasets),
                selectinload(Model.versions).selectinload(ModelVersion.certifications),
                selectinload(Model.versions).selectinload(ModelVersion.deployments),
                selectinload(Model.versions)
                .selectinload(ModelVersion.training_run)
                .selectinload(TrainingRun.datasets),
            )
        )
        for m in models:
            versions: list[VersionInfo] = []
            for v in sorted(m.versions, key=lambda v: v.last_admitted):
                datasets = sorted({d.uri for d in v.datasets})
                if v.training_run is not None:
                    datasets = sorted({*datasets, *(d.uri for d in v.training_run.datasets)})
                versions.append(
                    VersionInfo(
                        version=v.version,
                        owner=v.owner,
                        training_date=_iso(v.training_date) or v.training_date_raw,
                        compliance_status=v.compliance_status,
                        risk_tier=v.risk_tier,
                        model_card=v.model_card,
                        metrics=dict(v.metrics or {}),
                        training_run=v.training_run.run_ref if v.training_run else None,
                        training_run_url=v.training_run.url if v.training_run else None,
                        datasets=datasets,
                        source=v.source,
                        exempt_reason=v.exempt_reason,
                        certifications=[
                            CertificationInfo(name=c.name, expires=_iso(c.expires) or c.expires_raw)
                            for c in v.certifications
                        ],
                        first_admitted=_iso(v.first_admitted),
                        last_admitted=_iso(v.last_admitted),
                        deployments=[
                            DeploymentInfo(
                                cluster=d.cluster,
                                namespace=d.namespace,
                                kind=d.kind,
                                name=d.name,
                                images=list(d.images or []),
                                replicas=d.replicas,
                                ready_replicas=d.ready_replicas,
                                resources=d.resources,
                                status=d.status,
                                first_admitted=_iso(d.first_admitted),
                                last_admitted=_iso(d.last_admitted),
                                last_seen=_iso(d.last_seen),
                            )
                            for d in sorted(
                                v.deployments, key=lambda d: (d.cluster, d.namespace, d.name)
                            )
                        ],
                        metadata=dict(v.raw_metadata or {}),
                    )
                )
            history = [
                DecisionInfo(
                    time=d.time.isoformat(),
                    cluster=d.cluster,
                    namespace=d.namespace,
                    kind=d.kind,
                    name=d.name,
                    operation=d.operation,
                    user=d.user,
                    allowed=d.allowed,
                    version=d.model_version,
                    violations=list(d.violations or []),
                )
                for d in session.scalars(
                    select(Decision)
                    .where(Decision.model_name == m.name)
                    .order_by(Decision.time.desc(), Decision.id.desc())
                    .limit(history_limit)
                )
            ]
            out.append(ModelInfo(name=m.name, owner=m.owner, versions=versions, history=history))
    return out


class DecisionSummary(TypedDict):
    total: int
    allowed: int
    denied: int
    denials_by_namespace: list[tuple[str, str, int]]  # cluster, namespace, count
    denials_by_reason: list[tuple[str, int]]
    period_start: str | None
    period_end: str | None


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
        period_start=_iso(first),
        period_end=_iso(last),
    )
