"""Tamper evidence for the inventory's append-only logs: hash chains and signed checkpoints.

Every entry of a chained log (a table with the :class:`~modelgate.inventory.models.ChainedEntry`
columns, registered in :data:`LOGS`) stores

- ``seq``: its position, 1, 2, 3, ... without gaps;
- ``prev_hash``: the ``entry_hash`` of the entry before it (for the first entry, the log's
  genesis hash :func:`genesis`, the SHA-256 of ``"modelgate log chain\\n" + log name``);
- ``entry_hash``: ``SHA-256(prev_hash + "\\n" + canonical content)``, lower-case hex.

**Canonical content** (:func:`canonical`): a JSON object of every column of the entry except
the surrogate ``id`` and the three chain columns, keyed by column name, where

- a column whose value is NULL is left out (so a nullable column added later by a migration
  leaves the hashes of older entries valid);
- keys are sorted, separators are ``,`` and ``:`` with no whitespace, text is UTF-8 (not
  ``\\u`` escaped);
- timestamps are UTC, written ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fraction digits),
  calendar dates ``YYYY-MM-DD``; booleans, numbers, strings, lists and objects (JSON columns)
  are their JSON values.

Because each hash covers the previous one, changing, removing, adding or moving any entry
breaks every later link; ``seq`` itself is not hashed (the links fix the order), so an entry
that was moved, or skipped by its successor's link, can be named as such.

**Writers** append under the chain head's lock (:func:`lock_head`: ``SELECT ... FOR UPDATE``
of the ``log_heads`` row on PostgreSQL, the database write lock on SQLite), assign sequence
numbers and hashes (:func:`link`) and store the new head (:func:`save_head`) in the same
transaction, so concurrent webhook replicas never fork the chain.

**Checkpoints** (:func:`sign_checkpoint`) are Ed25519 signatures over
:func:`checkpoint_payload` — the log, the head's sequence number and hash, and the signing
time — stored in ``log_checkpoints``. :func:`verify_log` streams a log in ``seq`` order
(constant memory), recomputes every hash, follows every link, and checks every checkpoint and
the stored head; it names each edited, deleted, inserted or reordered entry.

**Segments** (:func:`export_segment`, :func:`verify_segment`) are JSON Lines files holding a
contiguous run of entries, the hash they start from and a signed checkpoint of their last
entry, so an archived segment is verifiable on its own. Pruning (:func:`prune`) deletes the
entries an intact, signed segment holds; what remains starts at the entry after that
checkpoint, and verification anchors on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import JSON, Column, Table, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from modelgate.inventory.base import utcnow
from modelgate.inventory.db import Database, errors
from modelgate.inventory.models import ApprovalLogEntry, Decision, LogCheckpoint, LogHead

log = logging.getLogger(__name__)

#: the chain columns (never part of the canonical content), with the surrogate id
CHAIN_COLUMNS = ("seq", "prev_hash", "entry_hash")
EXCLUDED_COLUMNS = ("id", *CHAIN_COLUMNS)

SEGMENT_FORMAT = "modelgate.log-segment/v1"
CHECKPOINT_CONTEXT = b"modelgate log checkpoint\n"

#: at most this many problems are listed per log (the rest are counted)
MAX_PROBLEMS = 1000
#: how far apart two moved entries can be and still be named "reordered"
WINDOW = 10_000
STREAM_BATCH = 5_000


class ChainError(Exception):
    """The chain cannot be written, read or verified (a bad segment, key or argument)."""


class SigningKeyError(ChainError):
    """The signing or public key file cannot be used."""


@dataclass(frozen=True)
class ChainedLog:
    """An append-only table whose entries form a hash chain."""

    name: str
    table: Table
    #: the column ``log export --since/--until`` selects on
    time_column: str

    @property
    def logged_columns(self) -> list[Column[Any]]:
        """The columns of the canonical content: all but ``id`` and the chain columns."""
        return [c for c in self.table.columns if c.name not in EXCLUDED_COLUMNS]


#: every chained log, by name, in the order commands and reports list them: the decision log
#: (``writes._insert_decisions``) and the approval log (``writes.append_log``)
LOGS: dict[str, ChainedLog] = {
    "decisions": ChainedLog("decisions", Decision.__table__, "time"),  # type: ignore[arg-type]
    "approval_log": ChainedLog(
        "approval_log",
        ApprovalLogEntry.__table__,  # type: ignore[arg-type]
        "time",
    ),
}


def get_log(name: str) -> ChainedLog:
    try:
        return LOGS[name]
    except KeyError as e:
        raise ChainError(f"unknown log {name!r} (one of {', '.join(sorted(LOGS))})") from e


# --------------------------------------------------------------------------- canonical form


def genesis(log_name: str) -> str:
    """The ``prev_hash`` of a log's first entry."""
    return hashlib.sha256(b"modelgate log chain\n" + log_name.encode("utf-8")).hexdigest()


def _timestamp(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    return value


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The canonical content of an entry (see the module docstring): sorted keys, no
    whitespace, UTF-8, UTC timestamps in one format, NULL fields left out."""
    content = {k: _canonical_value(v) for k, v in fields.items() if v is not None}
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_hash(prev_hash: str, content: bytes) -> str:
    """SHA-256 (hex) of the previous hash, a newline and the canonical content."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()


# --------------------------------------------------------------------------- writing


@dataclass
class Head:
    """The newest entry of a log (``seq`` 0 and the genesis hash for an empty log)."""

    log: str
    seq: int
    hash: str


#: the heads as a Core table: these statements run once per recorded batch, and the ORM's
#: statement path (entity compilation, bulk-update session sync) cost more than they do
_HEADS: Table = LogHead.__table__  # type: ignore[assignment]


def lock_head(session: Session, chained: ChainedLog) -> Head:
    """Lock the log's head for this transaction and return it. Other writers wait until this
    transaction ends (PostgreSQL: ``SELECT ... FOR UPDATE`` of the ``log_heads`` row; SQLite:
    a no-op UPDATE takes the database's write lock first)."""
    name = chained.name
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        conn.execute(update(_HEADS).where(_HEADS.c.log == name).values(seq=_HEADS.c.seq))
    stmt = select(_HEADS.c.seq, _HEADS.c.entry_hash).where(_HEADS.c.log == name).with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        _create_head(session, chained)
        row = conn.execute(stmt).one()
    return Head(name, int(row[0]), str(row[1]))


def _create_head(session: Session, chained: ChainedLog) -> None:
    """The head row of a log that has none: from its newest entry (a log whose head row was
    lost keeps its chain), or the genesis for an empty log."""
    table = chained.table
    last = session.execute(
        select(table.c.seq, table.c.entry_hash).order_by(table.c.seq.desc()).limit(1)
    ).first()
    seq, hash_ = (int(last[0]), str(last[1])) if last is not None else (0, genesis(chained.name))
    if last is not None:
        log.warning("log %s had no head row: rebuilt from entry %d", chained.name, seq)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(LogHead).on_conflict_do_nothing(index_elements=["log"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(LogHead).on_conflict_do_nothing(index_elements=["log"])
    session.execute(stmt.values(log=chained.name, seq=seq, entry_hash=hash_, updated_at=utcnow()))


def content_of(chained: ChainedLog, row: Mapping[str, Any]) -> dict[str, Any]:
    """The logged fields of a row about to be inserted. A column the row leaves out is NULL
    (left out of the hash); leaving out a column that has a default is a programming error,
    since the stored value would then differ from the hashed one."""
    fields: dict[str, Any] = {}
    for column in chained.logged_columns:
        if column.name in row:
            fields[column.name] = row[column.name]
        elif column.default is not None or column.server_default is not None:
            raise ChainError(
                f"{chained.name}: column {column.name!r} has a default; "
                "give it a value so the stored entry is the hashed one"
            )
    return fields


def link(chained: ChainedLog, head: Head, rows: Sequence[dict[str, Any]]) -> None:
    """Give ``rows`` (in log order) their ``seq``, ``prev_hash`` and ``entry_hash``, advancing
    ``head``. Call between :func:`lock_head` and :func:`save_head` in one transaction."""
    for row in rows:
        content = canonical(content_of(chained, row))
        head.seq += 1
        row["seq"] = head.seq
        row["prev_hash"] = head.hash
        row["entry_hash"] = head.hash = entry_hash(head.hash, content)


def save_head(session: Session, head: Head) -> None:
    session.connection().execute(
        update(_HEADS)
        .where(_HEADS.c.log == head.log)
        .values(seq=head.seq, entry_hash=head.hash, updated_at=utcnow())
    )


def read_head(connection: Connection, chained: ChainedLog) -> Head | None:
    row = connection.execute(
        select(LogHead.seq, LogHead.entry_hash).where(LogHead.log == chained.name)
    ).first()
    return Head(chained.name, int(row[0]), str(row[1])) if row is not None else None


# --------------------------------------------------------------------------- keys


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``SHA256:`` and the hex SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The raw public key, base64 (how checkpoints and reports print it)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(value: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"not a base64 Ed25519 public key: {e}") from e


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM (what ``openssl genpkey -algorithm ed25519`` and Helm's
    ``genPrivateKey "ed25519"`` write)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted Ed25519 private key, PEM (PKCS#8) or raw 32 bytes / base64 of them.
    Errors never include the key material."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"cannot read the signing key {path}: {e.strerror or e}") from e
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            raw = data if len(data) == 32 else base64.b64decode(data.strip(), validate=True)
            key = Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(
            f"the signing key {path} is not an unencrypted Ed25519 private key"
        ) from e
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"the signing key {path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key: PEM (SubjectPublicKeyInfo), base64 of the raw 32 bytes (as the
    report prints it), or a private key file (its public half)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"cannot read the public key {path}: {e.strerror or e}") from e
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"the public key {path} is not an Ed25519 public key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"the public key {path} is not an Ed25519 key")
    return key


# --------------------------------------------------------------------------- checkpoints


class CheckpointRecord(TypedDict):
    log: str
    seq: int
    entry_hash: str
    signed_at: datetime
    public_key: str  # raw Ed25519 public key, base64
    key_fingerprint: str
    signature: str  # base64


def checkpoint_payload(log_name: str, seq: int, hash_: str, signed_at: datetime) -> bytes:
    """What a checkpoint signs: ``"modelgate log checkpoint\\n"`` and the canonical JSON of
    ``{"hash", "log", "seq", "signed_at"}``."""
    return CHECKPOINT_CONTEXT + canonical(
        {"log": log_name, "seq": seq, "hash": hash_, "signed_at": signed_at}
    )


def sign(
    key: Ed25519PrivateKey, log_name: str, seq: int, hash_: str, signed_at: datetime
) -> CheckpointRecord:
    """A checkpoint of entry ``seq`` (hash ``hash_``) of ``log_name`` signed with ``key``."""
    signed_at = signed_at.astimezone(UTC)
    signature = key.sign(checkpoint_payload(log_name, seq, hash_, signed_at))
    public = key.public_key()
    return CheckpointRecord(
        log=log_name,
        seq=seq,
        entry_hash=hash_,
        signed_at=signed_at,
        public_key=public_key_text(public),
        key_fingerprint=fingerprint(public),
        signature=base64.b64encode(signature).decode("ascii"),
    )


def signature_valid(cp: Mapping[str, Any]) -> bool:
    """Whether the checkpoint's signature is valid under the public key it names."""
    try:
        public = public_key_from_text(str(cp["public_key"]))
        signature = base64.b64decode(str(cp["signature"]), validate=True)
        signed_at = cp["signed_at"]
        if isinstance(signed_at, str):
            signed_at = datetime.fromisoformat(signed_at.replace("Z", "+00:00"))
        payload = checkpoint_payload(
            str(cp["log"]), int(cp["seq"]), str(cp["entry_hash"]), signed_at
        )
        public.verify(signature, payload)
    except (InvalidSignature, SigningKeyError, ValueError, TypeError, KeyError):
        return False
    return fingerprint(public) == cp.get("key_fingerprint")


def sign_checkpoint(
    session: Session, chained: ChainedLog, key: Ed25519PrivateKey, *, at_seq: int | None = None
) -> CheckpointRecord:
    """Sign the log's current head (or entry ``at_seq``) and store the checkpoint."""
    if at_seq is None:
        head = lock_head(session, chained)
        seq, hash_ = head.seq, head.hash
    else:
        table = chained.table
        found = session.execute(
            select(table.c.entry_hash).where(table.c.seq == at_seq)
        ).scalar_one_or_none()
        if found is None:
            raise ChainError(f"{chained.name} has no entry {at_seq}")
        seq, hash_ = at_seq, str(found)
    cp = sign(key, chained.name, seq, hash_, utcnow())
    session.execute(insert(LogCheckpoint).values(**cp))
    return cp


def _checkpoint_record(row: Any) -> CheckpointRecord:
    signed_at = row.signed_at
    return CheckpointRecord(
        log=row.log,
        seq=int(row.seq),
        entry_hash=row.entry_hash,
        signed_at=signed_at,
        public_key=row.public_key,
        key_fingerprint=row.key_fingerprint,
        signature=row.signature,
    )


def checkpoints(connection: Connection, chained: ChainedLog) -> Iterator[CheckpointRecord]:
    """The log's checkpoints, by sequence number then signing time."""
    t = LogCheckpoint.__table__
    rows = connection.execute(
        select(t)
        .where(t.c.log == chained.name)
        .order_by(t.c.seq, t.c.signed_at, t.c.id)
        .execution_options(yield_per=STREAM_BATCH)
    )
    for row in rows:
        yield _checkpoint_record(row)


def jsonable_checkpoint(cp: CheckpointRecord) -> dict[str, Any]:
    return {**cp, "signed_at": _timestamp(cp["signed_at"])}


# --------------------------------------------------------------------------- verification

ProblemKind = Literal["edited", "deleted", "inserted", "reordered", "broken", "checkpoint"]


class Problem(TypedDict):
    kind: ProblemKind
    seq: int  # the first bad sequence number
    expected: str | None  # the hash the chain expects there
    found: str | None  # the hash found
    message: str


class CheckpointSummary(TypedDict):
    seq: int
    entry_hash: str
    signed_at: str
    key_fingerprint: str
    public_key: str


class LogReport(TypedDict):
    log: str
    intact: bool
    entries: int  # entries checked
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    #: "genesis", "from" (--from SEQ), "checkpoint" (pruned log), "segment"
    anchored_by: str
    checkpoints: int  # checkpoints checked
    latest_checkpoint: CheckpointSummary | None
    key_fingerprints: list[str]  # of the keys that signed the checked checkpoints
    problems: list[Problem]
    problems_total: int


class Row(NamedTuple):
    """One entry as the verifier sees it."""

    seq: int
    prev_hash: str
    entry_hash: str
    content: bytes


@dataclass
class _Pending:
    row: Row
    prev: Row | None  # the entry before it in seq order


@dataclass
class _Verifier:
    """Streaming verification of one chain (rows arrive in ``seq`` order)."""

    log: str
    anchor_seq: int
    anchor_hash: str
    anchored_by: str
    trusted: frozenset[str] | None = None  # key fingerprints; None trusts any valid signature
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    entries: int = 0
    first_seq: int | None = None
    prev: Row | None = None
    prevprev_hash: str | None = None
    #: an entry whose content does not match its hash, until its successor tells whether it
    #: was edited (the successor links to it) or inserted (the successor skips it)
    suspect: _Pending | None = None
    #: (hash, seq) of recent entries (to name moved entries)
    recent: deque[tuple[str, int]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    #: prev_hash of entries whose link is broken -> that entry, until resolved
    unlinked: OrderedDict[str, int] = field(default_factory=OrderedDict)
    reported: set[int] = field(default_factory=set)
    checkpoints_checked: int = 0
    latest_checkpoint: CheckpointRecord | None = None
    fingerprints: set[str] = field(default_factory=set)
    _keys: set[tuple[str, int]] = field(default_factory=set)
    inserted: int = 0  # entries reported inserted (they explain a log longer than its head)
    _checkpoints: Iterator[CheckpointRecord] = field(default_factory=lambda: iter(()))
    _next_cp: CheckpointRecord | None = None

    # -- problems ------------------------------------------------------------------------

    def report(
        self, kind: ProblemKind, seq: int, expected: str | None, found: str | None, message: str
    ) -> None:
        if (kind, seq) in self._keys:
            return  # the same problem seen twice (e.g. by a checkpoint and by the head)
        self._keys.add((kind, seq))
        if kind == "inserted":
            self.inserted += 1
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(
                Problem(kind=kind, seq=seq, expected=expected, found=found, message=message)
            )

    # -- checkpoints ---------------------------------------------------------------------

    def use_checkpoints(self, cps: Iterator[CheckpointRecord]) -> None:
        self._checkpoints = cps
        self._advance_cp()

    def _advance_cp(self) -> None:
        self._next_cp = next(self._checkpoints, None)

    def _check_signature(self, cp: CheckpointRecord) -> None:
        self.checkpoints_checked += 1
        when = _timestamp(cp["signed_at"])
        if not signature_valid(cp):
            self.report(
                "checkpoint",
                cp["seq"],
                None,
                cp["key_fingerprint"],
                f"the checkpoint of entry {cp['seq']} signed at {when} has an invalid signature",
            )
            return
        if self.trusted is not None and cp["key_fingerprint"] not in self.trusted:
            self.report(
                "checkpoint",
                cp["seq"],
                None,
                cp["key_fingerprint"],
                f"the checkpoint of entry {cp['seq']} signed at {when} was signed by "
                f"{cp['key_fingerprint']}, not by the trusted key",
            )
            return
        self.fingerprints.add(cp["key_fingerprint"])
        latest = self.latest_checkpoint
        if latest is None or (cp["seq"], cp["signed_at"]) >= (latest["seq"], latest["signed_at"]):
            self.latest_checkpoint = cp

    def _checkpoints_up_to(self, row: Row | None) -> None:
        """Check the checkpoints of entries up to ``row`` (all remaining ones for None)."""
        while self._next_cp is not None and (row is None or self._next_cp["seq"] <= row.seq):
            cp = self._next_cp
            self._advance_cp()
            if cp["seq"] < self.anchor_seq:
                continue  # before what is verified (--from, pruned)
            when = _timestamp(cp["signed_at"])
            if cp["seq"] == self.anchor_seq:
                self._check_signature(cp)
                if cp["entry_hash"] != self.anchor_hash and self.anchored_by != "checkpoint":
                    self.report(
                        "edited",
                        cp["seq"],
                        cp["entry_hash"],
                        self.anchor_hash,
                        f"the chain starts from hash {self.anchor_hash} but the checkpoint "
                        f"signed at {when} recorded {cp['entry_hash']} for entry {cp['seq']}",
                    )
                continue
            # (a segment's checkpoint is read after its entries: it is the last one's)
            entry = row if row is not None else self.prev
            if entry is not None and cp["seq"] == entry.seq:
                self._check_signature(cp)
                if cp["entry_hash"] != entry.entry_hash:
                    self.report(
                        "edited",
                        entry.seq,
                        cp["entry_hash"],
                        entry.entry_hash,
                        f"entry {entry.seq} does not hold the hash the checkpoint signed at "
                        f"{when} recorded: it was changed after that checkpoint",
                    )
                continue
            # the checkpointed entry is not there
            self._check_signature(cp)
            last = self.prev.seq if self.prev is not None else self.anchor_seq
            if row is None and cp["seq"] > last:
                self.report(
                    "deleted",
                    last + 1,
                    cp["entry_hash"],
                    self.prev.entry_hash if self.prev is not None else None,
                    f"{_entries(last + 1, cp['seq'])} deleted: the log ends at entry "
                    f"{last}, but the checkpoint signed at {when} covers entry {cp['seq']}",
                )
            elif cp["seq"] not in self.reported:
                self.report(
                    "deleted",
                    cp["seq"],
                    cp["entry_hash"],
                    None,
                    f"entry {cp['seq']}, covered by the checkpoint signed at {when}, was deleted",
                )

    # -- entries -------------------------------------------------------------------------

    def _remember(self, row: Row) -> None:
        self.recent.append((row.entry_hash, row.seq))

    def _recent_seq(self, hash_: str) -> int | None:
        """The seq of a recent entry with this hash (only looked up when a link breaks)."""
        for h, seq in reversed(self.recent):
            if h == hash_:
                return seq
        return None

    def _resolve_suspect(self, row: Row | None) -> None:
        """The suspect (content not matching its hash) is inserted when ``row`` links to the
        entry before it, else edited."""
        s = self.suspect
        if s is None:
            return
        self.suspect = None
        before = s.prev.entry_hash if s.prev is not None else self.anchor_hash
        if row is not None and row.prev_hash == before and row.prev_hash != s.row.entry_hash:
            self.report(
                "inserted",
                s.row.seq,
                None,
                s.row.entry_hash,
                f"entry {s.row.seq} was inserted: it is not part of the chain (entry "
                f"{row.seq} links to the entry before it)",
            )
        else:
            self.report(
                "edited",
                s.row.seq,
                s.row.entry_hash,
                entry_hash(s.row.prev_hash, s.row.content),
                f"entry {s.row.seq} was edited: its content no longer matches its hash",
            )
        self.reported.add(s.row.seq)

    def add(self, row: Row) -> None:
        prev = self.prev
        # the fast path: the next entry, linked to the previous one, its hash right
        if (
            prev is not None
            and row.seq == prev.seq + 1
            and row.prev_hash == prev.entry_hash
            and self.suspect is None
            and not self.unlinked
            and (self._next_cp is None or self._next_cp["seq"] > row.seq)
            and entry_hash(row.prev_hash, row.content) == row.entry_hash
        ):
            self.entries += 1
            self.recent.append((row.entry_hash, row.seq))
            self.prevprev_hash = prev.entry_hash
            self.prev = row
            return
        self.entries += 1
        if self.first_seq is None:
            self.first_seq = row.seq
        self._checkpoints_up_to(row)
        expected_seq = (prev.seq if prev is not None else self.anchor_seq) + 1
        expected_prev = prev.entry_hash if prev is not None else self.anchor_hash
        self_ok = entry_hash(row.prev_hash, row.content) == row.entry_hash

        if self.suspect is not None:
            suspect = self.suspect
            self._resolve_suspect(row)
            if row.prev_hash == (
                suspect.prev.entry_hash if suspect.prev is not None else self.anchor_hash
            ):
                expected_prev = row.prev_hash  # the inserted entry is out of the chain

        moved_from = self.unlinked.pop(row.entry_hash, None)
        if row.seq > expected_seq:
            self.report(
                "deleted",
                expected_seq,
                expected_prev,
                row.prev_hash,
                f"{_entries(expected_seq, row.seq - 1)} deleted",
            )
            self.reported.update(range(expected_seq, min(row.seq, expected_seq + MAX_PROBLEMS)))
        elif moved_from is not None:
            self.report(
                "reordered",
                min(moved_from, row.seq),
                row.entry_hash,
                None,
                f"entries {moved_from} and {row.seq} were reordered: entry {moved_from} is "
                f"chained after entry {row.seq}, which comes later",
            )
            self.reported.update((moved_from, row.seq))
        elif not self_ok:
            self.suspect = _Pending(row, prev)
        elif row.prev_hash != expected_prev and row.seq not in self.reported:
            if self.prevprev_hash is not None and row.prev_hash == self.prevprev_hash:
                assert prev is not None
                if prev.seq not in self.reported:
                    self.report(
                        "inserted",
                        prev.seq,
                        None,
                        prev.entry_hash,
                        f"entry {prev.seq} was inserted: it is not part of the chain (entry "
                        f"{row.seq} links to the entry before it)",
                    )
                    self.reported.add(prev.seq)
            elif (earlier := self._recent_seq(row.prev_hash)) is not None:
                self.report(
                    "reordered",
                    row.seq,
                    expected_prev,
                    row.prev_hash,
                    f"entry {row.seq} was moved: it is chained after entry {earlier}",
                )
                self.reported.add(row.seq)
            else:
                self.unlinked[row.prev_hash] = row.seq
                if len(self.unlinked) > WINDOW:
                    self._unresolved(*self.unlinked.popitem(last=False))
        self._remember(row)
        self.prevprev_hash = prev.entry_hash if prev is not None else self.anchor_hash
        self.prev = row

    def _unresolved(self, prev_hash: str, seq: int) -> None:
        if seq in self.reported:
            return
        self.report(
            "broken",
            seq - 1,
            prev_hash,
            None,
            f"entry {seq} is chained to a hash no entry before it has: entries before it were "
            f"deleted (and the later ones renumbered), or entry {seq - 1} was rewritten with "
            "a recomputed hash",
        )
        self.reported.add(seq)

    def finish(self, head: Head | None) -> LogReport:
        self._resolve_suspect(None)
        for prev_hash, seq in list(self.unlinked.items()):
            self._unresolved(prev_hash, seq)
        self.unlinked.clear()
        self._checkpoints_up_to(None)
        last = self.prev
        if head is not None:
            last_seq = last.seq if last is not None else self.anchor_seq
            last_hash = last.entry_hash if last is not None else self.anchor_hash
            if head.seq > last_seq:
                self.report(
                    "deleted",
                    last_seq + 1,
                    head.hash,
                    last_hash,
                    f"{_entries(last_seq + 1, head.seq)} deleted: the log ends at "
                    f"entry {last_seq} but its head records entry {head.seq}",
                )
            elif (
                last is not None  # none read (a --from among deleted ones): none inserted
                and head.seq < last_seq
                and self.inserted < last_seq - head.seq
            ):
                self.report(
                    "inserted",
                    head.seq + 1,
                    head.hash,
                    last_hash,
                    f"{_entries(head.seq + 1, last_seq)} inserted after the "
                    f"recorded head (entry {head.seq})",
                )
            elif head.hash != last_hash and self.anchored_by != "from":
                self.report(
                    "broken",
                    last_seq,
                    head.hash,
                    last_hash,
                    f"entry {last_seq} does not hold the hash the log's head records",
                )
        cp = self.latest_checkpoint
        return LogReport(
            log=self.log,
            intact=self.problems_total == 0,
            entries=self.entries,
            first_seq=self.first_seq,
            last_seq=last.seq if last is not None else None,
            last_hash=last.entry_hash if last is not None else None,
            anchored_by=self.anchored_by,
            checkpoints=self.checkpoints_checked,
            latest_checkpoint=(
                CheckpointSummary(
                    seq=cp["seq"],
                    entry_hash=cp["entry_hash"],
                    signed_at=_timestamp(cp["signed_at"]),
                    key_fingerprint=cp["key_fingerprint"],
                    public_key=cp["public_key"],
                )
                if cp is not None
                else None
            ),
            key_fingerprints=sorted(self.fingerprints),
            problems=sorted(self.problems, key=lambda p: (p["seq"], p["kind"])),
            problems_total=self.problems_total,
        )


def _entries(first: int, last: int) -> str:
    """``entry 4 was`` / ``entries 4-6 were``."""
    return f"entry {first} was" if first == last else f"entries {first}-{last} were"


Encoder = Callable[[Sequence[Any]], bytes]

_json_string = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes


def _dumps(value: Any) -> str:
    return json.dumps(
        _canonical_value(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def _encode_text(value: Any) -> str:
    return _json_string(value) if type(value) is str else _dumps(value)


def _encode_bool(value: Any) -> str:
    return "true" if value else "false"  # SQLite hands out 0 / 1


def _encode_int(value: Any) -> str:
    return str(int(value))


def _encode_timestamp(value: Any) -> str:
    if type(value) is str:  # SQLite: "YYYY-MM-DD HH:MM:SS.ffffff", the UTC wall time
        if len(value) == 26 and value[10] == " ":
            return '"' + value[:10] + "T" + value[11:] + 'Z"'
        value = datetime.fromisoformat(value)
    return '"' + _timestamp(value) + '"'


def _encode_json(value: Any) -> str:
    if type(value) is str:  # SQLite: JSON text
        if value == "[]":
            return "[]"
        value = json.loads(value)
    elif type(value) is list and not value:
        return "[]"
    return _dumps(value)


def _encode_date(value: Any) -> str:
    return '"' + (value if type(value) is str else value.isoformat()) + '"'


def _kind(column: Column[Any]) -> str:
    """json / timestamp / date / bool / int / text / other: how a column is encoded."""
    type_: Any = column.type
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    python_type: Any
    try:
        python_type = type_.python_type
    except NotImplementedError:
        python_type = None
    if isinstance(type_, JSON) or python_type in (dict, list):
        return "json"
    kinds = {datetime: "timestamp", date: "date", bool: "bool", int: "int", str: "text"}
    return kinds.get(python_type, "other")


_ENCODERS: dict[str, Callable[[Any], str]] = {
    "json": _encode_json,
    "timestamp": _encode_timestamp,
    "date": _encode_date,
    "bool": _encode_bool,
    "int": _encode_int,
    "text": _encode_text,
    "other": _dumps,
}


def encoder(chained: ChainedLog) -> tuple[list[Column[Any]], Encoder]:
    """The logged columns in key order and a function from their raw database values (as
    :func:`_rows` selects them, before SQLAlchemy's type processing) to the canonical
    content: byte for byte what :func:`canonical` gives for the typed values, many times
    faster."""
    columns = sorted(chained.logged_columns, key=lambda c: c.name)
    # one unrolled function per log (no per-value loop or zip): the hot path of `verify`
    namespace: dict[str, Any] = {"js": _json_string, "dumps": _dumps}
    names = ", ".join(f"v{i}" for i in range(len(columns)))
    parts: list[str] = []
    for i, column in enumerate(columns):
        kind = _kind(column)
        namespace[f"k{i}"] = _json_string(column.name) + ":"
        namespace[f"e{i}"] = _ENCODERS[kind]
        v = f"v{i}"
        if kind == "text":  # inlined: most columns are text
            value = f"(js({v}) if {v}.__class__ is str else dumps({v}))"
        elif kind == "bool":
            value = f'("true" if {v} else "false")'
        elif kind == "json":
            value = f'("[]" if {v} == "[]" else e{i}({v}))'
        else:
            value = f"e{i}({v})"
        # a NULL column is left out; a NOT NULL one cannot be NULL (if it were, its value
        # would no longer match the hash: reported as edited)
        if column.nullable or kind not in ("text", "bool"):
            parts.append(f"(k{i} + {value} if {v} is not None else None)")
        else:
            parts.append(f"k{i} + {value}")
    source = (
        f"def encode(values):\n    {names}, = values\n"
        f"    parts = [{', '.join(parts)}]\n"
        '    return ("{" + ",".join(filter(None, parts)) + "}").encode("utf-8")\n'
    )
    exec(source, namespace)  # generated from the column names and types only
    encode: Encoder = namespace["encode"]
    return columns, encode


def _select_expression(column: Column[Any], dialect: str, quoted: str) -> str:
    """How :func:`_rows` reads a column: on PostgreSQL, JSON as its text and timestamps as
    UTC text in SQLite's layout, which the encoders read faster than the driver's objects."""
    if dialect == "postgresql":
        kind = _kind(column)
        if kind == "json":
            return f"{quoted}::text"
        if kind == "timestamp":
            return f"to_char({quoted} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    return quoted


def _rows(connection: Connection, chained: ChainedLog, from_seq: int | None) -> Iterator[Row]:
    """Every entry in ``seq`` order, streamed (a server-side cursor on PostgreSQL), with its
    canonical content computed from the raw values."""
    columns, encode = encoder(chained)
    quote = connection.dialect.identifier_preparer.quote
    dialect = connection.dialect.name
    names = ", ".join(
        [
            *(quote(n) for n in CHAIN_COLUMNS),
            *(_select_expression(c, dialect, quote(c.name)) for c in columns),
        ]
    )
    sql = f"SELECT {names} FROM {quote(chained.table.name)}"
    if from_seq is not None:
        sql += f" WHERE seq >= {int(from_seq)}"
    sql += " ORDER BY seq"
    # the driver's own cursor (a server-side one on PostgreSQL), inside the connection's
    # transaction: SQLAlchemy's result machinery would double the time per entry
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor(name="modelgate_log_verify") if dialect == "postgresql" else raw.cursor()
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(STREAM_BATCH):
            for values in batch:
                yield Row(values[0], values[1], values[2], encode(values[3:]))
    finally:
        cursor.close()


def verify_log(
    connection: Connection,
    chained: ChainedLog,
    *,
    from_seq: int | None = None,
    trusted: Iterable[str] | None = None,
) -> LogReport:
    """Recompute the chain of ``chained`` and check its checkpoints and head (constant
    memory). ``from_seq`` starts at that entry, trusting the hash it links to; ``trusted``
    are the key fingerprints a checkpoint must be signed with (any valid signature when
    None). A log whose oldest entries were pruned starts from the checkpoint of the entry
    before its first one. A ``from_seq`` more than one past the end of the log (no entry,
    head or checkpoint that far) is a :class:`ChainError`: there is nothing to verify from
    there."""
    trusted_set = frozenset(trusted) if trusted is not None else None
    table = chained.table
    head = read_head(connection, chained)
    if from_seq is not None:
        _check_from(connection, chained, from_seq, head)
    first = connection.execute(
        select(table.c.seq, table.c.prev_hash)
        .where(table.c.seq >= (from_seq or 0))
        .order_by(table.c.seq)
        .limit(1)
    ).first()
    anchored_by = "genesis"
    anchor_seq, anchor_hash = 0, genesis(chained.name)
    if first is not None and from_seq is not None and from_seq > 1:
        anchored_by, anchor_seq, anchor_hash = "from", int(first[0]) - 1, str(first[1])
    elif first is not None and int(first[0]) > 1:
        # pruned: the oldest remaining entry must link to a checkpointed entry
        anchor = _anchor_checkpoint(connection, chained, int(first[0]) - 1, str(first[1]))
        if anchor is not None:
            anchored_by, anchor_seq, anchor_hash = "checkpoint", anchor["seq"], anchor["entry_hash"]
    elif first is None and from_seq is not None and from_seq > 1:
        anchored_by, anchor_seq = "from", from_seq - 1
    v = _Verifier(chained.name, anchor_seq, anchor_hash, anchored_by, trusted_set)
    v.use_checkpoints(checkpoints(connection, chained))
    for row in _rows(connection, chained, from_seq):
        v.add(row)
    return v.finish(head)


def _check_from(
    connection: Connection, chained: ChainedLog, from_seq: int, head: Head | None
) -> None:
    """Refuse a start past the end of the log. The end is the furthest of the newest entry,
    the recorded head and the newest checkpoint, so a start among entries deleted behind the
    head or a checkpoint still verifies (and reports them ``deleted``). The entry after the
    last is a fine start (an incremental check when nothing new was recorded: 0 entries)."""
    if from_seq < 1:
        raise ChainError(f"cannot verify {chained.name} from entry {from_seq}: entries start at 1")
    table = chained.table
    t = LogCheckpoint.__table__
    newest = connection.execute(select(func.max(table.c.seq))).scalar()
    checkpointed = connection.execute(
        select(func.max(t.c.seq)).where(t.c.log == chained.name)
    ).scalar()
    last = max(int(newest or 0), head.seq if head is not None else 0, int(checkpointed or 0))
    if from_seq <= last + 1:
        return
    if last == 0:
        raise ChainError(
            f"cannot verify {chained.name} from entry {from_seq}: the log is empty (no entries yet)"
        )
    raise ChainError(
        f"cannot verify {chained.name} from entry {from_seq}: its last entry is {last}"
    )


def _anchor_checkpoint(
    connection: Connection, chained: ChainedLog, seq: int, hash_: str
) -> CheckpointRecord | None:
    t = LogCheckpoint.__table__
    for row in connection.execute(
        select(t).where(t.c.log == chained.name, t.c.seq == seq, t.c.entry_hash == hash_)
    ):
        cp = _checkpoint_record(row)
        if signature_valid(cp):
            return cp
    return None


def verify_logs(
    connection: Connection,
    names: Iterable[str] | None = None,
    *,
    from_seq: int | None = None,
    trusted: Iterable[str] | None = None,
) -> list[LogReport]:
    trusted_list = list(trusted) if trusted is not None else None
    return [
        verify_log(connection, get_log(n), from_seq=from_seq, trusted=trusted_list)
        for n in (names or LOGS)
    ]


# --------------------------------------------------------------------------- segments


class SegmentHeader(TypedDict):
    format: str
    log: str
    from_seq: int
    to_seq: int
    prev_hash: str  # the hash entry from_seq links to
    entries: int
    since: str | None
    until: str | None
    exported_at: str


def segment_range(
    connection: Connection, chained: ChainedLog, since: datetime | None, until: datetime | None
) -> tuple[int, int] | None:
    """The contiguous run of entries from the first one at or after ``since`` to the last one
    before ``until`` (by the log's time column); None when no entry is in the window. An entry
    recorded late (e.g. replayed from the spool) with a time outside the window but between
    the two is part of the run: segments are contiguous in the chain."""
    table = chained.table
    time_col = table.c[chained.time_column]
    low = select(func.min(table.c.seq))
    high = select(func.max(table.c.seq))
    if since is not None:
        low = low.where(time_col >= since)
        high = high.where(time_col >= since)
    if until is not None:
        low = low.where(time_col < until)
        high = high.where(time_col < until)
    a = connection.execute(low).scalar()
    b = connection.execute(high).scalar()
    if a is None or b is None:
        return None
    return int(a), int(b)


def export_segment(
    connection: Connection,
    chained: ChainedLog,
    out: IO[str],
    *,
    from_seq: int,
    to_seq: int,
    checkpoint: CheckpointRecord,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Write entries ``from_seq``..``to_seq`` as a segment: a header line, one line per entry
    (``seq``, ``prev_hash``, ``entry_hash`` and the canonical ``content``), and the signed
    ``checkpoint`` of entry ``to_seq``. Returns the number of entries written."""
    table = chained.table
    first_prev = connection.execute(
        select(table.c.prev_hash).where(table.c.seq == from_seq)
    ).scalar_one()
    header = SegmentHeader(
        format=SEGMENT_FORMAT,
        log=chained.name,
        from_seq=from_seq,
        to_seq=to_seq,
        prev_hash=str(first_prev),
        entries=to_seq - from_seq + 1,
        since=_timestamp(since) if since is not None else None,
        until=_timestamp(until) if until is not None else None,
        exported_at=_timestamp(utcnow()),
    )
    out.write(json.dumps(header, sort_keys=True, ensure_ascii=False) + "\n")
    n = 0
    for row in _rows(connection, chained, from_seq):
        if row.seq > to_seq:
            break
        line = {
            "seq": row.seq,
            "prev_hash": row.prev_hash,
            "entry_hash": row.entry_hash,
            "content": json.loads(row.content),
        }
        out.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
        n += 1
    out.write(json.dumps({"checkpoint": jsonable_checkpoint(checkpoint)}, sort_keys=True) + "\n")
    return n


def _parse_checkpoint(data: Any) -> CheckpointRecord:
    if not isinstance(data, Mapping):
        raise ChainError("the segment's checkpoint line is not an object")
    try:
        return CheckpointRecord(
            log=str(data["log"]),
            seq=int(data["seq"]),
            entry_hash=str(data["entry_hash"]),
            signed_at=datetime.fromisoformat(str(data["signed_at"]).replace("Z", "+00:00")),
            public_key=str(data["public_key"]),
            key_fingerprint=str(data["key_fingerprint"]),
            signature=str(data["signature"]),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise ChainError(f"the segment's checkpoint is malformed: {e}") from e


def read_segment(path: Path) -> tuple[SegmentHeader, Iterator[Row], list[CheckpointRecord]]:
    """Open a segment file: its header, its entries (streamed) and — filled once the
    entries have been read — its checkpoint."""
    try:
        fh = path.open(encoding="utf-8")
    except OSError as e:
        raise ChainError(f"cannot read the segment {path}: {e.strerror or e}") from e
    try:
        first = fh.readline()
        header = json.loads(first)
        if not isinstance(header, dict) or header.get("format") != SEGMENT_FORMAT:
            raise ChainError(f"{path} is not a modelgate log segment ({SEGMENT_FORMAT})")
        parsed = SegmentHeader(
            format=SEGMENT_FORMAT,
            log=str(header["log"]),
            from_seq=int(header["from_seq"]),
            to_seq=int(header["to_seq"]),
            prev_hash=str(header["prev_hash"]),
            entries=int(header["entries"]),
            since=header.get("since"),
            until=header.get("until"),
            exported_at=str(header.get("exported_at", "")),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        fh.close()
        raise ChainError(f"{path} is not a modelgate log segment: {e}") from e
    except ChainError:
        fh.close()
        raise
    found: list[CheckpointRecord] = []

    def rows() -> Iterator[Row]:
        with fh:
            for n, line in enumerate(fh, 2):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except ValueError as e:
                    raise ChainError(f"{path} line {n} is not JSON: {e}") from e
                if isinstance(data, dict) and "checkpoint" in data:
                    found.append(_parse_checkpoint(data["checkpoint"]))
                    continue
                try:
                    yield Row(
                        int(data["seq"]),
                        str(data["prev_hash"]),
                        str(data["entry_hash"]),
                        canonical(data["content"]),
                    )
                except (KeyError, ValueError, TypeError) as e:
                    raise ChainError(f"{path} line {n} is not a log entry: {e}") from e

    return parsed, rows(), found


def verify_segment(path: Path, *, trusted: Iterable[str] | None = None) -> LogReport:
    """Verify a segment on its own: the entries chain from the header's ``prev_hash`` without
    gaps up to ``to_seq``, and the signed checkpoint vouches for the last entry's hash."""
    header, rows, found = read_segment(path)
    trusted_set = frozenset(trusted) if trusted is not None else None
    v = _Verifier(
        header["log"], header["from_seq"] - 1, header["prev_hash"], "segment", trusted_set
    )
    for row in rows:
        v.add(row)
    if not found:
        v.report(
            "checkpoint",
            header["to_seq"],
            None,
            None,
            "the segment has no checkpoint: nothing vouches for its entries",
        )
    else:
        cp = found[-1]
        if cp["log"] != header["log"]:
            v.report("checkpoint", cp["seq"], None, None, "the checkpoint is of another log")
        v.use_checkpoints(iter([cp]))
        if cp["seq"] != header["to_seq"]:
            v.report(
                "checkpoint",
                cp["seq"],
                None,
                None,
                f"the checkpoint covers entry {cp['seq']}, not the segment's last entry "
                f"{header['to_seq']}",
            )
    end_hash = found[-1]["entry_hash"] if found else (v.prev.entry_hash if v.prev else "")
    return v.finish(Head(header["log"], header["to_seq"], end_hash))


# --------------------------------------------------------------------------- pruning


def prune(
    connection: Connection, chained: ChainedLog, header: SegmentHeader, cp: CheckpointRecord
) -> int:
    """Delete the entries up to ``header["to_seq"]``, which a verified segment archives and
    whose last entry ``cp`` vouches for (the checkpoint is stored if it is not yet). The
    append-only triggers are bypassed for this one statement, inside the transaction of
    ``connection``. Returns the number of entries deleted."""
    table = chained.table
    to_seq = header["to_seq"]
    oldest = connection.execute(select(func.min(table.c.seq))).scalar()
    if oldest is None:
        raise ChainError(f"{chained.name} is empty: nothing to prune")
    if int(oldest) < header["from_seq"]:
        raise ChainError(
            f"the segment starts at entry {header['from_seq']} but {chained.name} still holds "
            f"entries from {oldest}: archive those first (a segment from {oldest})"
        )
    stored = connection.execute(
        select(table.c.entry_hash).where(table.c.seq == to_seq)
    ).scalar_one_or_none()
    if stored is None or str(stored) != cp["entry_hash"]:
        raise ChainError(
            f"entry {to_seq} of {chained.name} does not hold the segment's last hash: "
            "the segment is not an archive of this log"
        )
    t = LogCheckpoint.__table__
    known = connection.execute(
        select(func.count())
        .select_from(t)
        .where(t.c.log == chained.name, t.c.seq == cp["seq"], t.c.signature == cp["signature"])
    ).scalar()
    if not known:
        connection.execute(insert(LogCheckpoint).values(**cp))
    with _triggers_bypassed(connection, chained.table.name):
        result = connection.execute(delete(table).where(table.c.seq <= to_seq))
    return int(result.rowcount or 0)


class _triggers_bypassed:
    """Drop (SQLite) or disable (PostgreSQL) a table's triggers inside the current
    transaction, and put them back."""

    def __init__(self, connection: Connection, table: str) -> None:
        self.connection = connection
        self.table = table
        self.saved: list[str] = []

    def __enter__(self) -> None:
        conn = self.connection
        if conn.dialect.name == "postgresql":
            conn.execute(text(f'ALTER TABLE "{self.table}" DISABLE TRIGGER USER'))
            return
        rows = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
            {"t": self.table},
        ).all()
        for name, sql in rows:
            self.saved.append(str(sql))
            conn.execute(text(f'DROP TRIGGER "{name}"'))

    def __exit__(self, *exc: object) -> None:
        conn = self.connection
        if conn.dialect.name == "postgresql":
            conn.execute(text(f'ALTER TABLE "{self.table}" ENABLE TRIGGER USER'))
            return
        for sql in self.saved:
            conn.execute(text(sql))


# --------------------------------------------------------------------------- on a Database


class Tampered(ChainError):
    """The log does not verify (export and prune refuse to vouch for it)."""

    def __init__(self, message: str, reports: list[LogReport]) -> None:
        super().__init__(message)
        self.reports = reports


def _guard(db: Database) -> Any:
    """Database errors as :class:`~modelgate.inventory.db.InventoryError` (one line, the
    password redacted)."""
    return errors(db, "the log could not be read from or written to")


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A read-only connection that sees one consistent state of the database (entries, head
    and checkpoints), while writers go on: REPEATABLE READ on PostgreSQL, one read
    transaction on SQLite."""
    with _guard(db):
        if db.backend == "postgresql":
            with (
                db.engine.connect().execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                ) as conn,
                conn.begin(),
            ):
                yield conn
            return
        with db.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.rollback()


def verify(
    db: Database,
    names: Iterable[str] | None = None,
    *,
    from_seq: int | None = None,
    trusted: Iterable[str] | None = None,
) -> list[LogReport]:
    """:func:`verify_log` for each log (all when ``names`` is None) on one snapshot."""
    with snapshot(db) as conn:
        return verify_logs(conn, names, from_seq=from_seq, trusted=trusted)


def checkpoint(
    db: Database, key: Ed25519PrivateKey, names: Iterable[str] | None = None
) -> list[CheckpointRecord]:
    """Sign and store a checkpoint of each log's current head. The heads are locked in the
    order of :data:`LOGS` (the order every writer takes them in), whatever ``names``'s."""
    chosen = {get_log(n).name for n in names} if names else set(LOGS)
    out: list[CheckpointRecord] = []
    with _guard(db), db.session() as session:
        for name in (n for n in LOGS if n in chosen):
            out.append(sign_checkpoint(session, LOGS[name], key))
    return out


class SegmentSummary(TypedDict):
    log: str
    path: str
    from_seq: int
    to_seq: int
    entries: int
    checkpoint: dict[str, Any]
    signed_now: bool  # False when a stored checkpoint of the last entry was reused


def export(
    db: Database,
    name: str,
    path: Path | IO[str],
    *,
    since: datetime | None,
    until: datetime | None,
    key: Ed25519PrivateKey | None,
    trusted: Iterable[str] | None = None,
) -> SegmentSummary:
    """Write the entries of ``name`` recorded between ``since`` and ``until`` as a segment
    (:func:`export_segment`) to a file (written whole or not at all) or a stream, after
    verifying the log: a log that does not verify is not exported (:class:`Tampered`). The
    segment's checkpoint is a stored one of its last entry, else one signed now with ``key``
    (and stored)."""
    chained = get_log(name)
    trusted_list = list(trusted) if trusted is not None else None
    with snapshot(db) as conn:
        span = segment_range(conn, chained, since, until)
        if span is None:
            raise ChainError(
                f"{name} has no entry between {since or 'the start'} and {until or 'now'}"
            )
        report = verify_log(conn, chained, trusted=trusted_list)
        if not report["intact"]:
            raise Tampered(f"{name} does not verify: not exported", [report])
        existing = [
            cp
            for cp in checkpoints(conn, chained)
            if cp["seq"] == span[1]
            and signature_valid(cp)
            and (trusted_list is None or cp["key_fingerprint"] in trusted_list)
        ]
    signed_now = not existing
    if existing:
        cp = existing[-1]
    else:
        if key is None:
            raise SigningKeyError(
                f"no checkpoint of entry {span[1]} is stored and no signing key is configured "
                "(MODELGATE_LOG_SIGNING_KEY_FILE) to sign the segment's end"
            )
        with _guard(db), db.session() as session:
            cp = sign_checkpoint(session, chained, key, at_seq=span[1])
    if not isinstance(path, Path):
        with snapshot(db) as conn:
            n = export_segment(
                conn, chained, path, from_seq=span[0], to_seq=span[1], checkpoint=cp,
                since=since, until=until,
            )  # fmt: skip
    else:
        tmp = path.with_name(path.name + ".partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with snapshot(db) as conn, tmp.open("w", encoding="utf-8") as out:
                n = export_segment(
                    conn, chained, out, from_seq=span[0], to_seq=span[1], checkpoint=cp,
                    since=since, until=until,
                )  # fmt: skip
            tmp.replace(path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ChainError(f"cannot write the segment {path}: {e.strerror or e}") from e
    return SegmentSummary(
        log=name,
        path=str(path) if isinstance(path, Path) else "-",
        from_seq=span[0],
        to_seq=span[1],
        entries=n,
        checkpoint=jsonable_checkpoint(cp),
        signed_now=signed_now,
    )


def prune_segment(db: Database, path: Path, *, trusted: Iterable[str] | None = None) -> int:
    """Delete from the database the entries an archived segment holds, once the segment
    verifies on its own and its last entry is the database's (:func:`prune`). What remains
    verifies from the segment's checkpoint."""
    trusted_list = list(trusted) if trusted is not None else None
    report = verify_segment(path, trusted=trusted_list)
    if not report["intact"]:
        raise Tampered(f"the segment {path} does not verify: nothing pruned", [report])
    header, rows, found = read_segment(path)
    for _ in rows:  # read through to the checkpoint line
        pass
    chained = get_log(header["log"])
    with _guard(db), db.engine.begin() as conn:
        return prune(conn, chained, header, found[-1])
