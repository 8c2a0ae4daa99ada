"""Schema migrations without an ``alembic.ini``: the Alembic configuration is built in code
and points at the migrations shipped inside this package.

``upgrade(url)`` / ``downgrade(url, rev)`` / ``current(url)`` are what ``modelgate db`` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, exc
from sqlalchemy.engine import Connection

from modelgate.inventory.db import classify, make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def all_metadata() -> MetaData:
    """``Base.metadata`` with every table of the inventory (all defined in ``models``)."""
    from modelgate.inventory import models  # noqa: F401  (defines every table on Base)
    from modelgate.inventory.base import Base

    return Base.metadata


def configure_context(context: Any, connection: Connection, metadata: MetaData) -> None:
    """Shared by env.py and the schema comparison: batch mode lets SQLite alter tables."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run(url: str, action: str, *args: Any) -> None:
    url = normalize_url(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            getattr(command, action)(alembic_config(connection), *args)
    except (exc.OperationalError, exc.InterfaceError) as e:
        raise classify(e, url) from e
    finally:
        engine.dispose()


def upgrade(url: str, rev: str = "head") -> None:
    """Apply migrations up to ``rev``."""
    _run(url, "upgrade", rev)


def downgrade(url: str, rev: str) -> None:
    """Revert migrations down to ``rev`` (``base`` drops everything)."""
    _run(url, "downgrade", rev)


def current(url: str) -> str | None:
    """The revision the database is at (``None`` when never migrated)."""
    url = normalize_url(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except (exc.OperationalError, exc.InterfaceError) as e:
        raise classify(e, url) from e
    finally:
        engine.dispose()


def head() -> str:
    """The newest revision shipped with this package."""
    script = ScriptDirectory.from_config(alembic_config())
    rev = script.get_current_head()
    assert rev is not None
    return rev


def revisions() -> list[str]:
    """Every shipped revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]
