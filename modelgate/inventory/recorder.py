"""The admission recorder: the webhook hands it every decision; it appends the decision log and
upserts admitted models into the inventory, without blocking the webhook and without losing
records.

- :meth:`Recorder.submit` puts the event on a bounded queue and returns at once; when the queue
  is full the event spills to the spool (a JSONL file in ``settings.spool_dir``) or, without a
  spool, to an in-memory backlog.
- A background writer thread takes batches and writes each batch in one transaction.
- When the database does not answer, the events are kept (in memory, and in the spool when one
  is configured, so a restart does not lose them) and retried with exponential backoff.
- An event the database refuses for its content (retrying will not help) is written as a bare
  decision if possible, else logged and kept in ``deadletter.jsonl`` in the spool.
- Every event carries a recorder-assigned id stored with its decision row, so replaying a spool
  or retrying after an ambiguous failure never duplicates anything.
- Writes are order-tolerant: a replayed older event never overwrites newer metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, cast

from sqlalchemy import delete, exc, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from modelgate.events import AdmissionEvent
from modelgate.inventory import migrate
from modelgate.inventory.db import (
    Database,
    DatabaseUnavailable,
    SchemaMissing,
    classify,
    is_connectivity_error,
    redact,
)
from modelgate.inventory.models import (
    Certification,
    Dataset,
    Decision,
    Deployment,
    Model,
    ModelVersion,
    TrainingRun,
    model_version_datasets,
    training_run_datasets,
)
from modelgate.inventory.parse import (
    ParsedMetadata,
    clean,
    clean_key,
    is_url,
    parse_metadata,
)
from modelgate.settings import Settings
from modelgate.workload import Workload

log = logging.getLogger(__name__)

_LIVE_TOKENS: set[str] = set()  # spool tokens of recorders alive in this process
_HOST = socket.gethostname().replace("__", "_") or "localhost"


@dataclasses.dataclass(frozen=True)
class _Item:
    event_id: str
    event: AdmissionEvent


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


# --- serialisation (spool lines) ------------------------------------------------------------


def event_to_json(event: AdmissionEvent) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    data["time"] = _utc(event.time).isoformat()
    data["violations"] = list(event.violations)
    data["warnings"] = list(event.warnings)
    return data


def event_from_json(data: dict[str, Any]) -> AdmissionEvent:
    names = {f.name for f in dataclasses.fields(AdmissionEvent)}
    values = {k: v for k, v in data.items() if k in names}
    values["time"] = datetime.fromisoformat(str(values["time"]))
    values["violations"] = tuple(str(v) for v in values.get("violations") or ())
    values["warnings"] = tuple(str(v) for v in values.get("warnings") or ())
    workload = values.get("workload")
    values["workload"] = cast(Workload, workload) if isinstance(workload, dict) else None
    return AdmissionEvent(**values)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- writing one event ----------------------------------------------------------------------


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _get_or_create(session: Session, model: Any, keys: dict[str, Any], **defaults: Any) -> Any:
    """The row with ``keys``, inserted if missing; safe against concurrent writers."""
    where = [getattr(model, k) == v for k, v in keys.items()]
    found = session.scalars(select(model).where(*where)).first()
    if found is not None:
        return found
    stmt = _insert(session)(model).values(**keys, **defaults)
    session.execute(stmt.on_conflict_do_nothing(index_elements=list(keys)))
    return session.scalars(
        select(model).where(*where).execution_options(populate_existing=True)
    ).one()


def _link(session: Session, table: Any, **values: int) -> None:
    stmt = _insert(session)(table).values(**values).on_conflict_do_nothing()
    session.execute(stmt)


def _decision_row(item: _Item, md: ParsedMetadata | None) -> dict[str, Any]:
    ev = item.event
    return {
        "event_id": item.event_id,
        "time": _utc(ev.time),
        "uid": clean(ev.uid),
        "user": clean(ev.user),
        "operation": clean(ev.operation),
        "cluster": clean(ev.cluster),
        "kind": clean(ev.kind),
        "namespace": clean(ev.namespace),
        "name": clean(ev.name),
        "allowed": bool(ev.allowed),
        "is_model": bool(ev.is_model),
        "model_name": md.model_name if md else None,
        "model_version": md.version if md and md.model_name else None,
        "violations": [clean(v) for v in ev.violations],
        "warnings": [clean(w) for w in ev.warnings],
        "enforcement": clean(ev.enforcement),
        "bundle_digest": clean(ev.bundle_digest),
        "engine": clean(ev.engine),
        "error": clean(ev.error) if ev.error is not None else None,
        "caller_verified": ev.caller_verified,
    }


def _metadata_of(event: AdmissionEvent) -> ParsedMetadata | None:
    if event.workload is None or not event.is_model:
        return None
    workload: Any = event.workload
    return parse_metadata(workload.get("metadata") if isinstance(workload, dict) else None)


def _insert_decisions(
    session: Session, parsed: Sequence[tuple[_Item, ParsedMetadata | None]]
) -> set[str]:
    """Append the decisions; the ids of those not recorded before (replays are skipped)."""
    if not parsed:
        return set()
    conn = session.connection()
    # one statement executed for many rows (SQLAlchemy's insertmanyvalues): compiled once and
    # cached, where a multi-row .values(rows) was compiled anew for every batch (~2 ms a row)
    stmt = (
        _insert(session)(Decision)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(Decision.event_id)
    )
    rows = [_decision_row(item, md) for item, md in parsed]
    return set(conn.execute(stmt, rows).scalars().all())


def write_decision(session: Session, item: _Item, md: ParsedMetadata | None) -> bool:
    """Append one decision; False when this event was already recorded."""
    return bool(_insert_decisions(session, [(item, md)]))


def apply_event(session: Session, item: _Item) -> None:
    """Record one event in ``session`` (see :func:`apply_events`)."""
    apply_events(session, [item])


def apply_events(session: Session, items: Sequence[_Item]) -> None:
    """Record events in ``session``: every decision, and for admitted models the inventory.

    Work is coalesced per model, version and deployment (one upsert each, newest event wins,
    first/last admitted from the earliest/latest), which gives the same result as applying the
    events one by one in time order, and does it in far fewer statements.
    """
    with session.no_autoflush:
        parsed = [(item, _metadata_of(item.event)) for item in items]
        fresh = _insert_decisions(session, parsed)
        admissions: list[tuple[int, AdmissionEvent, ParsedMetadata]] = []
        deletes: list[AdmissionEvent] = []
        for n, (item, md) in enumerate(parsed):
            if item.event_id not in fresh:
                continue  # a replay of an event already recorded (all of it, atomically)
            ev = item.event
            if ev.records_model and md is not None:
                admissions.append((n, ev, md))
            elif ev.operation == "DELETE" and ev.allowed:
                deletes.append(ev)
        versions = _upsert_models(session, admissions)
        _upsert_deployments(session, admissions, versions)
        for ev in sorted(deletes, key=lambda e: _utc(e.time)):
            _mark_deleted(session, ev)
    session.flush()


_Admission = tuple[int, AdmissionEvent, ParsedMetadata]


def _order(a: _Admission) -> tuple[datetime, int]:
    return (_utc(a[1].time), a[0])


def _group(admissions: Iterable[_Admission], key: Any) -> dict[Any, list[_Admission]]:
    groups: dict[Any, list[_Admission]] = {}
    for a in admissions:
        groups.setdefault(key(a), []).append(a)
    return groups


def _upsert_models(
    session: Session, admissions: list[_Admission]
) -> dict[tuple[str, str], ModelVersion]:
    versions: dict[tuple[str, str], ModelVersion] = {}
    named = [a for a in admissions if a[2].model_name]
    for name, group in _group(named, lambda a: a[2].model_name).items():
        newest, earliest = max(group, key=_order), min(group, key=_order)
        last, first = _utc(newest[1].time), _utc(earliest[1].time)
        model: Model = _get_or_create(
            session, Model, {"name": name}, owner=newest[2].owner, created_at=first, updated_at=last
        )
        if last >= model.updated_at:
            model.owner = newest[2].owner or model.owner
            model.updated_at = last
        model.created_at = min(model.created_at, first)

        for version_name, vgroup in _group(group, lambda a: a[2].version).items():
            newest, earliest = max(vgroup, key=_order), min(vgroup, key=_order)
            last, first = _utc(newest[1].time), _utc(earliest[1].time)
            md = newest[2]
            version: ModelVersion = _get_or_create(
                session,
                ModelVersion,
                {"model_id": model.id, "version": version_name},
                owner=md.owner,
                compliance_status=md.compliance_status,
                risk_tier=md.risk_tier,
                metrics={},
                raw_metadata={},  # "not filled yet": every real admission has a model-name
                first_admitted=first,
                last_admitted=last,
            )
            is_newest = last >= version.last_admitted
            version.first_admitted = min(version.first_admitted, first)
            version.last_admitted = max(version.last_admitted, last)
            if is_newest and version.raw_metadata != md.raw:
                _update_version(session, version, md, last)
            versions[(name, version_name)] = version
    return versions


def _upsert_deployments(
    session: Session,
    admissions: list[_Admission],
    versions: dict[tuple[str, str], ModelVersion],
) -> None:
    for key, group in _group(admissions, lambda a: tuple(_deployment_key(a[1]).items())).items():
        newest, earliest = max(group, key=_order), min(group, key=_order)
        last, first = _utc(newest[1].time), _utc(earliest[1].time)
        ev, md = newest[1], newest[2]
        version = versions.get((md.model_name, md.version)) if md.model_name else None
        images = [clean(i) for i in (_workload_field(ev, "images") or []) if i]
        deployment: Deployment = _get_or_create(
            session, Deployment, dict(key), images=images, first_admitted=first, last_admitted=last
        )
        if deployment.last_admitted is None or last >= deployment.last_admitted:
            deployment.images = images
            deployment.model_version_id = version.id if version is not None else None
            deployment.last_admitted = last
            if deployment.status == "deleted":
                deployment.status = None
        if deployment.first_admitted is None or first < deployment.first_admitted:
            deployment.first_admitted = first


def _workload_field(event: AdmissionEvent, key: str) -> Any:
    workload: Any = event.workload
    return workload.get(key) if isinstance(workload, dict) else None


def _deployment_key(ev: AdmissionEvent) -> dict[str, str]:
    return {
        "cluster": clean_key(ev.cluster) or "default",
        "namespace": clean_key(ev.namespace or _workload_field(ev, "namespace")),
        "kind": clean_key(ev.kind or _workload_field(ev, "kind")),
        "name": clean_key(ev.name or _workload_field(ev, "name")),
    }


def _update_version(
    session: Session, version: ModelVersion, md: ParsedMetadata, when: datetime
) -> None:
    """The newest admission defines the version's metadata, dataset links and certifications."""
    version.owner = md.owner
    version.training_date = md.training_date
    version.training_date_raw = md.training_date_raw
    version.compliance_status = md.compliance_status
    version.risk_tier = md.risk_tier
    version.model_card = md.model_card
    version.metrics = md.metrics
    version.source = md.source
    version.exempt_reason = md.exempt_reason
    version.raw_metadata = md.raw

    datasets: list[Dataset] = [
        _get_or_create(session, Dataset, {"uri": uri}, first_seen=when) for uri in md.datasets
    ]
    run: TrainingRun | None = None
    if md.training_run:
        run = _get_or_create(
            session,
            TrainingRun,
            {"run_ref": md.training_run},
            url=md.training_run if is_url(md.training_run) else None,
            first_seen=when,
        )
        for ds in datasets:
            _link(session, training_run_datasets, training_run_id=run.id, dataset_id=ds.id)
    version.training_run_id = run.id if run is not None else None

    session.execute(
        delete(model_version_datasets).where(
            model_version_datasets.c.model_version_id == version.id
        )
    )
    for ds in datasets:
        _link(session, model_version_datasets, model_version_id=version.id, dataset_id=ds.id)
    session.execute(delete(Certification).where(Certification.model_version_id == version.id))
    for cert in md.certifications:
        session.execute(
            _insert(session)(Certification).values(
                model_version_id=version.id,
                name=cert.name,
                expires=cert.expires,
                expires_raw=cert.expires_raw,
            )
        )
    session.expire(version, ["certifications", "datasets", "training_run"])


def _mark_deleted(session: Session, ev: AdmissionEvent) -> None:
    key = _deployment_key(ev)
    deployment = session.scalars(
        select(Deployment).where(*[getattr(Deployment, k) == v for k, v in key.items()])
    ).first()
    when = _utc(ev.time)
    if deployment is not None and (
        deployment.last_admitted is None or when >= deployment.last_admitted
    ):
        deployment.status = "deleted"
        deployment.last_seen = when


# --- the spool ------------------------------------------------------------------------------


class Spool:
    """Append-only JSONL files in a directory; one writer file per recorder, claimed for replay
    by renaming (atomic), so several processes can share the directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._replay_seq = 0
        _LIVE_TOKENS.add(self.token)

    @property
    def current(self) -> Path:
        return self.dir / f"spool__{_HOST}__{os.getpid()}__{self.token}.jsonl"

    def append(self, items: Iterable[_Item], sync: bool = True) -> int:
        lines = [
            json.dumps({"event_id": i.event_id, "event": event_to_json(i.event)}, default=str)
            + "\n"
            for i in items
        ]
        if not lines:
            return 0
        with self._lock, open(self.current, "a", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        return len(lines)

    def dead_letter(self, item: _Item, reason: str) -> None:
        line = {"event_id": item.event_id, "reason": reason, "event": event_to_json(item.event)}
        with self._lock, open(self.dir / "deadletter.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str) + "\n")

    def claim(self) -> list[tuple[Path, bool]]:
        """Rename every replayable file (own, or left by a dead process) to a private name;
        each with whether it holds this recorder's own events."""
        claimed: list[tuple[Path, bool]] = []
        for path in sorted(self.dir.glob("*.jsonl")):
            parts = path.stem.split("__")
            if len(parts) < 4 or parts[0] not in ("spool", "replay"):
                continue
            if parts[0] == "replay" and parts[3] == self.token:
                # ours, from an earlier unfinished replay
                claimed.append((path, len(parts) > 4 and parts[4].endswith("o")))
                continue
            if not self._claimable(path, parts[1], parts[2], parts[3]):
                continue
            own = parts[0] == "spool" and parts[3] == self.token
            with self._lock:
                self._replay_seq += 1
                target = self.dir / (
                    f"replay__{_HOST}__{os.getpid()}__{self.token}__"
                    f"{self._replay_seq}{'o' if own else 'f'}.jsonl"
                )
                try:
                    os.rename(path, target)
                except OSError:
                    continue  # another process claimed it first
            claimed.append((target, own))
        return claimed

    def _claimable(self, path: Path, host: str, pid_text: str, token: str) -> bool:
        if token == self.token:
            return True
        if token in _LIVE_TOKENS:
            return False  # another recorder of this process
        if host != _HOST:
            try:
                return time.time() - path.stat().st_mtime > 300
            except OSError:
                return False
        try:
            pid = int(pid_text)
        except ValueError:
            return True
        if pid == os.getpid():
            return True  # a closed recorder of this process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def usage(self) -> tuple[int, float]:
        """Bytes in the replayable spool files of the directory (every process's) and the age
        in seconds of the oldest (0 when there is none)."""
        size, oldest = 0, None
        for path in self.dir.glob("*.jsonl"):
            if not path.name.startswith(("spool__", "replay__")):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if st.st_size == 0:
                continue
            size += st.st_size
            oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
        return size, (max(0.0, time.time() - oldest) if oldest is not None else 0.0)

    @staticmethod
    def read(path: Path) -> Iterator[_Item]:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    yield _Item(str(data["event_id"]), event_from_json(data["event"]))
                except (ValueError, KeyError, TypeError) as e:
                    log.error("spool %s line %d is unreadable, skipped: %s", path.name, n, e)

    def close(self) -> None:
        _LIVE_TOKENS.discard(self.token)


# --- the recorder ---------------------------------------------------------------------------


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
    ) -> None:
        settings = settings or Settings.from_env()
        # an empty database gets the schema on first write (`modelgate db upgrade` is the
        # explicit way; the Helm chart runs it as a hook); tried once per recorder
        self.auto_migrate = settings.auto_migrate if auto_migrate is None else auto_migrate
        self._migration_tried = False
        self.db = database or Database(url or settings.database_url)
        spool_path = spool_dir if spool_dir is not None else settings.spool_dir
        self.spool: Spool | None = None
        if spool_path is not None:
            try:
                self.spool = Spool(Path(spool_path))
            except OSError as e:  # keep serving: events are then kept in memory only
                log.error("spool directory %s unusable (%s): no spool", spool_path, e)
        self.batch_size = max(1, batch_size)
        self.max_backlog = max_backlog
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=max(1, queue_size))
        self._backlog: deque[_Item] = deque()
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
            item = _Item(f"{random.getrandbits(128):032x}", event)
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
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self._spill([item], reason="queue full", sync=False)
        except Exception:  # the webhook must never fail because of the inventory
            log.exception("could not queue an admission event")

    def record(self, event: AdmissionEvent) -> None:
        """Write ``event`` synchronously (CLI, tests). Raises :class:`DatabaseUnavailable`."""
        item = _Item(uuid.uuid4().hex, event)
        try:
            self._write([item], count=False)
        except _Unavailable as e:
            raise DatabaseUnavailable(f"could not record the event: {e}") from e.__cause__

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is in the database; False on timeout."""
        deadline = time.monotonic() + timeout
        self._ensure_writer()
        self._wake.set()  # skip the current backoff once
        while True:
            if self._outstanding() <= 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

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
        if self.spool is not None:
            self.spool.close()
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
        self, items: list[_Item], reason: str, keep_in_memory: bool = True, sync: bool = True
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

    def _drain_queue(self, limit: int | None = None) -> list[_Item]:
        out: list[_Item] = []
        while limit is None or len(out) < limit:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def _next_batch(self) -> list[_Item]:
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
        return batch

    def _run(self) -> None:
        backoff = self.initial_backoff
        batch: list[_Item] = []
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
                    _one_line(e),
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
        if not isinstance(cause, exc.DBAPIError):
            return False
        if not isinstance(classify(cause, self.db.url), SchemaMissing):
            return False
        self._migration_tried = True
        try:
            migrate.upgrade(self.db.url)
        except Exception as e2:
            log.error("inventory schema missing and `db upgrade` failed: %s", _one_line(e2))
            return False
        log.info("inventory schema was missing: migrated %s to head", redact(self.db.url))
        return True

    def _keep(self, items: list[_Item]) -> None:
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
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                try:
                    self._write(chunk, count=False)
                except _Unavailable as e:  # the file stays claimed; replay is idempotent
                    raise DatabaseUnavailable(str(e)) from e.__cause__
            path.unlink(missing_ok=True)
            with self._lock:
                if own:
                    self._counts["written"] += len(items)
                    self._spool_pending = max(0, self._spool_pending - len(items))
            if items:
                log.info("replayed %d spooled admission events from %s", len(items), path.name)

    def _write(self, batch: Sequence[_Item], count: bool = True) -> None:
        """Write ``batch`` in one transaction; on a data error, event by event. Raises only
        connectivity errors (the caller keeps the batch and retries)."""
        try:
            with self.db.session() as session:
                apply_events(session, batch)
        except Exception as e:
            if is_connectivity_error(e):
                raise _Unavailable(list(batch), _one_line(e)) from e
            log.warning("batch of %d refused (%s); writing events one by one", len(batch), e)
            for n, item in enumerate(batch):
                try:
                    self._write_one(item, count)
                except Exception as e2:
                    if is_connectivity_error(e2):
                        raise _Unavailable(list(batch[n:]), _one_line(e2)) from e2
                    raise
            return
        if count:
            with self._lock:
                self._counts["written"] += len(batch)

    def _write_one(self, item: _Item, count: bool) -> None:
        try:
            with self.db.session() as session:
                apply_event(session, item)
        except Exception as e:
            if is_connectivity_error(e):
                raise
            reason = _one_line(e)
            log.error("event %s refused (%s); recording the bare decision", item.event_id, reason)
            try:
                with self.db.session() as session:
                    write_decision(session, item, None)
            except Exception as e2:
                if is_connectivity_error(e2):
                    raise
                self._dead_letter(item, f"{reason}; bare decision: {_one_line(e2)}", count)
                return
        if count:
            with self._lock:
                self._counts["written"] += 1

    def _dead_letter(self, item: _Item, reason: str, count: bool) -> None:
        log.error("admission event could not be recorded: %s: %s", reason, _event_line(item))
        if self.spool is not None:
            with contextlib.suppress(OSError):
                self.spool.dead_letter(item, reason)
        if count:
            with self._lock:
                self._counts["failed"] += 1


class _Unavailable(Exception):
    """The database stopped answering while writing; ``remaining`` were not written."""

    def __init__(self, remaining: list[_Item], message: str) -> None:
        super().__init__(message)
        self.remaining = remaining


def _event_line(item: _Item) -> str:
    return json.dumps({"event_id": item.event_id, "event": event_to_json(item.event)}, default=str)


def _one_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__
