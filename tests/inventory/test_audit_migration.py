"""Migration 0002_audit: creates exactly the audit tables of modelgate.inventory.audit (no
difference between the models and the migrated schema) on SQLite and PostgreSQL, and its
downgrade removes them again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from modelgate.inventory import migrate
from modelgate.inventory.db import make_engine

AUDIT_TABLES = {"audit_scans", "audit_findings", "audit_scan_findings"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


def test_upgrade_matches_models_and_downgrade_removes_audit_tables(url: str) -> None:
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert "0002_audit" in migrate.revisions()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= AUDIT_TABLES
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = [
                d
                for d in compare_metadata(context, migrate.all_metadata())
                if any(t in repr(d) for t in AUDIT_TABLES)
            ]
            assert diff == []

        migrate.downgrade(url, "0001_initial")
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
        assert not (AUDIT_TABLES & tables)
        assert "deployments" in tables
        migrate.upgrade(url)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= AUDIT_TABLES
    finally:
        engine.dispose()
