"""Migration 0006_capacity on SQLite and real PostgreSQL: it creates exactly the ORM's
capacity_samples table (autogenerate finds no difference), samples written through
modelgate.inventory.capacity read back as records, and its downgrade removes the table while
leaving the audit tables it depends on."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from modelgate.inventory import audit, migrate
from modelgate.inventory import capacity as inventory_capacity
from modelgate.inventory.db import Database, make_engine
from modelgate.inventory.records import CapacitySampleInput, ResourceAmounts


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_matches_the_model_and_downgrade_removes_capacity_samples(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    assert "0006_capacity" in migrate.revisions()
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = [
                d
                for d in compare_metadata(context, migrate.all_metadata())
                if "capacity_samples" in repr(d)
            ]
            assert diff == []
    finally:
        engine.dispose()

    db = Database(empty_url)
    try:
        now = datetime(2026, 3, 1, 12, tzinfo=UTC)
        scan = audit.start_scan(db, started_at=now)
        sample = CapacitySampleInput(
            cluster="prod",
            namespace="gen",
            kind="Deployment",
            name="llm",
            model="llm-chat",
            version="0.9",
            owner="genai@example.com",
            registered=True,
            replicas=2,
            ready_replicas=1,
            restarts=4,
            requests=ResourceAmounts(cpu=0.5, memory=2**30, gpu={"nvidia.com/gpu": 2}),
            limits=ResourceAmounts(cpu=2.0, memory=4 * 2**30, gpu={"nvidia.com/gpu": 2}),
            usage=None,
        )
        inventory_capacity.record_samples(db, scan, [sample], now)
        audit.finish_scan(
            db,
            scan,
            sources=[{"name": "k", "cluster": "prod", "status": "ok"}],
            summary={},
            scanned_clusters=["prod"],
            finished_at=now,
        )
        (got,) = inventory_capacity.current_samples(db)
        assert {k: got[k] for k in sample} == sample  # type: ignore[literal-required]
        assert (got["scan_id"], got["seen_at"]) == (scan, now)
    finally:
        db.dispose()

    migrate.downgrade(empty_url, "0002_audit")
    tables = _tables(empty_url)
    assert "capacity_samples" not in tables
    assert {"audit_scans", "audit_findings"} <= tables
    migrate.upgrade(empty_url)
    assert "capacity_samples" in _tables(empty_url)
