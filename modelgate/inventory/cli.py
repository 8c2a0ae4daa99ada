"""``modelgate db ...`` (migrations) and ``modelgate models ...`` (read the inventory).

The database URL comes from :meth:`Settings.from_env` (``MODELGATE_DATABASE_URL``). Errors are
one line on stderr: exit 1 for "no such model", exit 2 for an unusable database or URL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from modelgate.settings import Settings, SettingsError

T = TypeVar("T")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _url() -> str:
    try:
        return Settings.from_env().database_url
    except SettingsError as e:
        _fail(str(e), 2)


@contextmanager
def _database_errors() -> Iterator[None]:
    """Turn inventory/database failures into a clean one-line error with exit code 2."""
    from sqlalchemy import exc

    from modelgate.inventory.db import InventoryError, classify, redact

    try:
        yield
    except InventoryError as e:
        _fail(str(e), 2)
    except exc.DBAPIError as e:
        _fail(str(classify(e, _url())), 2)
    except exc.SQLAlchemyError as e:
        _fail(f"database {redact(_url())}: {str(e).splitlines()[0]}", 2)


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database file that does not exist yet, else ``None``."""
    from modelgate.inventory.db import missing_sqlite_file

    return missing_sqlite_file(url)


def _refuse_missing_sqlite_file(url: str) -> None:
    """Reading commands never create a SQLite file (a mistyped path would leave one behind)."""
    from modelgate.inventory.db import redact

    path = _missing_sqlite_file(url)
    if path is not None:
        _fail(
            f"no inventory database at {redact(url)} (file {path} does not exist): "
            "run `modelgate db upgrade` to create it, or set MODELGATE_DATABASE_URL",
            2,
        )


def _read(fn: Callable[[Any], T]) -> T:
    """``fn(database)`` with database errors as one-line failures (exit 2)."""
    from modelgate.inventory.db import Database

    _refuse_missing_sqlite_file(_url())
    with _database_errors():
        db = Database(_url())
        try:
            return fn(db)
        finally:
            db.dispose()


# --- db -------------------------------------------------------------------------------------


@click.group("db")
def db_group() -> None:
    """Inventory database schema (Alembic migrations shipped with modelgate)."""


@db_group.command("upgrade")
@click.option("--revision", "revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from modelgate.inventory import migrate
    from modelgate.inventory.db import redact

    url = _url()
    with _database_errors():
        migrate.upgrade(url, revision)
        click.echo(f"{redact(url)}: at revision {migrate.current(url)}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (``base`` removes every inventory table)."""
    from modelgate.inventory import migrate
    from modelgate.inventory.db import redact

    url = _url()
    with _database_errors():
        migrate.downgrade(url, revision)
        click.echo(f"{redact(url)}: at revision {migrate.current(url) or 'base'}")


@db_group.command("current")
def db_current() -> None:
    """Print the database's revision (``base`` when never migrated) and the newest one."""
    from modelgate.inventory import migrate

    with _database_errors():
        rev = None if _missing_sqlite_file(_url()) else migrate.current(_url())
        click.echo(f"current: {rev or 'base'}")
        click.echo(f"head: {migrate.head()}")


# --- models ---------------------------------------------------------------------------------

_OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


@click.group("models")
def models_group() -> None:
    """Read the model inventory."""


@models_group.command("list")
@_OUTPUT
@click.option("--search", default=None, help="Only models whose name or owner contains this.")
@click.option(
    "--dataset", default=None, help="Only models trained on a dataset whose URI contains this."
)
def models_list(output: str, search: str | None, dataset: str | None) -> None:
    """Every model with its latest version, owner, risk tier, status and deployment count."""
    from modelgate.inventory import queries
    from modelgate.inventory.records import jsonable, model_summary

    records = _read(lambda db: queries.list_models(db, search=search, dataset=dataset))
    rows = [jsonable(model_summary(r)) for r in records]
    if output == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no models in the inventory")
        return
    columns = ["name", "version", "owner", "risk_tier", "compliance_status", "deployments"]
    click.echo(
        _table(
            ["NAME", "VERSION", "OWNER", "RISK TIER", "STATUS", "DEPLOYMENTS"],
            [[str(r[c]) for c in columns] for r in rows],
        )
    )


@models_group.command("show")
@click.argument("name")
@_OUTPUT
def models_show(name: str, output: str) -> None:
    """One model: versions, lineage, certifications, deployments and recent decisions."""
    from modelgate.inventory import queries
    from modelgate.inventory.records import jsonable

    def read(db: Any) -> Any:
        record = queries.get_model(db, name)
        if record is None:
            return None
        return jsonable({**record, "decisions": queries.decisions(db, model=name, limit=20)})

    detail = _read(read)
    if detail is None:
        _fail(f"no model named {name!r} in the inventory (see `modelgate models list`)", 1)
    if output == "json":
        click.echo(json.dumps(detail, indent=2, ensure_ascii=False))
        return
    click.echo(_render_detail(detail))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _render_detail(detail: Any) -> str:
    from modelgate.compliance import is_recorded

    out = [f"model: {detail['name']}", f"owner: {detail['owner']}"]
    out.append(f"latest version: {detail['latest_version'] or '-'}")
    for v in detail["versions"]:
        out.append("")
        out.append(f"version {v['version']}")
        fields = [
            ("owner", v["owner"]),
            ("compliance status", v["compliance_status"]),
            ("risk tier", v["risk_tier"]),
            ("training date", v["training_date_raw"] or v["training_date"] or "-"),
            ("model card", v["model_card"] or "-"),
            ("source", v["source"] or "-"),
            ("exempt reason", v["exempt_reason"]),
            ("first admitted", v["first_admitted"]),
            ("last admitted", v["last_admitted"]),
        ]
        for label, value in fields:
            if value is not None:
                out.append(f"  {label}: {value}")
        if v["metrics"]:
            metrics = ", ".join(f"{k}={val:g}" for k, val in sorted(v["metrics"].items()))
            out.append(f"  metrics: {metrics}")
        run = v["training_run"]
        out.append(f"  training run: {run['run_ref'] if run else '-'}")
        out.append(f"  datasets: {', '.join(v['datasets']) or '-'}")
        certs = [
            f"{c['name']} (expires {c['expires'] or c['expires_raw'] or '?'})"
            for c in v["certifications"]
        ]
        out.append(f"  certifications: {', '.join(certs) or '-'}")
        recorded = [d for d in v["deployments"] if is_recorded(d["status"])]
        if recorded:
            out.append("  deployments:")
            for d in recorded:
                images = ", ".join(d["images"]) or "-"
                out.append(
                    f"    {d['cluster']}/{d['namespace']}/{d['kind']}/{d['name']}  images: {images}"
                )
        else:
            out.append("  deployments: -")
    if detail["lineage"]:
        out.append("")
        out.append("lineage:")
        for e in detail["lineage"]:
            out.append(f"  {e['source_type']} {e['source']} -> {e['target_type']} {e['target']}")
    if detail["decisions"]:
        out.append("")
        out.append("recent decisions:")
        for d in detail["decisions"]:
            verdict = "allowed" if d["allowed"] else "denied"
            where = f"{d['cluster']}/{d['namespace']}/{d['kind']}/{d['name']}"
            out.append(f"  {d['time']}  {d['operation']:<7} {verdict:<7} {where}  {d['user']}")
            for msg in d["violations"]:
                out.append(f"      violation: {msg}")
            for msg in d["warnings"]:
                out.append(f"      warning: {msg}")
    return "\n".join(out)
