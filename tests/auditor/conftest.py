"""Auditor fixtures: a migrated SQLite inventory and the embedded policy engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelgate.engine import engine_for
from modelgate.inventory import migrate
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from policies.engines import PolicyEngine


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def engine() -> Iterator[PolicyEngine]:
    eng = engine_for(Settings.from_env({}))
    assert eng.ready(), "the shipped policy bundle must load"
    yield eng
    eng.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated inventory on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'any.db'}"
    else:
        url = str(request.getfixturevalue("postgres_db_url"))
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()
