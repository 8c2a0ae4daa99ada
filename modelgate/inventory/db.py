"""Engines and sessions: URL normalisation (psycopg 3 for PostgreSQL), SQLite pragmas, a
readiness ping, and a small error hierarchy that callers outside the package can catch without
importing SQLAlchemy."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///modelgate.db"
CONNECT_TIMEOUT_SECONDS = 5


class InventoryError(RuntimeError):
    """Base of the inventory's errors."""


class DatabaseURLError(InventoryError, ValueError):
    """The database URL cannot be used."""


class DatabaseUnavailable(InventoryError):
    """The database does not answer (down, unreachable, bad credentials, ...)."""


class SchemaMissing(InventoryError):
    """The database answers but the inventory tables are not there (run ``db upgrade``)."""


def normalize_url(url: str) -> str:
    """Canonical SQLAlchemy URL: ``postgres://`` and ``postgresql://`` use psycopg 3."""
    url = (url or "").strip()
    if not url:
        return DEFAULT_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
            break
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise DatabaseURLError(f"invalid database URL {redact(url)!r}: {e}") from e
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise DatabaseURLError(
            f"unsupported PostgreSQL driver {parsed.get_driver_name()!r}: use postgresql+psycopg://"
        )
    return url


def missing_sqlite_file(url: str) -> str | None:
    """The path of the SQLite database file ``url`` names when that file does not exist
    (connecting would create an empty one), else ``None`` (other backends, in-memory and
    ``file:`` URIs, existing files). Readers use it to report a mistyped path instead of
    leaving an empty database behind."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:  # an unparseable URL is reported by normalize_url
        return None
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    if path.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return None if Path(path).exists() else path


def redact(url: str) -> str:
    """The URL with its password hidden (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (normalised); nothing connects until first use."""
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        options["connect_args"] = {"check_same_thread": False, "timeout": 15}
    else:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        options["pool_recycle"] = 1800
    options.update(kwargs)
    engine = create_engine(url, **options)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        # write-ahead log: readers (dashboard, auditor) and the recorder do not block each
        # other, and a commit is one append (synchronous stays FULL: a commit is durable)
        with contextlib.suppress(sqlite3.OperationalError):  # read-only: keep the journal
            cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def is_connectivity_error(error: BaseException) -> bool:
    """Whether ``error`` means "the database is not usable right now" (retry later) rather
    than "this data is wrong" (retrying will not help)."""
    return isinstance(
        error,
        exc.OperationalError
        | exc.InterfaceError
        | exc.DisconnectionError
        | exc.TimeoutError
        | exc.ProgrammingError,  # e.g. tables missing until `db upgrade` runs
    ) or (isinstance(error, exc.DBAPIError) and error.connection_invalidated)


def one_line(error: BaseException) -> str:
    """The first line of a database error's driver message (of ``error`` itself otherwise)."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Database:
    """An engine plus a session factory for one URL."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only use session; database errors become :class:`InventoryError`."""
        try:
            with self._sessions() as session:
                yield session
        except (exc.OperationalError, exc.ProgrammingError) as e:
            raise classify(e, self.url) from e
        except exc.InterfaceError as e:
            raise DatabaseUnavailable(f"database {redact(self.url)} unavailable: {e}") from e

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except exc.SQLAlchemyError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def errors(db: Database, action: str) -> Iterator[None]:
    """Database errors inside the block as :class:`InventoryError` subclasses: one line,
        the password redacted; ``action`` says what failed, before the URL ("audit data could not
    be written to")."""
    try:
        yield
    except (exc.OperationalError, exc.ProgrammingError) as e:
        raise classify(e, db.url) from e
    except exc.InterfaceError as e:
        raise DatabaseUnavailable(f"database {redact(db.url)} unavailable: {e}") from e
    except exc.SQLAlchemyError as e:
        raise InventoryError(f"{action} {redact(db.url)}: {e}") from e


def classify(error: exc.DBAPIError, url: str) -> InventoryError:
    """A one-line, user-facing error for a database failure."""
    message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    lowered = message.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return SchemaMissing(
            f"the inventory schema is missing in {redact(url)}: run `modelgate db upgrade`"
        )
    return DatabaseUnavailable(f"database {redact(url)} unavailable: {message}")
