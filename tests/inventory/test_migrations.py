"""Migrations: upgrade head / downgrade base on SQLite and real PostgreSQL, and the migrated
schema equals the ORM metadata (autogenerate finds nothing to do)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from modelgate.inventory import migrate
from modelgate.inventory.db import (
    Database,
    DatabaseUnavailable,
    DatabaseURLError,
    make_engine,
    normalize_url,
)

INVENTORY_TABLES = {
    "models",
    "model_versions",
    "certifications",
    "datasets",
    "training_runs",
    "training_run_datasets",
    "model_version_datasets",
    "deployments",
    "decisions",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_creates_every_table_and_downgrade_base_removes_them(
    empty_url: str,
) -> None:
    assert migrate.current(empty_url) is None
    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()
    assert _tables(empty_url) >= INVENTORY_TABLES

    migrate.downgrade(empty_url, "base")
    assert migrate.current(empty_url) is None
    assert _tables(empty_url) & INVENTORY_TABLES == set()

    migrate.upgrade(empty_url)  # and back up again: downgrade left nothing behind
    assert _tables(empty_url) >= INVENTORY_TABLES


def test_upgrade_is_idempotent(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()


def test_initial_revision_is_0001_and_first_in_history() -> None:
    assert migrate.revisions()[0] == "0001_initial"


def test_migrated_schema_matches_the_orm_metadata(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, migrate.all_metadata())
    finally:
        engine.dispose()
    assert diff == []


def test_migrated_decision_log_refuses_update_and_delete(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO decisions (event_id, time, uid, "user", operation, cluster,'
                    " kind, namespace, name, allowed, is_model, violations, warnings,"
                    " enforcement, bundle_digest, engine, seq, prev_hash, entry_hash) VALUES"
                    " ('e1', :t, 'u', 'x', 'CREATE', 'c', 'Pod', 'ns', 'p', true, false, '[]',"
                    " '[]', 'enforce', '', '', 1, 'p', 'h')"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
        for statement in ("UPDATE decisions SET allowed = false", "DELETE FROM decisions"):
            with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
                conn.execute(text(statement))
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 1
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("", "sqlite:///modelgate.db"),
    ],
)
def test_database_urls_are_normalised_to_psycopg(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "::nope::"])
def test_unsupported_database_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(DatabaseURLError):
        normalize_url(url)


def test_upgrade_against_a_closed_port_is_a_clear_unavailable_error() -> None:
    from tests.fixtures.tools import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(DatabaseUnavailable, match="unavailable"):
        migrate.upgrade(url)


def _decision_columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("decisions")}
    finally:
        engine.dispose()


def test_0003_adds_a_nullable_caller_verified_and_downgrade_keeps_the_log_append_only(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0002_audit")
    insert = text(
        'INSERT INTO decisions (event_id, time, uid, "user", operation, cluster, kind, namespace,'
        " name, allowed, is_model, violations, warnings, enforcement, bundle_digest, engine)"
        " VALUES (:e, '2026-01-01 00:00:00', 'u', 'x', 'CREATE', 'c', 'Pod', 'ns', 'p', true,"
        " false, '[]', '[]', 'enforce', '', '')"
    )
    db = Database(empty_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(insert, {"e": "before-0003"})
        migrate.upgrade(empty_url, "0003_caller_verified")
        assert migrate.current(empty_url) == "0003_caller_verified"
        assert "caller_verified" in _decision_columns(empty_url)
        with db.engine.connect() as conn:
            old = conn.execute(text("SELECT caller_verified FROM decisions")).scalar_one()
        assert old is None  # older decisions: unknown

        migrate.downgrade(empty_url, "0002_audit")
        assert "caller_verified" not in _decision_columns(empty_url)
        with db.engine.begin() as conn:
            conn.execute(insert, {"e": "after-downgrade"})
        with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
            conn.execute(text("DELETE FROM decisions"))
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM decisions")).scalar() == 2
    finally:
        db.dispose()
