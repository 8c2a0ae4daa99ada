"""The audit data (scan runs, findings) and the runtime state scans write onto deployments.

The auditor never touches SQLAlchemy: it calls the plain functions here, which take a
:class:`~modelgate.inventory.db.Database` (like every inventory function) and return the
records of :mod:`modelgate.inventory.records`.

A finding is identified by its fingerprint ``type|cluster|namespace|kind|name``: a later scan
that sees it again updates ``last_seen``; a later successful scan of the same cluster that does
not see it marks it ``resolved``; seeing a resolved finding again reopens it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import select

from modelgate.compliance import NOT_RUNNING, RUNNING, due_date, is_recorded
from modelgate.inventory.base import utcnow
from modelgate.inventory.db import Database, errors
from modelgate.inventory.models import Deployment, Finding, ScanRun, scan_findings
from modelgate.inventory.records import (
    FindingInput,
    FindingRecord,
    ScanRecord,
    finding_record,
    scan_record,
)

_CHUNK = 500


class RuntimeUpdate(TypedDict):
    """What a scan saw of one running deployment (written onto the inventory's row)."""

    cluster: str
    namespace: str
    kind: str
    name: str
    replicas: int | None
    ready_replicas: int | None
    resources: dict[str, Any]


def _guard(db: Database) -> Any:
    """Database errors as :class:`InventoryError` (one line, password redacted)."""
    return errors(db, "audit data could not be written to")


def fingerprint(f: Mapping[str, Any]) -> str:
    return "|".join(str(f[k]) for k in ("type", "cluster", "namespace", "kind", "name"))


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
    with _guard(db), db.session() as session:
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


def record_findings(
    db: Database,
    scan_id: int,
    findings: Sequence[FindingInput],
    seen_at: datetime,
    *,
    remediation_days: Mapping[str, int] | None = None,
) -> None:
    """Upsert findings seen by ``scan_id`` (open them, or reopen resolved ones), each due
    ``remediation_days[severity]`` days after it was first seen (no due date without)."""
    windows = dict(remediation_days or {})
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
                row.due = due_date(row.first_seen, row.severity, windows)
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
        "owner": data.get("owner"),
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
        return scan_record(scan) if scan is not None else None


def latest_scan(db: Database) -> ScanRecord | None:
    with db.read() as session:
        scan = session.scalars(select(ScanRun).order_by(ScanRun.id.desc()).limit(1)).first()
        return scan_record(scan) if scan is not None else None


def previous_scan(db: Database, scan_id: int) -> ScanRecord | None:
    """The last completed scan before ``scan_id`` (what a report compares with)."""
    with db.read() as session:
        scan = session.scalars(
            select(ScanRun)
            .where(ScanRun.id < scan_id, ScanRun.status == "completed")
            .order_by(ScanRun.id.desc())
            .limit(1)
        ).first()
        return scan_record(scan) if scan is not None else None


def list_scans(db: Database, limit: int = 50) -> list[ScanRecord]:
    with db.read() as session:
        rows = session.scalars(select(ScanRun).order_by(ScanRun.id.desc()).limit(limit))
        return [scan_record(s) for s in rows]


def scan_findings_of(db: Database, scan_id: int) -> list[FindingRecord]:
    """Findings seen by one scan (as they are now: first/last seen, status)."""
    with db.read() as session:
        rows = session.scalars(
            select(Finding)
            .join(scan_findings, scan_findings.c.finding_id == Finding.id)
            .where(scan_findings.c.scan_id == scan_id)
            .order_by(Finding.cluster, Finding.namespace, Finding.kind, Finding.name, Finding.type)
        )
        return [finding_record(f) for f in rows]


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
        return [finding_record(f) for f in rows]


def findings(
    db: Database,
    *,
    status: str | None = None,
    cluster: str | None = None,
    type: str | None = None,
    model: str | None = None,
    namespace: str | None = None,
    severity: str | None = None,
) -> list[FindingRecord]:
    """Findings (of one status, cluster, type, model, namespace or severity, or all), sorted
    by workload then type."""
    with db.read() as session:
        query = select(Finding)
        if status:
            query = query.where(Finding.status == status)
        if cluster:
            query = query.where(Finding.cluster == cluster)
        if type:
            query = query.where(Finding.type == type)
        if model:
            query = query.where(Finding.model == model)
        if namespace:
            query = query.where(Finding.namespace == namespace)
        if severity:
            query = query.where(Finding.severity == severity)
        query = query.order_by(
            Finding.cluster, Finding.namespace, Finding.kind, Finding.name, Finding.type
        )
        return [finding_record(f) for f in session.scalars(query)]


# --------------------------------------------------------------------------- inventory side


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
                if is_recorded(dep.status):
                    dep.status = RUNNING
                matched += 1
    return matched


def mark_not_running(db: Database, deployment_ids: Sequence[int]) -> None:
    """Deployments a successful scan did not find (retired) get status ``not-running``."""
    for chunk in _chunks(deployment_ids):
        with _guard(db), db.session() as session:
            for dep in session.scalars(select(Deployment).where(Deployment.id.in_(chunk))):
                if is_recorded(dep.status):
                    dep.status = NOT_RUNNING
