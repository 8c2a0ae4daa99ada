"""The static token file (``MODELGATE_TOKEN_FILE``), like kube-apiserver's
``--token-auth-file``: CSV lines ``token,user,"group1,group2"`` (groups optional; ``#``
comments and blank lines ignored).

Tokens are kept only as SHA-256 digests and compared in constant time against every entry.
The file is re-read when its modification time or size changes, so tokens can be added or
revoked without a restart; a file that cannot be read keeps the last good tokens (and is
logged), a missing file accepts no token.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from modelgate.identity.base import Identity

log = logging.getLogger("modelgate.identity")


class TokenFileError(ValueError):
    """A line of the token file is malformed (the message names the line, never a token)."""


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    user: str
    groups: tuple[str, ...]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_token_file(text: str, source: str = "token file") -> list[_Entry]:
    entries: list[_Entry] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise TokenFileError(f'{source} line {n}: expected token,user[,"group1,group2"]')
        groups = tuple(g.strip() for g in ",".join(row[2:]).split(",") if g.strip())
        entries.append(_Entry(_digest(row[0].strip()), row[1].strip(), groups))
    return entries


class TokenFileAuthenticator:
    """Bearer tokens listed in a CSV file."""

    name = "token-file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: list[_Entry] = []

    def _current(self) -> list[_Entry]:
        try:
            st = os.stat(self.path)
        except OSError:
            if self._stamp is not None:
                log.warning("token file %s is gone: no static token is accepted", self.path)
            with self._lock:
                self._stamp, self._entries = None, []
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return self._entries
        with self._lock:
            if stamp != self._stamp:
                try:
                    entries = parse_token_file(
                        self.path.read_text(encoding="utf-8"), str(self.path)
                    )
                except (OSError, UnicodeDecodeError, TokenFileError) as e:
                    log.error("token file %s not reloaded, the last one stays: %s", self.path, e)
                    return self._entries
                self._entries, self._stamp = entries, stamp
                log.info("token file %s loaded (%d tokens)", self.path, len(entries))
        return self._entries

    def authenticate(self, token: str) -> Identity | None:
        digest = _digest(token)
        found: _Entry | None = None
        for entry in self._current():  # every entry, so the time does not tell which matched
            if hmac.compare_digest(entry.digest, digest) and found is None:
                found = entry
        if found is None:
            return None
        email = found.user if "@" in found.user else None
        return Identity(user=found.user, groups=found.groups, email=email, source=self.name)


def write_token_file(path: Path, rows: list[tuple[str, str, list[str]]]) -> Path:
    """Write a token file (the demo's, tests'): one ``token,user,"groups"`` line per row,
    readable by its owner only."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for token, user, groups in rows:
        writer.writerow([token, user, ",".join(groups)])
    path.write_text(out.getvalue(), encoding="utf-8")
    path.chmod(0o600)
    return path
