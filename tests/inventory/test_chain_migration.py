"""Migration 0005_log_chain on SQLite and real PostgreSQL: decisions recorded before it are
chained in insertion order, the chain continues with new decisions, and the downgrade
removes the chain and keeps the log append-only."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect, text

from modelgate.inventory import chain, migrate
from modelgate.inventory.db import Database, make_engine
from tests.inventory.test_chain import record

BEFORE = "0004_approvals"


def _insert_old_decisions(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for n, (name, error, violations) in enumerate(
                [
                    ("b-second-by-time", None, []),
                    ("a-first-by-time", "engine timeout", ["kein Eigentümer ✗"]),
                    ("c", None, ["x", "y"]),
                ]
            ):
                conn.execute(
                    text(
                        'INSERT INTO decisions (event_id, time, uid, "user", operation, cluster,'
                        " kind, namespace, name, allowed, is_model, model_name, violations,"
                        " warnings, enforcement, bundle_digest, engine, error) VALUES (:e, :t,"
                        " 'u', 'x', 'CREATE', 'c', 'Deployment', 'ns', :name, :allowed, true,"
                        " :model, :v, '[]', 'enforce', 'sha256:0', 'embedded', :error)"
                    ),
                    {
                        "e": f"old-{n}",
                        # times out of insertion order: the chain follows insertion
                        "t": f"2026-01-0{3 - n} 10:00:00.123456",
                        "name": name,
                        "allowed": not violations,
                        "model": "m" if n else None,
                        "v": json.dumps(violations, ensure_ascii=False),
                        "error": error,
                    },
                )
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_existing_decisions_are_chained_in_insertion_order_and_the_chain_goes_on(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, BEFORE)
    _insert_old_decisions(empty_url)
    migrate.upgrade(empty_url)
    db = Database(empty_url)
    try:
        with db.engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM decisions ORDER BY seq")).scalars().all()
            head = chain.read_head(conn, chain.LOGS["decisions"])
        assert names == ["b-second-by-time", "a-first-by-time", "c"]
        assert head is not None and head.seq == 3
        (report,) = chain.verify(db)
        assert report["intact"] and report["entries"] == 3, report["problems"]

        record(db, 2)  # the webhook goes on where the backfill stopped
        (report,) = chain.verify(db)
        assert report["intact"] and (report["first_seq"], report["last_seq"]) == (1, 5)
    finally:
        db.dispose()


def test_downgrade_removes_the_chain_and_keeps_the_log_append_only(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    db = Database(empty_url)
    try:
        record(db, 2)
        with db.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM decisions")).scalar()
        assert count == 2
    finally:
        db.dispose()
    migrate.downgrade(empty_url, BEFORE)
    assert {"seq", "prev_hash", "entry_hash"} & _columns(empty_url, "decisions") == set()
    assert {"owner", "due"} & _columns(empty_url, "audit_findings") == set()
    engine = make_engine(empty_url)
    try:
        assert {"log_heads", "log_checkpoints"} & set(inspect(engine).get_table_names()) == set()
        for statement in ("UPDATE decisions SET allowed = false", "DELETE FROM decisions"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 2
    finally:
        engine.dispose()
    migrate.upgrade(empty_url)  # and up again: the rows are chained once more
    db = Database(empty_url)
    try:
        (report,) = chain.verify(db)
        assert report["intact"] and report["entries"] == 2
    finally:
        db.dispose()


def test_the_checkpoint_table_is_append_only(db_url: str) -> None:
    db = Database(db_url)
    try:
        record(db, 1)
        chain.checkpoint(db, chain.generate_key())
        for statement in ("UPDATE log_checkpoints SET seq = 0", "DELETE FROM log_checkpoints"):
            with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        db.dispose()
