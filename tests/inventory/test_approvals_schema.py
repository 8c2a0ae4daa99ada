"""Migration 0004_approvals on SQLite and real PostgreSQL: the approval log is append-only
like the decision log, every sign-off write is logged once, the downgrade to 0002 removes the
sign-off tables and columns, and old spool lines (without ``approvals``) still load."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

from modelgate.events import event_from_json, event_to_json
from modelgate.identity import Identity
from modelgate.inventory import migrate, signoff
from modelgate.inventory.db import Database, make_engine
from policies.config import PolicyConfig
from tests.fixtures.inventory import EventFactory

SIGN_OFF_TABLES = {"approvals", "exemptions", "recorded_certifications", "approval_log"}


def _seed(db: Database) -> None:
    signoff.register_version(
        db,
        model="scorer",
        version="1.0",
        metadata={
            "owner": "o@example.com",
            "training-date": "2026-01-01",
            "training-data": "s3://d",
        },
        actor=Identity("o@example.com"),
        config=PolicyConfig(),
    )
    signoff.record_approval(
        db,
        model="scorer",
        version="1.0",
        decision="approved",
        actor=Identity("a@example.com", ("model-risk",)),
        reason="ok",
        config=PolicyConfig(),
        today=datetime.now(UTC).date(),
    )


def test_the_approval_log_refuses_update_and_delete(db_url: str, db: Database) -> None:
    _seed(db)
    for statement in ("UPDATE approval_log SET actor = 'mallory'", "DELETE FROM approval_log"):
        with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT action, actor FROM approval_log ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("register", "o@example.com"), ("approve", "a@example.com")]


def test_downgrade_to_0002_removes_sign_off_and_upgrade_restores_it(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    db = Database(empty_url)
    try:
        _seed(db)
    finally:
        db.dispose()
    migrate.downgrade(empty_url, "0002_audit")
    engine = make_engine(empty_url)
    try:
        insp = inspect(engine)
        assert SIGN_OFF_TABLES.isdisjoint(insp.get_table_names())
        assert "registered_by" not in {c["name"] for c in insp.get_columns("model_versions")}
        assert "approvals" not in {c["name"] for c in insp.get_columns("decisions")}
        with engine.begin() as conn:  # the decision log is still append-only after the downgrade
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()


def test_old_spool_lines_without_approvals_still_load(make_event: EventFactory) -> None:
    event = make_event()
    line = event_to_json(event)
    assert line["approvals"] == []
    del line["approvals"]  # written before the field existed
    assert event_from_json(line).approvals == ()
    admitted = type(event)(**{**event.__dict__, "approvals": ({"type": "approval", "id": 3},)})
    assert event_from_json(event_to_json(admitted)).approvals == ({"type": "approval", "id": 3},)
