"""The spool: admission events kept on disk while the database does not answer.

Append-only JSONL files in a directory; one writer file per recorder, claimed for replay by
renaming (atomic), so several processes (webhook workers, a restarted pod) can share the
directory and none loses or duplicates another's events.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from modelgate.events import SubmittedEvent, event_from_json, event_to_json
from modelgate.inventory import journal

log = logging.getLogger(__name__)

_LIVE_TOKENS: set[str] = set()  # spool tokens of recorders alive in this process
_HOST = socket.gethostname().replace("__", "_") or "localhost"


class Spool:
    """Append-only JSONL files in a directory; one writer file per recorder, claimed for replay
    by renaming (atomic), so several processes can share the directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token = uuid.uuid4().hex[:12]
        self.host = _HOST
        self._lock = threading.Lock()
        self._replay_seq = 0
        _LIVE_TOKENS.add(self.token)

    @property
    def current(self) -> Path:
        return self.dir / f"spool__{_HOST}__{os.getpid()}__{self.token}.jsonl"

    def append(self, items: Iterable[SubmittedEvent], sync: bool = True) -> int:
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

    def dead_letter(self, item: SubmittedEvent, reason: str) -> None:
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

    def claim_journals(self) -> list[Path]:
        """Rename the journal segments of dead processes (and closed recorders) to private
        names for replay (see :mod:`modelgate.inventory.journal`); with this recorder's own
        earlier claims that a replay did not finish. Its own live segments stay."""
        claimed: list[Path] = []
        for path in sorted(self.dir.glob("*.bin")):
            parts = path.stem.split("__")
            if len(parts) < 5 or parts[0] not in (journal.PREFIX, "jreplay"):
                continue
            if parts[3] == self.token:
                if parts[0] == "jreplay":
                    claimed.append(path)
                continue
            if not self._claimable(path, parts[1], parts[2], parts[3]):
                continue
            with self._lock:
                self._replay_seq += 1
                target = self.dir / (
                    f"jreplay__{_HOST}__{os.getpid()}__{self.token}__{self._replay_seq}.bin"
                )
                try:
                    os.rename(path, target)
                except OSError:
                    continue  # another process claimed it first
            claimed.append(target)
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
    def read(path: Path) -> Iterator[SubmittedEvent]:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    yield SubmittedEvent(str(data["event_id"]), event_from_json(data["event"]))
                except (ValueError, KeyError, TypeError) as e:
                    log.error("spool %s line %d is unreadable, skipped: %s", path.name, n, e)

    def close(self) -> None:
        _LIVE_TOKENS.discard(self.token)
