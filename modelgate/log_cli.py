"""``modelgate log ...``: tamper evidence of the inventory's append-only logs, every log
registered in :data:`modelgate.inventory.chain.LOGS`: the decision log (``decisions``) and the
approval log (``approval_log``).

- ``verify`` recomputes the hash chains and checks every signed checkpoint and the stored
  heads (or checks an exported ``--segment`` file on its own);
- ``checkpoint`` signs the current head of each log with the Ed25519 key of
  ``MODELGATE_LOG_SIGNING_KEY_FILE`` and stores the signed checkpoint;
- ``export`` writes the entries of a time window of one log (``--log``, default
  ``decisions``) as a segment (JSON Lines + its checkpoint) for archiving; ``prune`` deletes
  from the database what an archived segment holds (of the log its header names);
- ``keygen`` writes a new signing key.

Exit codes: 0 intact (or done), 1 tampered, 2 bad usage or input (options, key or segment
files), 3 database errors.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from modelgate.settings import Settings, SettingsError

EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3

T = TypeVar("T")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as e:
        _fail(str(e), EXIT_USAGE)


@contextmanager
def _errors() -> Iterator[None]:
    """Chain errors (bad key, segment, argument) exit 2, database errors exit 3."""
    from modelgate.inventory.chain import ChainError, Tampered
    from modelgate.inventory.db import InventoryError

    try:
        yield
    except Tampered as e:
        for report in e.reports:
            click.echo(_table(report), err=True)
        _fail(str(e), EXIT_TAMPERED)
    except ChainError as e:
        _fail(str(e), EXIT_USAGE)
    except InventoryError as e:
        _fail(str(e), EXIT_DATABASE)


def _with_database(settings: Settings, fn: Callable[[Any], T]) -> T:
    from modelgate.inventory.db import Database, missing_sqlite_file, redact

    path = missing_sqlite_file(settings.database_url)
    if path is not None:
        _fail(
            f"no inventory database at {redact(settings.database_url)} (file {path} does not "
            "exist): set MODELGATE_DATABASE_URL",
            EXIT_DATABASE,
        )
    with _errors():
        db = Database(settings.database_url)
        try:
            return fn(db)
        finally:
            db.dispose()


def _trusted(settings: Settings, public_keys: tuple[str, ...]) -> list[str] | None:
    """Fingerprints of the keys checkpoints must be signed with: ``--public-key`` files, else
    MODELGATE_LOG_PUBLIC_KEY_FILE, else the signing key's public half; None when none is
    configured (then any valid signature counts, and the report names the key)."""
    from modelgate.inventory import chain

    paths = [Path(p) for p in public_keys]
    if not paths and settings.log_public_key_file is not None:
        paths = [settings.log_public_key_file]
    if not paths and settings.log_signing_key_file is not None:
        paths = [settings.log_signing_key_file]
    if not paths:
        return None
    with _errors():
        return [chain.fingerprint(chain.load_public_key(p)) for p in paths]


def _signing_key(settings: Settings, key_file: str | None, *, required: bool) -> Any:
    from modelgate.inventory import chain

    path = Path(key_file) if key_file else settings.log_signing_key_file
    if path is None:
        if required:
            _fail(
                "no signing key: pass --key-file or set MODELGATE_LOG_SIGNING_KEY_FILE "
                "(`modelgate log keygen` writes one)",
                EXIT_USAGE,
            )
        return None
    with _errors():
        return chain.load_private_key(path)


class _When(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 date (midnight UTC) or date-time (naive means UTC)."""

    name = "DATE|DATETIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, tzinfo=UTC)
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or date-time", param, ctx)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _short(value: str | None) -> str:
    return value if value else "-"


def _table(report: Any) -> str:
    """One log's verification as text: a status line, then one line per problem."""
    span = f"{report['first_seq']}-{report['last_seq']}" if report["first_seq"] is not None else "-"
    cp = report["latest_checkpoint"]
    if report["intact"]:
        line = f"{report['log']}: intact, {report['entries']} entries ({span})"
    else:
        line = (
            f"{report['log']}: TAMPERED, {report['problems_total']} problem(s) in "
            f"{report['entries']} entries ({span})"
        )
    line += f", {report['checkpoints']} checkpoint(s) checked"
    if cp is not None:
        line += (
            f"; latest: entry {cp['seq']} signed at {cp['signed_at']} by {cp['key_fingerprint']}"
        )
    else:
        line += "; no checkpoint"
    if report["anchored_by"] == "checkpoint":
        line += f"; starts after the pruned entries (from entry {report['first_seq']})"
    lines = [line]
    for p in report["problems"]:
        lines.append(
            f"  seq {p['seq']}  {p['kind']}: {p['message']}"
            f" (expected {_short(p['expected'])}, found {_short(p['found'])})"
        )
    if report["problems_total"] > len(report["problems"]):
        lines.append(f"  ... {report['problems_total'] - len(report['problems'])} more")
    return "\n".join(lines)


_OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
_LOG = click.option(
    "--log",
    "logs",
    multiple=True,
    metavar="NAME",
    help="Only this log (repeatable; default: every log: decisions, approval_log).",
)
_PUBLIC_KEY = click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Trusted Ed25519 public key (PEM, or base64 as the report prints it; repeatable). "
    "Default: MODELGATE_LOG_PUBLIC_KEY_FILE, else the signing key's.",
)


@click.group("log")
def log_group() -> None:
    """Tamper evidence of the decision log and the approval log.

    \b
    Exit codes:
      0  intact / done
      1  tampered (verify names every edited, deleted, inserted or reordered entry)
      2  bad usage or input (options, key or segment files)
      3  database errors
    """


def _check_logs(logs: tuple[str, ...]) -> list[str] | None:
    from modelgate.inventory import chain

    for name in logs:
        if name not in chain.LOGS:
            _fail(f"unknown log {name!r} (one of {', '.join(sorted(chain.LOGS))})", EXIT_USAGE)
    return list(logs) or None


@log_group.command("verify")
@click.option(
    "--from",
    "from_seq",
    type=click.IntRange(min=1),
    help="Start at this sequence number of one log (--log, default decisions), trusting the "
    "hash it links to; the entry after the last verifies nothing new (exit 0), further is bad "
    "usage (exit 2).",
)
@click.option(
    "--segment",
    "segments",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Verify an exported segment file on its own instead of the database (repeatable).",
)
@_LOG
@_PUBLIC_KEY
@_OUTPUT
def verify_command(
    from_seq: int | None,
    segments: tuple[str, ...],
    logs: tuple[str, ...],
    public_keys: tuple[str, ...],
    output: str,
) -> None:
    """Recompute the hash chains and check every signed checkpoint.

    Exit 0 when intact; 1 naming each edited, deleted, inserted or reordered entry (its
    sequence number, the expected and the found hash), including newest entries deleted
    after a checkpoint. Streams: memory does not grow with the log.
    """
    from modelgate.inventory import chain

    settings = _settings()
    trusted = _trusted(settings, public_keys)
    if segments and (from_seq is not None or logs):
        _fail("--segment cannot be combined with --from or --log", EXIT_USAGE)
    if from_seq is not None and len(logs) > 1:
        _fail("--from takes one --log: sequence numbers are per log", EXIT_USAGE)
    if segments:
        with _errors():
            reports = [chain.verify_segment(Path(p), trusted=trusted) for p in segments]
    else:
        # sequence numbers are per log: --from alone means the decision log's
        names = _check_logs(logs or (("decisions",) if from_seq is not None else ()))
        reports = _with_database(
            settings, lambda db: chain.verify(db, names, from_seq=from_seq, trusted=trusted)
        )
    intact = all(r["intact"] for r in reports)
    if output == "json":
        click.echo(
            json.dumps(
                {"intact": intact, "trusted_keys": trusted, "logs": reports},
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        for r in reports:
            click.echo(_table(r))
        if trusted is None:
            click.echo(
                "note: no trusted public key configured: checkpoint signatures were checked "
                "against the keys they name (compare the fingerprint with the published one)"
            )
    if not intact:
        sys.exit(EXIT_TAMPERED)


@log_group.command("checkpoint")
@_LOG
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    help="Ed25519 private key (default: MODELGATE_LOG_SIGNING_KEY_FILE).",
)
@_OUTPUT
def checkpoint_command(logs: tuple[str, ...], key_file: str | None, output: str) -> None:
    """Sign the current head (sequence number, hash, time) of each log and store the signed
    checkpoint."""
    from modelgate.inventory import chain

    settings = _settings()
    names = _check_logs(logs)
    key = _signing_key(settings, key_file, required=True)
    signed = _with_database(settings, lambda db: chain.checkpoint(db, key, names))
    if output == "json":
        click.echo(json.dumps([chain.jsonable_checkpoint(cp) for cp in signed], indent=2))
        return
    for cp in signed:
        click.echo(
            f"{cp['log']}: checkpoint of entry {cp['seq']} (hash {cp['entry_hash']}) signed at "
            f"{chain.jsonable_checkpoint(cp)['signed_at']} by {cp['key_fingerprint']}"
        )


@log_group.command("export")
@click.option("--since", type=_When(), help="First time included (ISO 8601; UTC if no zone).")
@click.option("--until", type=_When(), help="End of the window (excluded).")
@click.option(
    "--log",
    "log_name",
    default="decisions",
    show_default=True,
    help="The log to export: decisions or approval_log.",
)
@click.option(
    "--out",
    "out",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The segment file to write (JSON Lines; `-` writes it to stdout).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    help="Signs the segment's last entry when no checkpoint of it is stored "
    "(default: MODELGATE_LOG_SIGNING_KEY_FILE).",
)
@_PUBLIC_KEY
def export_command(
    since: datetime | None,
    until: datetime | None,
    log_name: str,
    out: str,
    key_file: str | None,
    public_keys: tuple[str, ...],
) -> None:
    """Write the entries recorded between --since and --until as a segment that
    `modelgate log verify --segment FILE` checks on its own: a header, one line per entry
    and a signed checkpoint of the last entry. A log that does not verify is not exported.

    Segments are contiguous runs of the chain: an entry recorded late (replayed from the
    spool) inside the run is included even if its time is outside the window.
    """
    from modelgate.inventory import chain

    if since is not None and until is not None and since >= until:
        _fail("--since must be before --until", EXIT_USAGE)
    _check_logs((log_name,))
    settings = _settings()
    key = _signing_key(settings, key_file, required=False)
    trusted = _trusted(settings, public_keys)
    target: Any = sys.stdout if out == "-" else Path(out)
    summary = _with_database(
        settings,
        lambda db: chain.export(
            db, log_name, target, since=since, until=until, key=key, trusted=trusted
        ),
    )
    signed = "signed now" if summary["signed_now"] else "a stored checkpoint"
    click.echo(
        f"{summary['log']}: entries {summary['from_seq']}-{summary['to_seq']} "
        f"({summary['entries']}) written to {'stdout' if out == '-' else summary['path']}; "
        f"last entry vouched for by {signed} ({summary['checkpoint']['key_fingerprint']})",
        err=out == "-",
    )


@log_group.command("prune")
@click.option(
    "--segment",
    required=True,
    type=click.Path(dir_okay=False),
    help="An archived segment (from `modelgate log export`) whose entries are deleted.",
)
@_PUBLIC_KEY
def prune_command(segment: str, public_keys: tuple[str, ...]) -> None:
    """Delete from the database the entries an archived segment holds (the oldest ones).

    The segment must verify on its own and start at the oldest entry still in the database;
    its checkpoint is kept, and the remaining log verifies from it. Needs a database user
    that may bypass the append-only triggers (the owner of the tables).
    """
    from modelgate.inventory import chain

    settings = _settings()
    trusted = _trusted(settings, public_keys)
    n = _with_database(settings, lambda db: chain.prune_segment(db, Path(segment), trusted=trusted))
    click.echo(f"pruned {n} entries archived in {segment}")


@log_group.command("keygen")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the private key (PEM, mode 0600; never overwritten).",
)
def keygen_command(out: str) -> None:
    """Write a new Ed25519 signing key and print its public key and fingerprint."""
    from modelgate.inventory import chain

    path = Path(out)
    key = chain.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _fail(f"{path} exists: not overwritten", EXIT_USAGE)
    except OSError as e:
        _fail(f"cannot write {path}: {e.strerror or e}", EXIT_USAGE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(chain.private_key_pem(key))
    public = key.public_key()
    click.echo(f"private key: {path}")
    click.echo(f"public key: {chain.public_key_text(public)}")
    click.echo(f"fingerprint: {chain.fingerprint(public)}")
