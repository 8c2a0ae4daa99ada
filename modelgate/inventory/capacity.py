"""The capacity samples' reads and writes: what each audit scan saw each model workload hold
(:class:`~modelgate.inventory.models.CapacitySample`). The figures are computed from them by
:mod:`modelgate.capacity`; like every inventory function these take the
:class:`~modelgate.inventory.db.Database` and return records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select

from modelgate.compliance import DELETED
from modelgate.inventory.audit import _chunks, _guard
from modelgate.inventory.db import Database
from modelgate.inventory.models import CapacitySample, Deployment, ScanRun
from modelgate.inventory.records import (
    CapacitySampleInput,
    CapacitySampleRecord,
    capacity_sample_record,
)

#: how many recent scans the trend covers
TREND_SCANS = 30


def record_samples(
    db: Database, scan_id: int, samples: Sequence[CapacitySampleInput], seen_at: datetime
) -> None:
    """Store what scan ``scan_id`` saw of these model workloads."""
    for chunk in _chunks(samples):
        with _guard(db), db.session() as session:
            session.add_all(
                CapacitySample(
                    scan_id=scan_id,
                    seen_at=seen_at,
                    cluster=s["cluster"],
                    namespace=s["namespace"],
                    kind=s["kind"],
                    name=s["name"],
                    model=s["model"],
                    version=s["version"],
                    owner=s["owner"],
                    registered=s["registered"],
                    replicas=s["replicas"],
                    ready_replicas=s["ready_replicas"],
                    restarts=s["restarts"],
                    requests=dict(s["requests"]),
                    limits=dict(s["limits"]),
                    usage=dict(s["usage"]) if s["usage"] is not None else None,
                )
                for s in chunk
            )


def latest_scan_per_cluster(db: Database, limit: int = 200) -> dict[str, int]:
    """For each cluster, the most recent scan (among the last ``limit``) that listed it
    completely: its source answered (a source that failed midway left a partial picture)."""
    out: dict[str, int] = {}
    with db.read() as session:
        scans = session.scalars(
            select(ScanRun).where(ScanRun.status != "running").order_by(ScanRun.id.desc())
        ).fetchmany(limit)
        for scan in scans:
            for source in scan.sources or []:
                cluster = str(source.get("cluster") or "")
                if cluster and source.get("status") == "ok":
                    out.setdefault(cluster, scan.id)
    return out


def current_samples(db: Database) -> list[CapacitySampleRecord]:
    """What the latest complete scan of each cluster saw, less the admitted workloads whose
    deletion was admitted since."""
    latest = latest_scan_per_cluster(db)
    if not latest:
        return []
    with db.read() as session:
        where = or_(
            *(
                and_(CapacitySample.cluster == c, CapacitySample.scan_id == s)
                for c, s in latest.items()
            )
        )
        rows = [
            capacity_sample_record(s)
            for s in session.scalars(
                select(CapacitySample)
                .where(where)
                .order_by(
                    CapacitySample.cluster,
                    CapacitySample.namespace,
                    CapacitySample.kind,
                    CapacitySample.name,
                )
            )
        ]
        deleted = {
            (d.cluster, d.namespace, d.kind, d.name)
            for d in session.scalars(
                select(Deployment).where(
                    Deployment.status == DELETED, Deployment.cluster.in_(list(latest))
                )
            )
        }
    return [
        r
        for r in rows
        if not (r["registered"] and (r["cluster"], r["namespace"], r["kind"], r["name"]) in deleted)
    ]


def recent_samples(db: Database, scans: int = TREND_SCANS) -> list[CapacitySampleRecord]:
    """Every sample of the last ``scans`` scans that recorded any, oldest scan first."""
    with db.read() as session:
        ids = list(
            session.scalars(
                select(CapacitySample.scan_id)
                .distinct()
                .order_by(CapacitySample.scan_id.desc())
                .limit(scans)
            )
        )
        if not ids:
            return []
        return [
            capacity_sample_record(s)
            for s in session.scalars(
                select(CapacitySample)
                .where(CapacitySample.scan_id.in_(ids))
                .order_by(CapacitySample.scan_id, CapacitySample.id)
                .execution_options(yield_per=1000)
            )
        ]
