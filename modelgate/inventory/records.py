"""The inventory's records: one plain ``TypedDict`` per entity and one mapper from its ORM row.

Everything the inventory hands out (to the CLI, the webhook, the auditor, the reports, the
dashboard and the API) is one of these records, so no caller imports SQLAlchemy and every
room speaks the same vocabulary. Timestamps are timezone-aware UTC ``datetime`` values and
calendar days are ``date`` values; :func:`jsonable` turns a record into JSON-ready data (ISO
8601 strings) at the edges.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from modelgate.compliance import is_live, is_recorded

if TYPE_CHECKING:
    from modelgate.inventory.models import (
        Approval,
        ApprovalLogEntry,
        CapacitySample,
        Certification,
        Decision,
        Deployment,
        Exemption,
        Finding,
        Model,
        ModelVersion,
        RecordedCertification,
        ScanRun,
        TrainingRun,
    )


class CertificationRecord(TypedDict):
    model: str
    version: str
    name: str
    expires: date | None  # None when the annotation had no readable date
    expires_raw: str | None


class TrainingRunRecord(TypedDict):
    run_ref: str
    url: str | None
    datasets: list[str]


class DeploymentRecord(TypedDict):
    id: int
    cluster: str
    namespace: str
    kind: str
    name: str
    images: list[str]  # as admitted
    model: str | None
    version: str | None
    owner: str | None  # the owner of the version it runs (None without one)
    first_admitted: datetime | None
    last_admitted: datetime | None
    replicas: int | None  # desired, as the last scan saw it
    ready_replicas: int | None
    resources: dict[str, Any] | None  # requests/limits/gpus/images/usage from the last scan
    last_seen: datetime | None
    status: str | None  # None (admitted), running, not-running, deleted
    live: bool  # modelgate.compliance.is_live


class VersionRecord(TypedDict):
    model: str
    version: str
    owner: str
    training_date: datetime | None
    training_date_raw: str | None
    compliance_status: str
    risk_tier: str
    model_card: str | None
    metrics: dict[str, float]
    source: str | None
    exempt_reason: str | None
    training_run: TrainingRunRecord | None
    datasets: list[str]  # the version's own and its training run's
    certifications: list[CertificationRecord]
    deployments: list[DeploymentRecord]  # every recorded one, deleted included
    first_admitted: datetime
    last_admitted: datetime
    metadata: dict[str, str]  # every modelgate.dev/* value as admitted
    registered_by: str | None  # who registered it through the API (None: seen at admission)
    registered_at: datetime | None


class LineageEdge(TypedDict):
    source_type: str  # dataset | training_run | model_version
    source: str
    target_type: str  # training_run | model_version | deployment
    target: str


class ModelRecord(TypedDict):
    name: str
    owner: str
    created_at: datetime
    updated_at: datetime
    latest_version: str | None
    versions: list[VersionRecord]  # most recently admitted first
    lineage: list[LineageEdge]


class ModelSummary(TypedDict):
    """The list view of a :class:`ModelRecord` (one row per model)."""

    name: str
    version: str  # the most recently admitted version
    owner: str
    risk_tier: str
    compliance_status: str
    deployments: int  # live deployments running any version of the model
    versions: int
    last_admitted: datetime | None


class DecisionRecord(TypedDict):
    id: int
    time: datetime
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
    #: the recorded sign-off that admitted it: [{"type": "approval"|"exemption", "id": n}]
    approvals: list[dict[str, Any]]


class Scope(TypedDict, total=False):
    """Where an approval holds; an absent or empty list means everywhere."""

    clusters: list[str]
    namespaces: list[str]


class ApprovalRecord(TypedDict):
    id: int
    model: str
    version: str
    decision: str  # approved / rejected
    approver: str
    approver_email: str | None
    approver_groups: list[str]
    created: datetime
    reason: str
    evidence: list[str]
    expires: date | None
    scope: Scope | None
    #: modelgate.approvals.approval_status: current / expired / revoked / superseded
    status: str
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None


class ExemptionRecord(TypedDict):
    id: int
    model: str
    version: str
    granted_by: str
    granted_by_groups: list[str]
    created: datetime
    reason: str
    expires: date
    status: str  # current / expired / revoked
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None


class RecordedCertificationRecord(TypedDict):
    id: int
    model: str
    version: str
    name: str
    expires: date
    evidence: str | None
    recorded_by: str
    recorded_by_groups: list[str]
    created: datetime
    status: str  # current / expired / revoked
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None


class ApprovalLogRecord(TypedDict):
    id: int
    time: datetime
    action: str  # register / approve / reject / revoke / exempt / certify
    actor: str
    actor_groups: list[str]
    model: str
    version: str
    record_type: str  # approval / exemption / certification / version
    record_id: int | None
    reason: str
    evidence: list[str]
    expires: str | None
    scope: dict[str, Any] | None


class FindingInput(TypedDict):
    """A finding as the auditor reports it (before it is tracked across scans)."""

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
    #: who must remediate it: the model's owner, or the namespace's owner label for orphans
    owner: str | None


class FindingRecord(FindingInput):
    id: int
    #: first_seen + the remediation window of its severity (policy data)
    due: date | None
    status: str  # open / resolved
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None


class ScanRecord(TypedDict):
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str  # running / completed / failed
    bundle_digest: str
    engine: str
    sources: list[dict[str, Any]]
    summary: dict[str, Any]
    options: dict[str, Any]


class ResourceAmounts(TypedDict):
    """Requests or limits of one replica (or, in capacity rows, summed over replicas)."""

    cpu: float  # cores
    memory: int  # bytes
    gpu: dict[str, int]  # count by resource name, e.g. {"nvidia.com/gpu": 2}


class UsageAmounts(TypedDict):
    """Measured usage (metrics.k8s.io) of all pods of a workload."""

    cpu: float  # cores
    memory: int  # bytes


class CapacitySampleInput(TypedDict):
    """What one scan saw one model workload hold (see :mod:`modelgate.capacity`)."""

    cluster: str
    namespace: str
    kind: str
    name: str
    model: str | None
    version: str | None
    owner: str
    registered: bool  # admitted (in the inventory) when seen; False: an orphan
    replicas: int | None  # desired
    ready_replicas: int | None
    restarts: int | None  # container restarts of its pods; None when the source saw no pod
    requests: ResourceAmounts  # one replica, Kubernetes defaulting applied
    limits: ResourceAmounts  # one replica
    usage: UsageAmounts | None  # None where metrics.k8s.io reported nothing


class CapacitySampleRecord(CapacitySampleInput):
    id: int
    scan_id: int
    seen_at: datetime


# --------------------------------------------------------------------------- mappers


def deployment_record(d: Deployment) -> DeploymentRecord:
    mv = d.model_version
    return DeploymentRecord(
        id=d.id,
        cluster=d.cluster,
        namespace=d.namespace,
        kind=d.kind,
        name=d.name,
        images=list(d.images or []),
        model=mv.model.name if mv is not None else None,
        version=mv.version if mv is not None else None,
        owner=accountable_owner(mv.owner, mv.model.owner) if mv is not None else None,
        first_admitted=d.first_admitted,
        last_admitted=d.last_admitted,
        replicas=d.replicas,
        ready_replicas=d.ready_replicas,
        resources=dict(d.resources) if d.resources is not None else None,
        last_seen=d.last_seen,
        status=d.status,
        live=is_live(d.status),
    )


def certification_record(c: Certification, model: str, version: str) -> CertificationRecord:
    return CertificationRecord(
        model=model, version=version, name=c.name, expires=c.expires, expires_raw=c.expires_raw
    )


def training_run_record(run: TrainingRun) -> TrainingRunRecord:
    return TrainingRunRecord(
        run_ref=run.run_ref, url=run.url, datasets=sorted(ds.uri for ds in run.datasets)
    )


def version_record(v: ModelVersion, model: str) -> VersionRecord:
    run = training_run_record(v.training_run) if v.training_run is not None else None
    datasets = sorted({ds.uri for ds in v.datasets} | set(run["datasets"] if run else ()))
    return VersionRecord(
        model=model,
        version=v.version,
        owner=v.owner,
        training_date=v.training_date,
        training_date_raw=v.training_date_raw,
        compliance_status=v.compliance_status,
        risk_tier=v.risk_tier,
        model_card=v.model_card,
        metrics=dict(v.metrics or {}),
        source=v.source,
        exempt_reason=v.exempt_reason,
        training_run=run,
        datasets=datasets,
        certifications=[certification_record(c, model, v.version) for c in v.certifications],
        deployments=[
            deployment_record(d)
            for d in sorted(v.deployments, key=lambda d: (d.cluster, d.namespace, d.kind, d.name))
        ],
        first_admitted=v.first_admitted,
        last_admitted=v.last_admitted,
        metadata=dict(v.raw_metadata or {}),
        registered_by=v.registered_by,
        registered_at=v.registered_at,
    )


def newest_first(versions: Iterable[ModelVersion]) -> list[ModelVersion]:
    """Most recently admitted first; versions only registered (never deployed) after them."""
    return sorted(
        versions, key=lambda v: (bool(v.deployments), v.last_admitted, v.id), reverse=True
    )


def model_record(m: Model) -> ModelRecord:
    versions = [version_record(v, m.name) for v in newest_first(m.versions)]
    return ModelRecord(
        name=m.name,
        owner=m.owner,
        created_at=m.created_at,
        updated_at=m.updated_at,
        latest_version=versions[0]["version"] if versions else None,
        versions=versions,
        lineage=lineage(versions),
    )


def accountable_owner(version_owner: str | None, model_owner: str | None) -> str | None:
    """Who answers for a model version: its own owner, else its model's (None without
    either). The one home of the rule (records, dashboard, report and export use it)."""
    return version_owner or model_owner or None


def finding_owner(f: FindingInput, model_owners: Mapping[str, str]) -> str | None:
    """Who must remediate a finding: the owner the audit recorded on it (the model's, or the
    namespace's owner label for an orphan), else the inventory's owner of its model
    (``model_owners``: model name to owner, :func:`modelgate.inventory.queries.model_owners`)."""
    return f["owner"] or model_owners.get(f["model"] or "") or None


def deployment_id(d: DeploymentRecord) -> str:
    """``cluster/namespace/kind/name``: how a deployment is named in lineage and reports."""
    return f"{d['cluster']}/{d['namespace']}/{d['kind']}/{d['name']}"


def lineage(versions: Iterable[VersionRecord]) -> list[LineageEdge]:
    """dataset -> training run -> model version -> deployment (recorded ones)."""
    edges: list[LineageEdge] = []
    for v in versions:
        version_id = f"{v['model']}@{v['version']}"
        run = v["training_run"]
        if run is not None:
            for uri in v["datasets"]:
                edges.append(
                    LineageEdge(
                        source_type="dataset",
                        source=uri,
                        target_type="training_run",
                        target=run["run_ref"],
                    )
                )
            edges.append(
                LineageEdge(
                    source_type="training_run",
                    source=run["run_ref"],
                    target_type="model_version",
                    target=version_id,
                )
            )
        else:
            for uri in v["datasets"]:
                edges.append(
                    LineageEdge(
                        source_type="dataset",
                        source=uri,
                        target_type="model_version",
                        target=version_id,
                    )
                )
        for d in v["deployments"]:
            if is_recorded(d["status"]):
                edges.append(
                    LineageEdge(
                        source_type="model_version",
                        source=version_id,
                        target_type="deployment",
                        target=deployment_id(d),
                    )
                )
    return edges


def model_summary(m: ModelRecord) -> ModelSummary:
    latest = m["versions"][0] if m["versions"] else None
    return ModelSummary(
        name=m["name"],
        version=latest["version"] if latest else "",
        owner=accountable_owner(latest["owner"] if latest else None, m["owner"]) or "",
        risk_tier=latest["risk_tier"] if latest else "",
        compliance_status=latest["compliance_status"] if latest else "",
        deployments=sum(1 for v in m["versions"] for d in v["deployments"] if d["live"]),
        versions=len(m["versions"]),
        last_admitted=latest["last_admitted"] if latest else None,
    )


def decision_record(d: Decision) -> DecisionRecord:
    return DecisionRecord(
        id=d.id,
        time=d.time,
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
        approvals=[dict(a) for a in d.approvals or []],
    )


def _scope(raw: Any) -> Scope | None:
    if not isinstance(raw, Mapping):
        return None
    scope = Scope()
    for key in ("clusters", "namespaces"):
        values = raw.get(key)
        if isinstance(values, list) and values:
            scope[key] = [str(v) for v in values]  # type: ignore[literal-required]
    return scope or None


def approval_record(a: Approval, model: str, version: str, status: str = "") -> ApprovalRecord:
    return ApprovalRecord(
        id=a.id,
        model=model,
        version=version,
        decision=a.decision,
        approver=a.approver,
        approver_email=a.approver_email,
        approver_groups=list(a.approver_groups or []),
        created=a.created,
        reason=a.reason,
        evidence=list(a.evidence or []),
        expires=a.expires,
        scope=_scope(a.scope),
        status=status,
        revoked_at=a.revoked_at,
        revoked_by=a.revoked_by,
        revoke_reason=a.revoke_reason,
    )


def exemption_record(e: Exemption, model: str, version: str, status: str = "") -> ExemptionRecord:
    return ExemptionRecord(
        id=e.id,
        model=model,
        version=version,
        granted_by=e.granted_by,
        granted_by_groups=list(e.granted_by_groups or []),
        created=e.created,
        reason=e.reason,
        expires=e.expires,
        status=status,
        revoked_at=e.revoked_at,
        revoked_by=e.revoked_by,
        revoke_reason=e.revoke_reason,
    )


def recorded_certification_record(
    c: RecordedCertification, model: str, version: str, status: str = ""
) -> RecordedCertificationRecord:
    return RecordedCertificationRecord(
        id=c.id,
        model=model,
        version=version,
        name=c.name,
        expires=c.expires,
        evidence=c.evidence,
        recorded_by=c.recorded_by,
        recorded_by_groups=list(c.recorded_by_groups or []),
        created=c.created,
        status=status,
        revoked_at=c.revoked_at,
        revoked_by=c.revoked_by,
        revoke_reason=c.revoke_reason,
    )


def approval_log_record(e: ApprovalLogEntry) -> ApprovalLogRecord:
    evidence = json.loads(e.evidence) if e.evidence else []
    scope = json.loads(e.scope) if e.scope else None
    return ApprovalLogRecord(
        id=e.id,
        time=e.time,
        action=e.action,
        actor=e.actor,
        actor_groups=[g for g in e.actor_groups.split(",") if g],
        model=e.model,
        version=e.version,
        record_type=e.record_type,
        record_id=e.record_id,
        reason=e.reason,
        evidence=[str(x) for x in evidence] if isinstance(evidence, list) else [],
        expires=e.expires,
        scope=scope if isinstance(scope, dict) else None,
    )


def finding_record(f: Finding) -> FindingRecord:
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
        owner=f.owner,
        due=f.due,
        status=f.status,
        first_seen=f.first_seen,
        last_seen=f.last_seen,
        resolved_at=f.resolved_at,
    )


def scan_record(s: ScanRun) -> ScanRecord:
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


def _amounts(value: Mapping[str, Any] | None) -> ResourceAmounts:
    value = value or {}
    gpu = value.get("gpu")
    return ResourceAmounts(
        cpu=float(value.get("cpu") or 0.0),
        memory=int(value.get("memory") or 0),
        gpu={str(k): int(v) for k, v in gpu.items()} if isinstance(gpu, Mapping) else {},
    )


def capacity_sample_record(s: CapacitySample) -> CapacitySampleRecord:
    usage = (
        UsageAmounts(cpu=float(s.usage.get("cpu") or 0.0), memory=int(s.usage.get("memory") or 0))
        if s.usage is not None
        else None
    )
    return CapacitySampleRecord(
        id=s.id,
        scan_id=s.scan_id,
        seen_at=s.seen_at,
        cluster=s.cluster,
        namespace=s.namespace,
        kind=s.kind,
        name=s.name,
        model=s.model,
        version=s.version,
        owner=s.owner,
        registered=s.registered,
        replicas=s.replicas,
        ready_replicas=s.ready_replicas,
        restarts=s.restarts,
        requests=_amounts(s.requests),
        limits=_amounts(s.limits),
        usage=usage,
    )


def jsonable(value: Any) -> Any:
    """``value`` (a record, or lists and mappings of them) with datetimes and dates as ISO
    8601 strings: what JSON output, templates and exports use."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
