"""The recorder's transactions in a writer process of their own (the webhook's recorder):
they run there, on SQLite and real PostgreSQL; a child that dies, hangs or refuses an event
loses nothing and records nothing twice; it keeps no password on its command line, ignores
the signals meant for its worker and ends with it."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from modelgate.events import AdmissionEvent, SubmittedEvent
from modelgate.inventory import migrate
from modelgate.inventory.db import Database
from modelgate.inventory.models import Decision, Deployment
from modelgate.inventory.recorder import Recorder
from modelgate.inventory.writer import WriterProcess
from modelgate.settings import Settings
from tests.fixtures.inventory import T0, EventFactory


def _recorder(url: str, **kwargs: Any) -> Recorder:
    kwargs.setdefault("initial_backoff", 0.05)
    kwargs.setdefault("max_backoff", 0.5)
    kwargs.setdefault("auto_migrate", False)
    return Recorder(Settings(database_url=url), writer_process=True, **kwargs)


def _event_ids(db: Database) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(Decision.event_id)))


def _count(db: Database, model: Any) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_transactions_run_in_the_writer_process(
    db_url: str, db: Database, make_event: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelgate.inventory import recorder as recorder_module

    def not_here(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("written in the webhook's process")

    # what this process would call to write: the child, another interpreter, does not see it
    monkeypatch.setattr(recorder_module, "apply_events", not_here)
    monkeypatch.setattr(recorder_module, "write_decision", not_here)
    rec = _recorder(db_url)
    try:
        for i in range(12):
            rec.submit(make_event(name=f"svc-{i % 3}"))
        assert rec.flush(30), rec.stats()
        assert rec.writer is not None
        child = rec.writer.pid
        assert child is not None and child != os.getpid()
        stats = rec.stats()
        assert (stats["written"], stats["failed"], stats["outstanding"]) == (12, 0, 0)
    finally:
        rec.close()
    assert _count(db, Decision) == 12
    assert _count(db, Deployment) == 3
    assert _wait_gone(child), "close() leaves the writer process running"


def test_a_killed_writer_process_loses_nothing_and_records_nothing_twice(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    rec = _recorder(db_url)
    try:
        for i in range(20):
            rec.submit(make_event(name=f"before-{i}"))
        assert rec.flush(30), rec.stats()
        assert rec.writer is not None and rec.writer.pid is not None
        first = rec.writer.pid
        os.kill(first, signal.SIGKILL)
        assert _wait_gone(first)
        for i in range(20):
            rec.submit(make_event(name=f"after-{i}"))
        assert rec.flush(30), rec.stats()
        assert rec.writer.pid not in (None, first)  # a new child took over
        assert rec.stats()["failed"] == 0
    finally:
        rec.close()
    ids = _event_ids(db)
    assert len(ids) == 40 and len(set(ids)) == 40
    assert _count(db, Deployment) == 40


def test_a_hung_writer_process_is_killed_and_its_batch_written_by_the_next(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    rec = _recorder(db_url)
    assert rec.writer is not None
    try:
        rec.record(make_event(name="warm"))  # the child is up
        hung = rec.writer.pid
        assert hung is not None
        rec.writer.timeout = 1.0
        os.kill(hung, signal.SIGSTOP)
        started = time.monotonic()
        for i in range(5):
            rec.submit(make_event(name=f"while-hung-{i}"))
        assert rec.flush(30), rec.stats()
        assert time.monotonic() - started < 15
        assert _wait_gone(hung), "the hung child was not killed"
        assert rec.writer.pid not in (None, hung)
    finally:
        rec.close()
    ids = _event_ids(db)
    assert len(ids) == 6 and len(set(ids)) == 6


def test_an_event_the_database_refuses_is_dead_lettered_and_the_others_written(
    db_url: str, db: Database, make_event: EventFactory, tmp_path: Path
) -> None:
    # a NaN cannot be hashed into the decision log (canonical JSON refuses it): the child
    # answers a data error, not a connectivity one, for the batch and for the bare decision
    poison = dataclasses.replace(
        make_event(name="poison"), approvals=({"type": "approval", "id": float("nan")},)
    )
    rec = _recorder(db_url, spool_dir=tmp_path / "spool", batch_size=10)
    try:
        for ev in (make_event(name="a"), poison, make_event(name="b")):
            rec.submit(ev)
        assert rec.flush(30), rec.stats()
        stats = rec.stats()
        assert (stats["written"], stats["failed"]) == (2, 1)
        assert rec.healthy()
    finally:
        rec.close()
    assert _count(db, Deployment) == 2
    assert _count(db, Decision) == 2
    (line,) = (tmp_path / "spool" / "deadletter.jsonl").read_text().splitlines()
    kept = json.loads(line)
    assert kept["event"]["name"] == "poison"
    assert "not json compliant" in kept["reason"].lower()  # the child's error, one line


def test_the_writer_process_starts_the_schema_of_an_empty_database(
    empty_url: str, make_event: EventFactory
) -> None:
    rec = _recorder(empty_url, auto_migrate=True)
    try:
        rec.submit(make_event(name="first"))
        assert rec.flush(60), rec.stats()
    finally:
        rec.close()
    assert migrate.current(empty_url) == migrate.head()
    db = Database(empty_url)
    try:
        assert _count(db, Decision) == 1
    finally:
        db.dispose()


def test_the_database_url_is_not_on_the_writer_process_command_line(sqlite_url: str) -> None:
    writer = WriterProcess(sqlite_url)
    event = AdmissionEvent(
        time=T0, uid="u", user="alice", operation="CREATE", cluster="c", kind="Deployment",
        namespace="ns", name="n", allowed=True, is_model=False,
    )  # fmt: skip
    try:
        assert writer.pid is None  # started on the first call
        assert writer.decision(SubmittedEvent("e" * 32, event)) is True
        assert writer.decision(SubmittedEvent("e" * 32, event)) is False  # recorded already
        pid = writer.pid
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-m", b"modelgate.inventory.writer"]
        assert not any(b"sqlite" in part for part in cmdline)
    finally:
        writer.close()
    assert _wait_gone(pid)


_PARENT = textwrap.dedent(
    """
    import sys, time
    from modelgate.inventory.recorder import Recorder
    from modelgate.settings import Settings
    from tests.fixtures.inventory import T0
    from modelgate.events import AdmissionEvent, SubmittedEvent

    rec = Recorder(Settings(database_url=sys.argv[1]), writer_process=True, auto_migrate=False)
    rec.record(AdmissionEvent(time=T0, uid="u", user="a", operation="CREATE", cluster="c",
                              kind="Deployment", namespace="ns", name="n", allowed=True,
                              is_model=False))
    print(rec.writer.pid, flush=True)
    time.sleep(120)
    """
)


def test_the_writer_process_ignores_sigterm_and_ends_with_its_parent(sqlite_url: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, sqlite_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        # SIGTERM is the worker's to act on (it flushes, then closes the child's pipe)
        os.kill(child, signal.SIGTERM)
        time.sleep(0.5)
        assert not _gone(child)
        parent.kill()  # the worker dies without closing anything
        parent.wait(10)
        assert _wait_gone(child), "the writer process outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
