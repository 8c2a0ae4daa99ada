"""The admission recorder: the webhook hands it every decision; it appends the decision log and
upserts admitted models into the inventory, without blocking the webhook and without losing
records.

- :meth:`Recorder.submit` puts the event on a bounded queue and returns at once; when the queue
  is full the event spills to the spool (a JSONL file in ``settings.spool_dir``) or, without a
  spool, to an in-memory backlog.
- A background writer thread takes batches and writes each batch in one transaction. After
  the first event of a batch it waits up to ``batch_seconds`` for more (unless the batch is
  full or a flush is asked for): one transaction per event costs the webhook's worker far more
  CPU than one per batch (a commit, the log head's lock, the inventory upserts), and that CPU
  is taken from the requests being decided.
- With ``writer_process`` (the webhook's recorder) the transactions run in a child process
  (:mod:`modelgate.inventory.writer`), so their Python does not hold the worker's interpreter
  lock; queue, spool, retries and counts stay here. A child that dies or hangs is a
  connectivity failure like a database that does not answer: the batch is kept and retried.
- With a spool, every queued event is first appended to the recorder's journal there
  (:mod:`modelgate.inventory.journal`) and leaves it once committed: a process killed with
  its batch still queued (SIGKILL, out of memory) loses nothing, the next recorder on the
  directory replays what it left.
- When the database does not answer, the events are kept (in memory, and in the spool when one
  is configured, so a restart does not lose them) and retried with exponential backoff.
- An event the database refuses for its content (retrying will not help) is written as a bare
  decision if possible, else logged and kept in ``deadletter.jsonl`` in the spool.
- Every event carries a recorder-assigned id stored with its decision row, so replaying a spool
  or retrying after an ambiguous failure never duplicates anything.
- Writes are order-tolerant: a replayed older event never overwrites newer metadata.

The write model is :mod:`modelgate.inventory.writes`, the spool :mod:`modelgate.inventory.spool`
and the event's JSON form :mod:`modelgate.events`; this module is the background writer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from sqlalchemy import exc

from modelgate.events import AdmissionEvent, SubmittedEvent, event_to_json
from modelgate.inventory import journal, migrate
from modelgate.inventory.db import (
    Database,
    DatabaseUnavailable,
    SchemaMissing,
    classify,
    is_connectivity_error,
    one_line,
    redact,
)
from modelgate.inventory.journal import Journal
from modelgate.inventory.spool import Spool
from modelgate.inventory.writer import WriteFailed, WriterProcess
from modelgate.inventory.writes import apply_events, write_decision
from modelgate.settings import Settings

log = logging.getLogger(__name__)


class RecorderStats(TypedDict):
    submitted: int
    written: int
    spooled: int
    failed: int
    dropped: int
    outstanding: int
    backlog: int
    queued: int
    healthy: bool
    spool_bytes: int  # events waiting in the spool directory (every process's files)
    spool_oldest_seconds: float  # age of the oldest spool file, 0 when there is none


class Recorder:
    """Records admission events in the inventory. Thread-safe; never raises from
    :meth:`submit`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        database: Database | None = None,
        url: str | None = None,
        spool_dir: Path | None = None,
        queue_size: int = 10_000,
        batch_size: int = 200,
        max_backlog: int = 1_000_000,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        auto_migrate: bool | None = None,
        replay_seconds: float = 1.0,
        batch_seconds: float = 0.05,
        writer_process: bool = False,
    ) -> None:
        settings = settings or Settings.from_env()
        # an empty database gets the schema on first write (`modelgate db upgrade` is the
        # explicit way; the Helm chart runs it as a hook); tried once per recorder
        self.auto_migrate = settings.auto_migrate if auto_migrate is None else auto_migrate
        self._migration_tried = False
        self.db = database or Database(url or settings.database_url)
        #: the transactions run in a child process (see :mod:`modelgate.inventory.writer`)
        self.writer = WriterProcess(self.db.url) if writer_process else None
        spool_path = spool_dir if spool_dir is not None else settings.spool_dir
        self.spool: Spool | None = None
        if spool_path is not None:
            try:
                self.spool = Spool(Path(spool_path))
            except OSError as e:  # keep serving: events are then kept in memory only
                log.error("spool directory %s unusable (%s): no spool", spool_path, e)
        #: queued events on disk until committed (a killed process loses none of them)
        self.journal = (
            Journal(self.spool.dir, self.spool.host, self.spool.token)
            if self.spool is not None
            else None
        )
        self._journal_failing = False
        self.batch_size = max(1, batch_size)
        #: how long the writer waits for a batch to fill after its first event
        self.batch_seconds = max(0.0, batch_seconds)
        self._flushing = threading.Event()
        self.max_backlog = max_backlog
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._queue: queue.Queue[SubmittedEvent] = queue.Queue(maxsize=max(1, queue_size))
        self._backlog: deque[SubmittedEvent] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._healthy = True
        self._spool_pending = 0  # own events sitting in spool files
        self._counts = {"submitted": 0, "written": 0, "spooled": 0, "failed": 0, "dropped": 0}
        #: the spool is replayed at start and then at least this often, traffic or not
        self.replay_seconds = replay_seconds
        self._next_replay = 0.0
        if self.spool is not None:
            self._ensure_writer()  # replay what an earlier process left, without waiting

    # -- the webhook side --------------------------------------------------------------------

    def submit(self, event: AdmissionEvent) -> None:
        """Queue ``event`` for writing; returns immediately and never raises."""
        try:
            # 128 random bits from the (per-process, reseeded after fork) Mersenne Twister:
            # uuid4's os.urandom cost ~0.15 ms per review on the request path
            item = SubmittedEvent(f"{random.getrandbits(128):032x}", event)
            with self._lock:
                self._counts["submitted"] += 1
            if self._closed:
                self._spill([item], reason="recorder closed")
                return
            if self.spool is not None and not self._healthy:
                # the database is down: straight to the spool, not to memory, so a process
                # killed during the outage loses nothing it admitted
                self._spill([item], reason="database unavailable", sync=False)
                return
            self._ensure_writer()
            if self.journal is not None:
                self._journal(item)
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self._spill([item], reason="queue full", sync=False)
        except Exception:  # the webhook must never fail because of the inventory
            log.exception("could not queue an admission event")

    def _journal(self, item: SubmittedEvent) -> None:
        assert self.journal is not None
        try:
            self.journal.add(item)
        except OSError as e:  # still queued: recorded unless the process dies first
            if not self._journal_failing:
                log.error("cannot write the recorder's journal in %s: %s", self.journal.dir, e)
            self._journal_failing = True
        else:
            self._journal_failing = False

    def record(self, event: AdmissionEvent) -> None:
        """Write ``event`` synchronously (CLI, tests). Raises :class:`DatabaseUnavailable`."""
        item = SubmittedEvent(uuid.uuid4().hex, event)
        try:
            self._write([item], count=False)
        except _Unavailable as e:
            raise DatabaseUnavailable(f"could not record the event: {e}") from e.__cause__

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is in the database; False on timeout."""
        deadline = time.monotonic() + timeout
        self._ensure_writer()
        self._wake.set()  # skip the current backoff once
        self._flushing.set()  # and the wait for a batch to fill
        try:
            while True:
                if self._outstanding() <= 0:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)
        finally:
            self._flushing.clear()

    def close(self, timeout: float = 10.0) -> None:
        """Flush (up to ``timeout``), stop the writer, keep what is left in the spool."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=max(1.0, timeout))
            if self._thread.is_alive():
                log.warning("the recorder's writer is still busy; its current batch may be late")
        left = self._drain_queue()
        with self._lock:
            left = list(self._backlog) + left
            self._backlog.clear()
        if left:
            self._spill(left, reason="recorder closed", keep_in_memory=False)
        if self.journal is not None:
            self.journal.close()
        if self.spool is not None:
            self.spool.close()
        if self.writer is not None:
            self.writer.close()
        self.db.dispose()

    # -- readiness ---------------------------------------------------------------------------

    def ping(self) -> bool:
        """Whether the database answers."""
        return self.db.ping()

    def healthy(self) -> bool:
        """Readiness: the database answers."""
        ok = self.ping()
        if ok:
            self._wake.set()  # retry now instead of waiting out the backoff
        return ok

    def stats(self) -> RecorderStats:
        with self._lock:
            counts = dict(self._counts)
            backlog = len(self._backlog)
        spool_bytes, spool_age = self.spool.usage() if self.spool is not None else (0, 0.0)
        return RecorderStats(
            submitted=counts["submitted"],
            written=counts["written"],
            spooled=counts["spooled"],
            failed=counts["failed"],
            dropped=counts["dropped"],
            outstanding=self._outstanding(),
            backlog=backlog,
            queued=self._queue.qsize(),
            healthy=self._healthy,
            spool_bytes=spool_bytes,
            spool_oldest_seconds=spool_age,
        )

    # -- internals ---------------------------------------------------------------------------

    def _outstanding(self) -> int:
        with self._lock:
            c = self._counts
            return c["submitted"] - c["written"] - c["failed"] - c["dropped"]

    def _ensure_writer(self) -> None:
        if self._closed:
            return
        with self._lock:
            if self._pid != os.getpid():  # forked (e.g. gunicorn --preload): fresh state
                self._pid = os.getpid()
                self.db.engine.dispose(close=False)
                self._thread = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="modelgate-recorder", daemon=True
                )
                self._thread.start()

    def _spill(
        self,
        items: list[SubmittedEvent],
        reason: str,
        keep_in_memory: bool = True,
        sync: bool = True,
    ) -> None:
        """Keep ``items`` for later: in the spool when configured, else in memory."""
        if self.spool is not None:
            try:
                n = self.spool.append(items, sync=sync)
            except OSError as e:
                log.error(
                    "cannot write the spool %s (%s): keeping events in memory", self.spool.dir, e
                )
            else:
                with self._lock:
                    self._counts["spooled"] += n
                    self._spool_pending += n
                if self.journal is not None:
                    self.journal.done(items)  # kept in the spool now
                return
        if not keep_in_memory:
            with self._lock:
                self._counts["dropped"] += len(items)
            log.error(
                "%d admission events could not be recorded (%s) and no spool is configured"
                " (MODELGATE_SPOOL_DIR); they follow, one per line",
                len(items),
                reason,
            )
            for item in items:  # the log is the last place they can be kept
                log.error("unrecorded admission event: %s", _event_line(item))
            return
        with self._lock:
            room = self.max_backlog - len(self._backlog)
            kept, lost = items[: max(room, 0)], items[max(room, 0) :]
            self._backlog.extend(kept)
            self._counts["dropped"] += len(lost)
        if lost:
            log.error("backlog full: %d admission events dropped (%s)", len(lost), reason)

    def _drain_queue(self, limit: int | None = None) -> list[SubmittedEvent]:
        out: list[SubmittedEvent] = []
        while limit is None or len(out) < limit:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def _next_batch(self) -> list[SubmittedEvent]:
        with self._lock:
            batch = [
                self._backlog.popleft() for _ in range(min(len(self._backlog), self.batch_size))
            ]
        if len(batch) < self.batch_size:
            if not batch:
                try:
                    batch.append(self._queue.get(timeout=0.2))
                except queue.Empty:
                    return batch
            batch.extend(self._drain_queue(self.batch_size - len(batch)))
            self._fill(batch)
        return batch

    def _fill(self, batch: list[SubmittedEvent]) -> None:
        """Wait up to ``batch_seconds`` for ``batch`` to fill (see the module doc)."""
        deadline = time.monotonic() + self.batch_seconds
        while len(batch) < self.batch_size:
            if self._flushing.is_set() or self._stop.is_set():
                return
            remaining = min(deadline - time.monotonic(), 0.01)  # re-check flush requests
            if remaining <= 0:
                return
            with contextlib.suppress(queue.Empty):
                batch.append(self._queue.get(timeout=remaining))
                batch.extend(self._drain_queue(self.batch_size - len(batch)))

    def _run(self) -> None:
        backoff = self.initial_backoff
        batch: list[SubmittedEvent] = []
        while not self._stop.is_set():
            try:
                batch = self._next_batch()
                if batch:
                    self._write(batch)
                batch = []
                if time.monotonic() >= self._next_replay:  # at start, then on a timer
                    self._replay_spool()
                    self._next_replay = time.monotonic() + self.replay_seconds
                self._healthy = True
                backoff = self.initial_backoff
            except Exception as e:
                if self._migrate_if_schema_missing(e):
                    self._keep(e.remaining if isinstance(e, _Unavailable) else batch)
                    continue
                self._healthy = False
                if isinstance(e, _Unavailable):
                    self._keep(e.remaining)  # what was written is counted already
                elif batch:
                    self._keep(batch)
                # hold everything else too, so a full queue never blocks nor loses anything
                self._keep(self._drain_queue())
                log.warning(
                    "inventory database unavailable (%s); %d events waiting, retry in %.1fs",
                    one_line(e),
                    self._outstanding(),
                    backoff,
                )
                self._wake.clear()
                self._wake.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                batch = []

    def _migrate_if_schema_missing(self, error: Exception) -> bool:
        """Create the schema (``upgrade head``) when the tables are missing. True if it did."""
        if not self.auto_migrate or self._migration_tried:
            return False
        cause = error.__cause__ if isinstance(error, _Unavailable) else error
        if isinstance(cause, WriteFailed):
            if not cause.schema_missing:
                return False
        elif not isinstance(cause, exc.DBAPIError) or not isinstance(
            classify(cause, self.db.url), SchemaMissing
        ):
            return False
        self._migration_tried = True
        try:
            migrate.upgrade(self.db.url)
        except Exception as e2:
            log.error("inventory schema missing and `db upgrade` failed: %s", one_line(e2))
            return False
        log.info("inventory schema was missing: migrated %s to head", redact(self.db.url))
        return True

    def _keep(self, items: list[SubmittedEvent]) -> None:
        if not items:
            return
        if self.spool is not None:
            self._spill(items, reason="database unavailable")
        else:
            with self._lock:
                self._backlog.extendleft(reversed(items))

    def _replay_spool(self) -> None:
        if self.spool is None:
            return
        for path, own in self.spool.claim():
            items = list(Spool.read(path))
            self._replay(items, path)
            with self._lock:
                if own:
                    self._counts["written"] += len(items)
                    self._spool_pending = max(0, self._spool_pending - len(items))
            if items:
                log.info("replayed %d spooled admission events from %s", len(items), path.name)
        for path in self.spool.claim_journals():
            items = list(journal.read(path))
            self._replay(items, path)
            if items:
                log.info(
                    "replayed the journal of a stopped process (%s): %d events, those not "
                    "recorded yet were written",
                    path.name,
                    len(items),
                )

    def _replay(self, items: list[SubmittedEvent], path: Path) -> None:
        """Write the events of a claimed spool file or journal segment, then remove it; when
        the database does not answer it stays claimed (replay is idempotent by event id)."""
        for start in range(0, len(items), self.batch_size):
            try:
                self._write(items[start : start + self.batch_size], count=False)
            except _Unavailable as e:
                raise DatabaseUnavailable(str(e)) from e.__cause__
        path.unlink(missing_ok=True)

    def _write(self, batch: Sequence[SubmittedEvent], count: bool = True) -> None:
        """Write ``batch`` in one transaction; on a data error, event by event. Raises only
        connectivity errors (the caller keeps the batch and retries)."""
        try:
            self._apply(batch)
        except Exception as e:
            if _connectivity(e):
                raise _Unavailable(list(batch), one_line(e)) from e
            log.warning("batch of %d refused (%s); writing events one by one", len(batch), e)
            for n, item in enumerate(batch):
                try:
                    self._write_one(item, count)
                except Exception as e2:
                    if _connectivity(e2):
                        if self.journal is not None:
                            self.journal.done(batch[:n])
                        raise _Unavailable(list(batch[n:]), one_line(e2)) from e2
                    raise
            if self.journal is not None:
                self.journal.done(batch)
            return
        if count:
            with self._lock:
                self._counts["written"] += len(batch)
        if self.journal is not None:
            self.journal.done(batch)

    def _write_one(self, item: SubmittedEvent, count: bool) -> None:
        try:
            self._apply([item])
        except Exception as e:
            if _connectivity(e):
                raise
            reason = one_line(e)
            log.error("event %s refused (%s); recording the bare decision", item.event_id, reason)
            try:
                self._bare_decision(item)
            except Exception as e2:
                if _connectivity(e2):
                    raise
                self._dead_letter(item, f"{reason}; bare decision: {one_line(e2)}", count)
                return
        if count:
            with self._lock:
                self._counts["written"] += 1

    def _apply(self, items: Sequence[SubmittedEvent]) -> None:
        """One transaction: ``writes.apply_events``, here or in the writer process."""
        if self.writer is not None:
            self.writer.apply(items)
            return
        with self.db.session() as session:
            apply_events(session, items)

    def _bare_decision(self, item: SubmittedEvent) -> None:
        if self.writer is not None:
            self.writer.decision(item)
            return
        with self.db.session() as session:
            write_decision(session, item, None)

    def _dead_letter(self, item: SubmittedEvent, reason: str, count: bool) -> None:
        log.error("admission event could not be recorded: %s: %s", reason, _event_line(item))
        if self.spool is not None:
            with contextlib.suppress(OSError):
                self.spool.dead_letter(item, reason)
        if count:
            with self._lock:
                self._counts["failed"] += 1


class _Unavailable(Exception):
    """The database stopped answering while writing; ``remaining`` were not written."""

    def __init__(self, remaining: list[SubmittedEvent], message: str) -> None:
        super().__init__(message)
        self.remaining = remaining


def _connectivity(error: BaseException) -> bool:
    """Whether retrying later may write it (database or writer process unavailable)."""
    if isinstance(error, WriteFailed):
        return error.connectivity
    return is_connectivity_error(error)


def _event_line(item: SubmittedEvent) -> str:
    return json.dumps({"event_id": item.event_id, "event": event_to_json(item.event)}, default=str)
