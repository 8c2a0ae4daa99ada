"""Typed ORM models of the inventory.

Lineage: ``Dataset`` --(training_run_datasets)--> ``TrainingRun`` --> ``ModelVersion``
--> ``Deployment``; datasets are also linked to the version directly
(``model_version_datasets``) because ``training-run`` is optional metadata.

``Decision`` is the append-only decision log: a trigger (created with the table, and by the
migration) refuses UPDATE and DELETE on both SQLite and PostgreSQL. It is a hash chain
(:class:`ChainedEntry`: sequence number, previous entry's hash, entry hash; see
:mod:`modelgate.inventory.chain`), whose head is kept in ``log_heads`` and whose signed
checkpoints are ``log_checkpoints`` (append-only too).

``Approval``, ``Exemption`` and ``RecordedCertification`` are the sign-off recorded through
the API (only their revocation fields ever change); ``ApprovalLogEntry`` is the approval log,
one row per write (register, approve, reject, revoke, exempt, certify), append-only and
hash-chained like the decision log. On PostgreSQL a write to the sign-off tables notifies the
channel :data:`REGISTRY_CHANNEL`, so webhooks reload their approval snapshot at once.

``ScanRun`` and ``Finding`` are the auditor's: one row per ``modelgate audit`` scan, and the
findings tracked across scans (``audit_scan_findings`` links each scan to what it saw).
Every table of the inventory is defined here, on the one :class:`~modelgate.inventory.base.Base`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modelgate.inventory.base import Base, JSONType, NullableJSONType, UTCDateTime, utcnow

#: Integer primary keys that are BIGINT on PostgreSQL and rowid aliases on SQLite.
BigID = BigInteger().with_variant(Integer(), "sqlite")

training_run_datasets = Table(
    "training_run_datasets",
    Base.metadata,
    Column(
        "training_run_id",
        BigID,
        ForeignKey("training_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("dataset_id", BigID, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
)

model_version_datasets = Table(
    "model_version_datasets",
    Base.metadata,
    Column(
        "model_version_id",
        BigID,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("dataset_id", BigID, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
)


class Model(Base):
    """A named model; its versions carry the metadata."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    owner: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    training_runs: Mapped[list[TrainingRun]] = relationship(
        secondary=training_run_datasets, back_populates="datasets"
    )
    model_versions: Mapped[list[ModelVersion]] = relationship(
        secondary=model_version_datasets, back_populates="datasets"
    )


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    run_ref: Mapped[str] = mapped_column(Text, unique=True)  # run id or URL, as annotated
    url: Mapped[str | None] = mapped_column(Text)  # set when run_ref is a URL
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    datasets: Mapped[list[Dataset]] = relationship(
        secondary=training_run_datasets, back_populates="training_runs"
    )
    model_versions: Mapped[list[ModelVersion]] = relationship(back_populates="training_run")


class ModelVersion(Base):
    """One version of a model with every metadata field of the annotation contract."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(Text, default="")
    training_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    training_date_raw: Mapped[str | None] = mapped_column(Text)
    compliance_status: Mapped[str] = mapped_column(Text, default="")
    risk_tier: Mapped[str] = mapped_column(Text, default="limited")
    model_card: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    training_run_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("training_runs.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str | None] = mapped_column(Text)
    exempt_reason: Mapped[str | None] = mapped_column(Text)
    #: every modelgate.dev/* value as admitted (what could not be parsed is still here)
    raw_metadata: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    first_admitted: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_admitted: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: who registered the version through the API (None: first seen at admission)
    registered_by: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    model: Mapped[Model] = relationship(back_populates="versions")
    training_run: Mapped[TrainingRun | None] = relationship(back_populates="model_versions")
    datasets: Mapped[list[Dataset]] = relationship(
        secondary=model_version_datasets, back_populates="model_versions"
    )
    certifications: Mapped[list[Certification]] = relationship(
        back_populates="model_version",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Certification.name",
    )
    deployments: Mapped[list[Deployment]] = relationship(back_populates="model_version")


class Certification(Base):
    __tablename__ = "certifications"
    __table_args__ = (UniqueConstraint("model_version_id", "name"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    expires: Mapped[date | None] = mapped_column(Date)
    expires_raw: Mapped[str | None] = mapped_column(Text)

    model_version: Mapped[ModelVersion] = relationship(back_populates="certifications")


class Deployment(Base):
    """A workload in a cluster running a model version.

    Admission fills identity, images and the version; the auditor updates the runtime fields
    (replicas, ready_replicas, resources, last_seen, status).
    """

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("cluster", "namespace", "kind", "name"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cluster: Mapped[str] = mapped_column(Text)
    namespace: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    images: Mapped[list[str]] = mapped_column(JSONType, default=list)
    model_version_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    first_admitted: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_admitted: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replicas: Mapped[int | None] = mapped_column(Integer)
    ready_replicas: Mapped[int | None] = mapped_column(Integer)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str | None] = mapped_column(Text)

    model_version: Mapped[ModelVersion | None] = relationship(back_populates="deployments")


class ChainedEntry:
    """The chain columns of an append-only log table (:mod:`modelgate.inventory.chain`):
    the entry's position, the hash of the entry before it and its own hash (SHA-256 over the
    previous hash and the entry's canonical content). Every other column except ``id`` is
    logged content."""

    #: position in the log, 1, 2, 3, ... without gaps (assigned under the chain head's lock)
    seq: Mapped[int] = mapped_column(BigID, unique=True)
    #: ``entry_hash`` of the entry before (the log's genesis hash for the first one)
    prev_hash: Mapped[str] = mapped_column(Text)
    #: SHA-256 (hex) of ``prev_hash`` and the entry's canonical content
    entry_hash: Mapped[str] = mapped_column(Text)


class Decision(ChainedEntry, Base):
    """One admission decision, allowed or denied. Append-only, hash-chained."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index(None, "cluster", "namespace", "kind", "name"),
        Index(None, "model_name", "model_version"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: recorder-assigned id; makes replays (spool, retries) idempotent
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    uid: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(Text, default="")
    operation: Mapped[str] = mapped_column(Text, default="")
    cluster: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(Text, default="")
    namespace: Mapped[str] = mapped_column(Text, default="")
    name: Mapped[str] = mapped_column(Text, default="")
    allowed: Mapped[bool] = mapped_column(Boolean)
    is_model: Mapped[bool] = mapped_column(Boolean)
    model_name: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(Text)
    violations: Mapped[list[str]] = mapped_column(JSONType, default=list)
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enforcement: Mapped[str] = mapped_column(Text, default="")
    bundle_digest: Mapped[str] = mapped_column(Text, default="")
    engine: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    #: True when the caller presented a client certificate the webhook verified (mutual TLS),
    #: None when the webhook does not verify callers (and for rows older than 0003)
    caller_verified: Mapped[bool | None] = mapped_column(Boolean)
    #: the recorded sign-off that admitted the model: [{"type": "approval"|"exemption", "id"}]
    approvals: Mapped[list[dict[str, Any]] | None] = mapped_column(NullableJSONType)


# --- sign-off: approvals, exemptions, recorded certifications, the approval log ---------


class Approval(Base):
    """An approver's decision (approved / rejected) on a model version."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    decision: Mapped[str] = mapped_column(Text)  # approved / rejected
    approver: Mapped[str] = mapped_column(Text)
    approver_email: Mapped[str | None] = mapped_column(Text)
    approver_groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[list[str]] = mapped_column(JSONType, default=list)
    expires: Mapped[date | None] = mapped_column(Date)
    #: {"clusters": [...], "namespaces": [...]}; an empty or absent list means every one
    scope: Mapped[dict[str, list[str]] | None] = mapped_column(JSONType)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(Text)
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    model_version: Mapped[ModelVersion] = relationship()


class Exemption(Base):
    """An approver's exemption of a model version from approval, until it expires."""

    __tablename__ = "exemptions"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    granted_by: Mapped[str] = mapped_column(Text)
    granted_by_groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
    expires: Mapped[date] = mapped_column(Date)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(Text)
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    model_version: Mapped[ModelVersion] = relationship()


class RecordedCertification(Base):
    """A certification an approver recorded for a model version (with its evidence)."""

    __tablename__ = "recorded_certifications"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    expires: Mapped[date] = mapped_column(Date)
    evidence: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(Text)
    recorded_by_groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(Text)
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    model_version: Mapped[ModelVersion] = relationship()


class ApprovalLogEntry(ChainedEntry, Base):
    """One write of sign-off data. Append-only and hash-chained like the decision log (log
    ``approval_log`` of :mod:`modelgate.inventory.chain`); every content field is a plain
    column (lists and scopes as canonical JSON text)."""

    __tablename__ = "approval_log"
    __table_args__ = (Index(None, "model", "version"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: register / approve / reject / revoke / exempt / certify
    action: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    actor_groups: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    model: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    #: what the write made or changed: approval / exemption / certification / version
    record_type: Mapped[str] = mapped_column(Text)
    record_id: Mapped[int | None] = mapped_column(BigID)
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="[]")  # canonical JSON list
    expires: Mapped[str | None] = mapped_column(Text)  # YYYY-MM-DD
    scope: Mapped[str | None] = mapped_column(Text)  # canonical JSON object


# --- audit: scan runs and findings -----------------------------------------------------


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
    #: who must remediate it: the model's owner, or the namespace's owner label for orphans
    owner: Mapped[str | None] = mapped_column(Text)
    #: first_seen + the policy data's remediation window for its severity
    due: Mapped[date | None] = mapped_column(Date)
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


# --- capacity: what each scan saw each model workload hold ---------------------------------


class CapacitySample(Base):
    """One model workload as one audit scan saw it: replicas, restarts, the requests and
    limits of one replica (CPU cores, memory bytes, GPUs by resource name) and the measured
    usage of all its pods. Orphans (never admitted) are sampled too; the samples of successive
    scans are the capacity trend."""

    __tablename__ = "capacity_samples"
    __table_args__ = (Index(None, "cluster", "scan_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    scan_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("audit_scans.id", ondelete="CASCADE"), index=True
    )
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cluster: Mapped[str] = mapped_column(Text)
    namespace: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(Text, default="")
    name: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(Text, default="")
    #: the inventory held the workload as admitted when the scan saw it (else: an orphan)
    registered: Mapped[bool] = mapped_column(Boolean)
    replicas: Mapped[int | None] = mapped_column(Integer)
    ready_replicas: Mapped[int | None] = mapped_column(Integer)
    restarts: Mapped[int | None] = mapped_column(Integer)
    #: {"cpu": cores, "memory": bytes, "gpu": {resource: count}} of one replica
    requests: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: {"cpu": cores, "memory": bytes} of all pods (metrics.k8s.io); None when not reported
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# --- tamper evidence: chain heads and signed checkpoints ---------------------------------


class LogHead(Base):
    """The newest entry of each hash-chained log. Writers lock this row (``SELECT ... FOR
    UPDATE`` on PostgreSQL, the write lock on SQLite) while they append, so concurrent
    writers never fork the chain."""

    __tablename__ = "log_heads"

    log: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigID)
    entry_hash: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LogCheckpoint(Base):
    """A signed statement "entry ``seq`` of ``log`` had hash ``entry_hash`` at
    ``signed_at``" (Ed25519; ``modelgate log checkpoint``). Append-only."""

    __tablename__ = "log_checkpoints"
    __table_args__ = (Index(None, "log", "seq"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    log: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigID)
    entry_hash: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the raw Ed25519 public key, base64
    public_key: Mapped[str] = mapped_column(Text)
    #: ``SHA256:`` + hex SHA-256 of the raw public key
    key_fingerprint: Mapped[str] = mapped_column(Text)
    #: base64 Ed25519 signature of :func:`modelgate.inventory.chain.checkpoint_payload`
    signature: Mapped[str] = mapped_column(Text)


# --- append-only decision log: triggers on both backends ------------------------------------

APPEND_ONLY_MESSAGE = "the decision log is append-only"


def append_only_triggers(table: str, message: str) -> tuple[list[str], list[str]]:
    """The (SQLite, PostgreSQL) DDL of the triggers that refuse UPDATE and DELETE on an
    append-only ``table`` with ``message``."""
    sqlite = [
        f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
BEGIN SELECT RAISE(ABORT, '{message}'); END"""
        for op in ("UPDATE", "DELETE")
    ]
    postgres = [
        f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege';
END
$$""",
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""",
    ]
    return sqlite, postgres


SQLITE_APPEND_ONLY, POSTGRES_APPEND_ONLY = append_only_triggers("decisions", APPEND_ONLY_MESSAGE)
SQLITE_APPEND_ONLY_DROP = [
    f"DROP TRIGGER IF EXISTS decisions_no_{op}" for op in ("update", "delete")
]

POSTGRES_APPEND_ONLY_DROP = [
    "DROP TRIGGER IF EXISTS decisions_append_only ON decisions",
    "DROP FUNCTION IF EXISTS decisions_append_only()",
]

CHECKPOINTS_APPEND_ONLY_MESSAGE = "the log checkpoints are append-only"

SQLITE_CHECKPOINTS_APPEND_ONLY, POSTGRES_CHECKPOINTS_APPEND_ONLY = append_only_triggers(
    "log_checkpoints", CHECKPOINTS_APPEND_ONLY_MESSAGE
)

for _table, _sqlite, _postgres in (
    (Decision.__table__, SQLITE_APPEND_ONLY, POSTGRES_APPEND_ONLY),
    (LogCheckpoint.__table__, SQLITE_CHECKPOINTS_APPEND_ONLY, POSTGRES_CHECKPOINTS_APPEND_ONLY),
):
    for _stmt in _sqlite:
        event.listen(_table, "after_create", DDL(_stmt).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
    for _stmt in _postgres:
        event.listen(_table, "after_create", DDL(_stmt).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]

# --- the approval log: append-only the same way; sign-off writes notify the webhooks ------

APPROVAL_LOG_APPEND_ONLY_MESSAGE = "the approval log is append-only"

SQLITE_APPROVAL_LOG_APPEND_ONLY, _POSTGRES_APPROVAL_LOG_APPEND_ONLY = append_only_triggers(
    "approval_log", APPROVAL_LOG_APPEND_ONLY_MESSAGE
)
SQLITE_APPROVAL_LOG_APPEND_ONLY_DROP = [
    f"DROP TRIGGER IF EXISTS approval_log_no_{op}" for op in ("update", "delete")
]

#: the PostgreSQL channel a sign-off write notifies (payload: the table)
REGISTRY_CHANNEL = "modelgate_registry"
REGISTRY_TABLES = ("approvals", "exemptions", "recorded_certifications")

POSTGRES_APPROVAL_LOG = [
    *_POSTGRES_APPROVAL_LOG_APPEND_ONLY,
    f"""CREATE OR REPLACE FUNCTION modelgate_registry_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{REGISTRY_CHANNEL}', TG_TABLE_NAME);
  RETURN NULL;
END
$$""",
]
POSTGRES_REGISTRY_TRIGGER = """CREATE TRIGGER {table}_registry_notify
AFTER INSERT OR UPDATE OR DELETE ON {table}
FOR EACH STATEMENT EXECUTE FUNCTION modelgate_registry_notify()"""
POSTGRES_APPROVAL_LOG_DROP = [
    *(f"DROP TRIGGER IF EXISTS {t}_registry_notify ON {t}" for t in REGISTRY_TABLES),
    "DROP FUNCTION IF EXISTS modelgate_registry_notify()",
    "DROP TRIGGER IF EXISTS approval_log_append_only ON approval_log",
    "DROP FUNCTION IF EXISTS approval_log_append_only()",
]

for _stmt in SQLITE_APPROVAL_LOG_APPEND_ONLY:
    event.listen(
        ApprovalLogEntry.__table__,
        "after_create",
        DDL(_stmt).execute_if(dialect="sqlite"),  # type: ignore[no-untyped-call]
    )
for _stmt in POSTGRES_APPROVAL_LOG:
    event.listen(
        ApprovalLogEntry.__table__,
        "after_create",
        DDL(_stmt).execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
    )
for _registry_table in REGISTRY_TABLES:
    _trigger = DDL(POSTGRES_REGISTRY_TRIGGER.format(table=_registry_table))  # type: ignore[no-untyped-call]
    # after every table exists
    event.listen(
        Base.metadata,
        "after_create",
        _trigger.execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
    )
