"""The recorder's database writes in a process of their own.

A batch of admission events costs the process that writes it several milliseconds of Python
(SQLAlchemy, the chain head, the inventory upserts), and in the webhook's worker that time is
taken under the interpreter lock from the requests being decided: the 1-connection p99 of a
recorded ``/validate`` was about twice the dry run's. :class:`WriterProcess` runs those
transactions in a child interpreter (``python -m modelgate.inventory.writer``), one per
recorder, and :class:`~modelgate.inventory.recorder.Recorder` keeps everything else (queue,
spool, backoff, counts, flush): the child only executes one transaction per call and answers.

The two talk over the child's stdin/stdout: frames of an 8-byte length and a pickle (both
ends are this program; nothing else writes to those pipes). The database URL (and the log
level) is the first frame, never an argument, so no password shows in ``ps``. A child that
dies, hangs past the call's timeout or answers garbage is killed and the call fails as a
connectivity error: the recorder keeps the batch and retries it (writes are idempotent by
event id, so a transaction that committed before the child died is not recorded twice), and
the next call starts a new child. The child ignores SIGINT and SIGTERM (the webhook's worker
decides when it stops) and exits when its stdin closes, also when the worker was killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from modelgate.events import SubmittedEvent
from modelgate.settings import LOG_FORMAT

_HEADER = struct.Struct("!Q")
#: the child's scheduling niceness: on a busy node the reviews' threads (and OPA) get the CPU
#: first; the writer needs throughput, not latency (a batch only grows while it waits)
NICE = 10
#: what a new child may take, on top of the call's timeout, to start (imports, first connect)
STARTUP_SECONDS = 30.0
#: the largest frame either side accepts (a batch of a few hundred events is well under it)
MAX_FRAME = 256 * 1024 * 1024


class WriteFailed(Exception):
    """A write in the writer process failed; ``connectivity`` when retrying later may work
    (database down, the child died or hung), ``schema_missing`` when the tables are not
    there."""

    def __init__(self, message: str, *, connectivity: bool, schema_missing: bool = False):
        super().__init__(message)
        self.connectivity = connectivity
        self.schema_missing = schema_missing


def _write_frame(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError("no answer in time")
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None = None) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    return pickle.loads(_read_exact(fd, size, deadline))


class WriterProcess:
    """Runs :func:`modelgate.inventory.writes.apply_events` (``apply``) and
    :func:`~modelgate.inventory.writes.write_decision` (``decision``) for one database URL in
    a child process, started on first use and again after a failure. Thread-safe (calls are
    serialized)."""

    def __init__(self, url: str, *, timeout: float = 120.0) -> None:
        self.url = url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()

    @property
    def pid(self) -> int | None:
        """The child's pid while one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def apply(self, items: Sequence[SubmittedEvent]) -> None:
        """Record ``items`` in one transaction (see ``writes.apply_events``)."""
        self._call("apply", list(items))

    def decision(self, item: SubmittedEvent) -> bool:
        """Append the bare decision of ``item``; False when it was recorded already."""
        return bool(self._call("decision", item))

    def close(self, timeout: float = 5.0) -> None:
        """Let the child finish its call and exit (killed after ``timeout``)."""
        if not self._lock.acquire(timeout=timeout):  # a call is still running: cut it off
            proc = self._proc
            if proc is not None:
                proc.kill()
            return
        try:
            self._stop(timeout)
        finally:
            self._lock.release()

    def _call(self, op: str, payload: Any) -> Any:
        with self._lock:
            if self._pid != os.getpid():  # forked: the child belongs to the parent
                self._pid, self._proc = os.getpid(), None
            fresh = self._proc is None or self._proc.poll() is not None
            proc = self._ensure()
            # a new child first imports and connects: that is not the call hanging
            timeout = self.timeout + (STARTUP_SECONDS if fresh else 0.0)
            try:
                assert proc.stdin is not None and proc.stdout is not None
                _write_frame(proc.stdin, (op, payload))
                answer = _read_frame(proc.stdout.fileno(), time.monotonic() + timeout)
            except (OSError, EOFError, TimeoutError, ValueError, pickle.PickleError) as e:
                self._stop(0)
                reason = "did not answer in time" if isinstance(e, TimeoutError) else str(e)
                raise WriteFailed(
                    f"the recorder's writer process failed ({reason}); restarting it",
                    connectivity=True,
                ) from None
        if answer[0] == "ok":
            return answer[1]
        _, message, connectivity, schema_missing = answer
        raise WriteFailed(message, connectivity=connectivity, schema_missing=schema_missing)

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelgate.inventory.writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert proc.stdin is not None
        _write_frame(proc.stdin, (self.url, logging.getLogger().getEffectiveLevel()))
        self._proc = proc
        return proc

    def _stop(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answer(db: Any, op: str, payload: Any) -> tuple[Any, ...]:
    from sqlalchemy import exc

    from modelgate.inventory.db import SchemaMissing, classify, is_connectivity_error, one_line
    from modelgate.inventory.writes import apply_events, write_decision

    try:
        with db.session() as session:
            if op == "apply":
                apply_events(session, payload)
                return ("ok", None)
            if op == "decision":
                return ("ok", write_decision(session, payload, None))
        raise ValueError(f"unknown operation {op!r}")
    except Exception as e:
        schema = isinstance(e, exc.DBAPIError) and isinstance(classify(e, db.url), SchemaMissing)
        return ("error", one_line(e), is_connectivity_error(e), schema)


def main() -> int:
    """The child: read the URL, then answer calls until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICE)
    from modelgate.inventory.db import Database

    fd_in, out = sys.stdin.fileno(), sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the answer pipe
    try:
        url, level = _read_frame(fd_in)
    except EOFError:
        return 0
    logging.basicConfig(level=level, format=LOG_FORMAT)
    db = Database(url)
    try:
        while True:
            try:
                op, payload = _read_frame(fd_in)
            except EOFError:
                return 0
            _write_frame(out, _answer(db, op, payload))
    except BrokenPipeError:
        return 0
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
