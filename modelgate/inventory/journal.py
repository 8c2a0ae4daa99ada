"""The recorder's journal: every queued admission event on disk before the webhook answers.

The recorder queues a decision in memory and commits it with the next batch (tens of
milliseconds later). A process killed in between (SIGKILL, the kernel's OOM killer, a node
drain that does not wait) would lose what was queued although the API server was told the
answer. With a spool directory (``MODELGATE_SPOOL_DIR``) each queued event is also appended
to a journal segment there first, and the segment is deleted once every event in it is in
the database (or in the spool). A process that dies leaves its segments behind; the next
recorder on the directory replays them (idempotent by event id: what was committed already
is skipped).

Segments are files ``journal__<host>__<pid>__<token>__<n>.bin`` of frames (4-byte big-endian
length + pickled :class:`~modelgate.events.SubmittedEvent`: about 40 microseconds per review,
against about 260 for JSON), written with one ``write`` each (no fsync: the page cache
survives the death of the process; a crash of the node itself is covered by the database's
own durability for what was committed and by nothing for the last batch, as before). The
files are created 0600 in the spool directory, which only the webhook's own user writes;
a truncated last frame (the process died in the middle of a write) is skipped.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from modelgate.events import SubmittedEvent

log = logging.getLogger(__name__)

PREFIX = "journal"
#: a segment takes new events for this long (or this many), then the next one starts
SEGMENT_SECONDS = 1.0
SEGMENT_EVENTS = 5_000
_FRAME = struct.Struct(">I")
#: the most one frame may hold when read back (an event is a few KB)
MAX_FRAME_BYTES = 16 * 1024 * 1024


class Journal:
    """Journal segments of one recorder in ``directory`` (see the module doc). Thread-safe."""

    def __init__(self, directory: Path, host: str, token: str) -> None:
        self.dir = directory
        self.host = host
        self.token = token
        self._lock = threading.Lock()
        self._seq = 0
        self._fd: int | None = None
        self._opened = 0.0
        self._count = 0  # events in the current segment
        self._outstanding: dict[int, int] = {}  # segment -> events not yet done
        self._segment_of: dict[str, int] = {}  # event id -> segment

    def path(self, seq: int) -> Path:
        return self.dir / f"{PREFIX}__{self.host}__{os.getpid()}__{self.token}__{seq}.bin"

    def add(self, item: SubmittedEvent) -> None:
        """Append ``item`` (raises :class:`OSError` when the directory is unusable)."""
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _FRAME.pack(len(data)) + data
        with self._lock:
            now = time.monotonic()
            if (
                self._fd is None
                or now - self._opened > SEGMENT_SECONDS
                or self._count >= SEGMENT_EVENTS
            ):
                self._rotate(now)
            assert self._fd is not None
            os.write(self._fd, frame)
            self._count += 1
            self._outstanding[self._seq] = self._outstanding.get(self._seq, 0) + 1
            self._segment_of[item.event_id] = self._seq

    def done(self, items: Iterable[SubmittedEvent]) -> None:
        """``items`` are in the database (or the spool): their segments may go."""
        with self._lock:
            for item in items:
                seq = self._segment_of.pop(item.event_id, None)
                if seq is None:
                    continue  # not journaled (a replay, or the database was down)
                left = self._outstanding[seq] - 1
                self._outstanding[seq] = left
                if left == 0 and (seq != self._seq or self._fd is None):
                    self._remove(seq)

    def pending(self) -> int:
        with self._lock:
            return len(self._segment_of)

    def close(self) -> None:
        """Close the current segment; it is removed when nothing in it is outstanding."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for seq, left in list(self._outstanding.items()):
                if left == 0:
                    self._remove(seq)

    def _rotate(self, now: float) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self._outstanding.get(self._seq) == 0:
                self._remove(self._seq)
        self._seq += 1
        self._fd = os.open(
            self.path(self._seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        self._opened = now
        self._count = 0
        self._outstanding[self._seq] = 0

    def _remove(self, seq: int) -> None:
        self._outstanding.pop(seq, None)
        try:
            self.path(seq).unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not remove journal segment %s: %s", self.path(seq).name, e)


def read(path: Path) -> Iterator[SubmittedEvent]:
    """The events of a journal segment (a truncated or unreadable frame ends it, logged)."""
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset + _FRAME.size <= len(data):
        (size,) = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        if size > MAX_FRAME_BYTES or start + size > len(data):
            log.warning("journal segment %s ends in a partial frame (skipped)", path.name)
            return
        try:
            item = pickle.loads(data[start : start + size])  # our own 0600 file
        except Exception as e:
            log.error(
                "journal segment %s has an unreadable frame, the rest skipped: %s", path.name, e
            )
            return
        if isinstance(item, SubmittedEvent):
            yield item
        offset = start + size
