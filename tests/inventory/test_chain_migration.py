"""Migration 0005_log_chain on SQLite and real PostgreSQL: decisions and approval-log entries
recorded before it are chained in insertion order, each chain continues with new writes, and
the downgrade removes the chains and keeps both logs append-only."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import inspect, text

from modelgate.identity import Identity
from modelgate.inventory import chain, migrate, signoff
from modelgate.inventory.db import Database, make_engine
from policies.config import PolicyConfig
from tests.inventory.test_chain import record

BEFORE = "0004_approvals"

#: approval-log rows written before the chain existed (times out of insertion order)
OLD_APPROVAL_LOG: list[dict[str, Any]] = [
    {
        "time": "2026-01-05 09:00:00.000001",
        "action": "register",
        "actor": "owner@example.com",
        "actor_groups": "",
        "model": "scorer",
        "version": "1.0",
        "record_type": "version",
        "record_id": 1,
        "reason": "registered for review",
        "evidence": "[]",
        "expires": None,
        "scope": None,
    },
    {
        "time": "2026-01-04 09:00:00.000000",
        "action": "approve",
        "actor": "zoë@example.com",
        "actor_groups": "model-risk,auditors",
        "model": "scorer",
        "version": "1.0",
        "record_type": "approval",
        "record_id": 7,
        "reason": "geprüft ✓",
        "evidence": '["https://example.com/review"]',
        "expires": "2027-01-01",
        "scope": '{"clusters":["prod"]}',
    },
    {
        "time": "2026-01-06 09:00:00.500000",
        "action": "revoke",
        "actor": "lead@example.com",
        "actor_groups": "model-risk",
        "model": "scorer",
        "version": "1.0",
        "record_type": "approval",
        "record_id": 7,
        "reason": "superseded",
        "evidence": "[]",
        "expires": None,
        "scope": None,
    },
]


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


def _insert_old_approval_log(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for row in OLD_APPROVAL_LOG:
                conn.execute(
                    text(
                        "INSERT INTO approval_log (time, action, actor, actor_groups, model,"
                        " version, record_type, record_id, reason, evidence, expires, scope)"
                        " VALUES (:time, :action, :actor, :actor_groups, :model, :version,"
                        " :record_type, :record_id, :reason, :evidence, :expires, :scope)"
                    ),
                    row,
                )
    finally:
        engine.dispose()


def _by_log(db: Database) -> dict[str, chain.LogReport]:
    return {r["log"]: r for r in chain.verify(db)}


def _register(db: Database, version: str) -> None:
    signoff.register_version(
        db,
        model="scorer",
        version=version,
        metadata={
            "owner": "owner@example.com",
            "training-date": "2026-01-01",
            "training-data": "s3://d",
        },
        actor=Identity("owner@example.com"),
        config=PolicyConfig(),
    )


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
        report = _by_log(db)["decisions"]
        assert report["intact"] and report["entries"] == 3, report["problems"]

        record(db, 2)  # the webhook goes on where the backfill stopped
        report = _by_log(db)["decisions"]
        assert report["intact"] and (report["first_seq"], report["last_seq"]) == (1, 5)
    finally:
        db.dispose()


def test_existing_approval_log_entries_are_chained_in_insertion_order_and_the_chain_goes_on(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, BEFORE)
    _insert_old_approval_log(empty_url)
    migrate.upgrade(empty_url)
    db = Database(empty_url)
    try:
        with db.engine.connect() as conn:
            entries = conn.execute(
                text("SELECT seq, prev_hash, entry_hash, action FROM approval_log ORDER BY seq")
            ).all()
            head = chain.read_head(conn, chain.LOGS["approval_log"])
        assert [(e.seq, e.action) for e in entries] == [
            (1, "register"),
            (2, "approve"),
            (3, "revoke"),
        ]
        # the documented form: genesis of "approval_log", the row's columns without the NULL
        # ones, timestamps in UTC with six fraction digits
        genesis = hashlib.sha256(b"modelgate log chain\napproval_log").hexdigest()
        first = {
            **{k: v for k, v in OLD_APPROVAL_LOG[0].items() if v is not None},
            "time": "2026-01-05T09:00:00.000001Z",
        }
        content = json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entries[0].prev_hash == genesis
        assert entries[0].entry_hash == hashlib.sha256(f"{genesis}\n{content}".encode()).hexdigest()
        assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
        assert head is not None and (head.seq, head.hash) == (3, entries[-1].entry_hash)
        report = _by_log(db)["approval_log"]
        assert report["intact"] and report["entries"] == 3, report["problems"]

        _register(db, "2.0")  # sign-off goes on where the backfill stopped
        report = _by_log(db)["approval_log"]
        assert report["intact"] and (report["first_seq"], report["last_seq"]) == (1, 4)
    finally:
        db.dispose()


def test_downgrade_removes_the_chains_and_keeps_the_logs_append_only(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    db = Database(empty_url)
    try:
        record(db, 2)
        _register(db, "1.0")
        _register(db, "2.0")
        with db.engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM decisions")).scalar()
        assert count == 2
    finally:
        db.dispose()
    migrate.downgrade(empty_url, BEFORE)
    for table in ("decisions", "approval_log"):
        assert {"seq", "prev_hash", "entry_hash"} & _columns(empty_url, table) == set()
    assert {"owner", "due"} & _columns(empty_url, "audit_findings") == set()
    engine = make_engine(empty_url)
    try:
        assert {"log_heads", "log_checkpoints"} & set(inspect(engine).get_table_names()) == set()
        for statement in (
            "UPDATE decisions SET allowed = false",
            "DELETE FROM decisions",
            "UPDATE approval_log SET actor = 'mallory'",
            "DELETE FROM approval_log",
        ):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM approval_log")).scalar() == 2
    finally:
        engine.dispose()
    migrate.upgrade(empty_url)  # and up again: the rows are chained once more
    db = Database(empty_url)
    try:
        reports = _by_log(db)
        assert reports["decisions"]["intact"] and reports["decisions"]["entries"] == 2
        assert reports["approval_log"]["intact"] and reports["approval_log"]["entries"] == 2
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
