"""The decision log's hash chain on SQLite and real PostgreSQL: how entries are chained (the
documented canonical form), replays and spool replays that keep the chain, and every kind of
tampering — done the way an attacker with database access would, through raw SQL around the
append-only triggers — detected and named."""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, text

from modelgate.events import AdmissionEvent, SubmittedEvent
from modelgate.inventory import chain
from modelgate.inventory.db import Database
from modelgate.inventory.recorder import Recorder
from modelgate.inventory.spool import Spool
from modelgate.inventory.writes import apply_events
from tests.fixtures.inventory import EventFactory

N = 8


def decision(n: int, allowed: bool = True) -> AdmissionEvent:
    return AdmissionEvent(
        time=datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(minutes=n),
        uid=f"uid-{n}",
        user="alice@example.com",
        operation="CREATE",
        cluster="prod",
        kind="Deployment",
        namespace="ml",
        name=f"workload-{n}",
        allowed=allowed,
        is_model=True,
        violations=() if allowed else ('missing required annotation "modelgate.dev/owner"',),
        bundle_digest="sha256:feedface",
        engine="embedded",
    )


def record(db: Database, count: int = N, start: int = 1) -> None:
    recorder = Recorder(database=db, auto_migrate=False)
    for n in range(start, start + count):
        recorder.record(decision(n, allowed=n % 2 == 1))


def rows(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        result = conn.execute(
            text("SELECT seq, prev_hash, entry_hash, name, allowed FROM decisions ORDER BY seq")
        )
        return [dict(r._mapping) for r in result]


def tamper(db: Database, *statements: str, **params: Any) -> None:
    """Run SQL as an attacker with database access would: around the append-only triggers
    (PostgreSQL: replica mode skips them; SQLite: drop them)."""
    with db.engine.begin() as conn:
        if db.backend == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for (name,) in conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).all():
                conn.execute(text(f'DROP TRIGGER "{name}"'))
        for statement in statements:
            conn.execute(text(statement), params)


def problems(db: Database, **kwargs: Any) -> list[tuple[str, int]]:
    (report,) = chain.verify(db, ["decisions"], **kwargs)
    assert report["intact"] is (not report["problems"])
    return [(p["kind"], p["seq"]) for p in report["problems"]]


def only_problem(db: Database) -> chain.Problem:
    (report,) = chain.verify(db, ["decisions"])
    assert len(report["problems"]) == 1, report["problems"]
    return report["problems"][0]


# --------------------------------------------------------------------------- the form


def test_canonical_form_is_sorted_compact_utf8_with_utc_timestamps_and_no_nulls() -> None:
    fields = {
        "name": "modèle-ü",
        "allowed": True,
        "time": datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=UTC) + timedelta(hours=-1),
        "error": None,
        "violations": ["a", "b"],
        "due": date(2026, 3, 1),
        "count": 3,
    }
    assert (
        chain.canonical(fields)
        == (
            '{"allowed":true,"count":3,"due":"2026-03-01","name":"modèle-ü",'
            '"time":"2026-01-02T03:04:05.000006Z","violations":["a","b"]}'
        ).encode()
    )
    # a column added later (NULL in old rows) does not change the content
    assert chain.canonical({**fields, "caller_verified": None}) == chain.canonical(fields)
    prev = chain.genesis("decisions")
    assert prev == hashlib.sha256(b"modelgate log chain\ndecisions").hexdigest()
    assert (
        chain.entry_hash(prev, chain.canonical(fields))
        == hashlib.sha256(prev.encode() + b"\n" + chain.canonical(fields)).hexdigest()
    )


def test_recorded_decisions_form_an_intact_chain(db: Database) -> None:
    record(db)
    entries = rows(db)
    assert [e["seq"] for e in entries] == list(range(1, N + 1))
    assert entries[0]["prev_hash"] == chain.genesis("decisions")
    for before, after in itertools.pairwise(entries):
        assert after["prev_hash"] == before["entry_hash"]
    report, approval_log = chain.verify(db)  # every log, the decision log first
    assert approval_log["log"] == "approval_log" and approval_log["intact"]
    assert report["log"] == "decisions"
    assert report["intact"] and report["entries"] == N
    assert (report["first_seq"], report["last_seq"]) == (1, N)
    assert report["last_hash"] == entries[-1]["entry_hash"]
    assert report["anchored_by"] == "genesis" and report["problems"] == []


def test_hashes_are_the_documented_form_of_the_stored_row(sqlite_db: Database) -> None:
    record(sqlite_db, 1)
    with sqlite_db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM decisions")).one()._mapping
    fields = {
        "event_id": row["event_id"],
        "time": "2026-01-01T12:01:00.000000Z",
        "uid": "uid-1",
        "user": "alice@example.com",
        "operation": "CREATE",
        "cluster": "prod",
        "kind": "Deployment",
        "namespace": "ml",
        "name": "workload-1",
        "allowed": True,
        "is_model": True,
        "violations": [],
        "warnings": [],
        "enforcement": "enforce",
        "bundle_digest": "sha256:feedface",
        "engine": "embedded",
    }  # model_name, model_version and error are NULL: left out
    content = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(
        (chain.genesis("decisions") + "\n" + content).encode("utf-8")
    ).hexdigest()
    assert row["entry_hash"] == expected


def test_the_verifiers_encoder_gives_the_canonical_form_of_the_typed_values(
    db: Database,
) -> None:
    recorder = Recorder(database=db, auto_migrate=False)
    odd = AdmissionEvent(
        time=datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),  # no microseconds
        uid='quote " backslash \\ tab \t',
        user="zoë@例え.jp",
        operation="UPDATE",
        cluster="prod",
        kind="Deployment",
        namespace="ml",
        name="odd",
        allowed=False,
        is_model=False,
        violations=("ünïcode ✗", 'with "quotes"', "line\nbreak"),
        warnings=("w",),
        error="engine timeout",
    )
    recorder.record(odd)
    record(db, 2)
    log = chain.LOGS["decisions"]
    columns, encode = chain.encoder(log)
    names = [c.name for c in columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    with db.engine.connect() as conn:
        raw = conn.exec_driver_sql(f"SELECT {quoted} FROM decisions ORDER BY seq").all()
        typed = conn.execute(
            log.table.select().with_only_columns(*columns).order_by(log.table.c.seq)
        ).all()
    assert len(raw) == 3
    for raw_values, typed_values in zip(raw, typed, strict=True):
        assert encode(raw_values) == chain.canonical(dict(zip(names, typed_values, strict=True)))
    assert problems(db) == []


def test_a_nullable_column_added_later_leaves_the_older_hashes_valid(db: Database) -> None:
    record(db, 3)
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE decisions ADD COLUMN added_later BOOLEAN"))
    with db.engine.connect() as conn:
        reflected = Table("decisions", MetaData(), autoload_with=conn)
        assert "added_later" in reflected.c
        later = chain.ChainedLog("decisions", reflected, "time")
        report = chain.verify_log(conn, later)
    assert report["intact"] and report["entries"] == 3


def test_replays_of_recorded_events_take_no_sequence_number(
    db: Database, make_event: EventFactory
) -> None:
    first = [SubmittedEvent(f"e{n}", make_event(name=f"w{n}")) for n in range(3)]
    with db.session() as session:
        apply_events(session, first)
    again = [first[1], SubmittedEvent("e3", make_event(name="w3")), first[2], first[0]]
    again.append(SubmittedEvent("e3", again[1].event))  # twice in one batch
    with db.session() as session:
        apply_events(session, again)
    entries = rows(db)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert [e["name"] for e in entries] == ["w0", "w1", "w2", "w3"]
    assert problems(db) == []


def test_a_spool_replay_keeps_the_chain_in_spool_order(db: Database, tmp_path: Path) -> None:
    record(db, 2)
    spooled = [SubmittedEvent(f"spooled-{n}", decision(n)) for n in (9, 5, 7)]  # not by time
    spool = Spool(tmp_path / "spool")
    spool.append(spooled)
    spool.append(spooled[:1])  # the first one spooled twice (a retry)
    spool.close()  # as if its process had stopped
    recorder = Recorder(database=db, spool_dir=tmp_path / "spool", auto_migrate=False)
    try:
        recorder.flush()  # starts the writer, which replays the spool
        deadline = time.monotonic() + 60
        while len(rows(db)) < 5:
            assert time.monotonic() < deadline, rows(db)
            time.sleep(0.1)
    finally:
        recorder.close()
    entries = rows(db)
    assert [e["name"] for e in entries] == [
        "workload-1",
        "workload-2",
        "workload-9",
        "workload-5",
        "workload-7",
    ]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert problems(db) == []


def test_an_empty_log_verifies(db: Database) -> None:
    reports = chain.verify(db)
    assert [r["log"] for r in reports] == ["decisions", "approval_log"]
    for report in reports:
        assert report["intact"] and report["entries"] == 0 and report["last_seq"] is None


# --------------------------------------------------------------------------- tampering


def test_an_edited_entry_is_named_with_its_expected_and_found_hash(db: Database) -> None:
    record(db)
    before = rows(db)[3]
    assert before["allowed"] is False or before["allowed"] == 0  # seq 4 was denied
    tamper(db, "UPDATE decisions SET allowed = true WHERE seq = 4")
    problem = only_problem(db)
    assert (problem["kind"], problem["seq"]) == ("edited", 4)
    assert problem["expected"] == before["entry_hash"]
    assert problem["found"] not in (None, before["entry_hash"])
    assert "entry 4 was edited" in problem["message"]


def test_an_edit_whose_hash_was_recomputed_breaks_the_next_link(db: Database) -> None:
    record(db)
    entries = rows(db)
    tamper(db, "UPDATE decisions SET allowed = true WHERE seq = 4")
    # the attacker knows the algorithm and rewrites entry 4's hash too
    with db.engine.connect() as conn:
        log = chain.LOGS["decisions"]
        names = [c.name for c in log.logged_columns]
        values = conn.execute(
            log.table.select().with_only_columns(*log.logged_columns).where(log.table.c.seq == 4)
        ).one()
    rehashed = chain.entry_hash(
        entries[2]["entry_hash"], chain.canonical(dict(zip(names, values, strict=True)))
    )
    tamper(db, "UPDATE decisions SET entry_hash = :h WHERE seq = 4", h=rehashed)
    problem = only_problem(db)
    assert (problem["kind"], problem["seq"]) == ("broken", 4)
    assert problem["expected"] == entries[3]["entry_hash"]  # what entry 5 was chained to


def test_a_deleted_entry_is_named(db: Database) -> None:
    record(db)
    entries = rows(db)
    tamper(db, "DELETE FROM decisions WHERE seq = 4")
    problem = only_problem(db)
    assert (problem["kind"], problem["seq"]) == ("deleted", 4)
    assert problem["expected"] == entries[2]["entry_hash"]
    assert problem["found"] == entries[3]["entry_hash"]  # entry 5 links to the deleted one
    assert problem["message"] == "entry 4 was deleted"


def _insert_forged(db: Database, seq: int, prev_hash: str, entry_hash: str) -> None:
    tamper(
        db,
        f"UPDATE decisions SET seq = seq + 1000 WHERE seq >= {seq}",
        "UPDATE decisions SET seq = seq - 999 WHERE seq >= 1000",
        'INSERT INTO decisions (event_id, time, uid, "user", operation, cluster, kind,'
        " namespace, name, allowed, is_model, violations, warnings, enforcement,"
        " bundle_digest, engine, seq, prev_hash, entry_hash) VALUES ('forged', :t, 'u',"
        " 'mallory', 'CREATE', 'prod', 'Deployment', 'ml', 'forged', true, true, '[]', '[]',"
        " 'enforce', '', '', :seq, :prev, :hash)",
        t=datetime(2026, 1, 1, 12, 4, 30, tzinfo=UTC),
        seq=seq,
        prev=prev_hash,
        hash=entry_hash,
    )


@pytest.mark.parametrize("consistent", [True, False], ids=["rehashed", "garbage-hash"])
def test_an_inserted_entry_is_named(db: Database, consistent: bool) -> None:
    record(db)
    entries = rows(db)
    prev = entries[3]["entry_hash"]  # after entry 4
    forged = "0" * 64
    if consistent:  # as the writer would have hashed it (what it can be checked against)
        forged = "computed below"
    _insert_forged(db, 5, prev, forged)
    if consistent:
        with db.engine.connect() as conn:
            log = chain.LOGS["decisions"]
            names = [c.name for c in log.logged_columns]
            values = conn.execute(
                log.table.select()
                .with_only_columns(*log.logged_columns)
                .where(log.table.c.seq == 5)
            ).one()
        forged = chain.entry_hash(prev, chain.canonical(dict(zip(names, values, strict=True))))
        tamper(db, "UPDATE decisions SET entry_hash = :h WHERE seq = 5", h=forged)
    assert [e["name"] for e in rows(db)][3:6] == ["workload-4", "forged", "workload-5"]
    problem = only_problem(db)
    assert (problem["kind"], problem["seq"]) == ("inserted", 5)
    assert problem["found"] == forged
    assert "entry 5 was inserted" in problem["message"]


def test_reordered_entries_are_named(db: Database) -> None:
    record(db)
    tamper(
        db,
        "UPDATE decisions SET seq = 1003 WHERE seq = 3",
        "UPDATE decisions SET seq = 3 WHERE seq = 4",
        "UPDATE decisions SET seq = 4 WHERE seq = 1003",
    )
    assert [e["name"] for e in rows(db)][2:4] == ["workload-4", "workload-3"]
    problem = only_problem(db)
    assert (problem["kind"], problem["seq"]) == ("reordered", 3)
    assert "entries 3 and 4 were reordered" in problem["message"]


def test_an_entry_moved_far_away_is_named_reordered(db: Database) -> None:
    record(db)
    tamper(
        db,
        "UPDATE decisions SET seq = 1002 WHERE seq = 2",
        "UPDATE decisions SET seq = seq - 1 WHERE seq BETWEEN 3 AND 6",
        "UPDATE decisions SET seq = 6 WHERE seq = 1002",
    )
    kinds = {kind for kind, _ in problems(db)}
    assert kinds == {"reordered"}, problems(db)


@pytest.fixture
def signing_key() -> Any:
    return chain.generate_key()


def test_deleting_the_newest_entries_after_a_checkpoint_is_detected(
    db: Database, signing_key: Any
) -> None:
    record(db)
    (cp,) = chain.checkpoint(db, signing_key, ["decisions"])
    assert (cp["seq"], cp["entry_hash"]) == (N, rows(db)[-1]["entry_hash"])
    record(db, 2, start=N + 1)  # entries after the checkpoint
    # the attacker removes the newest entries and rewinds the head to hide it
    entries = rows(db)
    tamper(
        db,
        f"DELETE FROM decisions WHERE seq >= {N - 1}",
        "UPDATE log_heads SET seq = :seq, entry_hash = :h WHERE log = 'decisions'",
        seq=N - 2,
        h=entries[N - 3]["entry_hash"],
    )
    (report,) = chain.verify(db, ["decisions"])
    assert not report["intact"]
    assert [(p["kind"], p["seq"]) for p in report["problems"]] == [("deleted", N - 1)]
    message = report["problems"][0]["message"]
    assert f"entries {N - 1}-{N} were deleted" in message
    assert f"the log ends at entry {N - 2}" in message
    assert f"covers entry {N}" in message


def test_deleting_the_newest_entries_is_seen_by_the_head(db: Database) -> None:
    record(db)
    tamper(db, f"DELETE FROM decisions WHERE seq > {N - 2}")
    problem = only_problem(db)
    assert (problem["kind"], problem["seq"]) == ("deleted", N - 1)
    assert f"its head records entry {N}" in problem["message"]


def test_entries_appended_behind_the_heads_back_are_inserted(db: Database) -> None:
    record(db)
    head = rows(db)[-1]["entry_hash"]
    _insert_forged(db, N + 1, head, "f" * 64)
    assert ("inserted", N + 1) in problems(db)


def test_a_checkpoint_signed_by_another_key_or_forged_is_reported(
    db: Database, signing_key: Any
) -> None:
    record(db)
    chain.checkpoint(db, signing_key)
    mine = chain.fingerprint(signing_key.public_key())
    assert problems(db, trusted=[mine]) == []
    stranger = chain.fingerprint(chain.generate_key().public_key())
    (report,) = chain.verify(db, ["decisions"], trusted=[stranger])
    assert [p["kind"] for p in report["problems"]] == ["checkpoint"]
    assert "not by the trusted key" in report["problems"][0]["message"]
    tamper(db, "UPDATE log_checkpoints SET entry_hash = :h", h="a" * 64)
    kinds = problems(db, trusted=[mine])
    assert ("checkpoint", N) in kinds  # the signature no longer matches the statement


def test_an_edit_before_a_checkpoint_is_caught_by_it_too(db: Database, signing_key: Any) -> None:
    record(db)
    chain.checkpoint(db, signing_key)
    original = rows(db)[-1]["entry_hash"]
    tamper(db, "UPDATE decisions SET entry_hash = :h WHERE seq = :n", h="b" * 64, n=N)
    (report,) = chain.verify(db, ["decisions"])
    kinds = {(p["kind"], p["seq"]) for p in report["problems"]}
    assert ("edited", N) in kinds
    by_checkpoint = [p for p in report["problems"] if "checkpoint signed at" in p["message"]]
    assert by_checkpoint and by_checkpoint[0]["expected"] == original


def test_verification_from_a_sequence_number(db: Database) -> None:
    record(db)
    tamper(db, "UPDATE decisions SET allowed = true WHERE seq = 2")
    assert problems(db) == [("edited", 2)]
    (report,) = chain.verify(db, ["decisions"], from_seq=3)
    assert report["intact"] and report["entries"] == N - 2 and report["first_seq"] == 3
    assert report["anchored_by"] == "from"


def test_verification_from_past_the_end_is_refused_not_reported_as_tampering(
    db: Database,
) -> None:
    record(db)
    (last,) = chain.verify(db, ["decisions"], from_seq=N)
    assert last["intact"] and (last["first_seq"], last["entries"]) == (N, 1)
    (nothing_new,) = chain.verify(db, ["decisions"], from_seq=N + 1)  # incremental, no news
    assert nothing_new["intact"] and nothing_new["entries"] == 0
    for start in (N + 2, N + 40):
        with pytest.raises(chain.ChainError) as refused:
            chain.verify(db, ["decisions"], from_seq=start)
        assert str(refused.value) == (
            f"cannot verify decisions from entry {start}: its last entry is {N}"
        )
        assert not isinstance(refused.value, chain.Tampered)
    (empty_ok,) = chain.verify(db, ["approval_log"], from_seq=1)  # nothing signed off yet
    assert empty_ok["intact"] and empty_ok["entries"] == 0
    for start in (2, 3):
        with pytest.raises(chain.ChainError) as empty:
            chain.verify(db, ["approval_log"], from_seq=start)
        assert str(empty.value) == (
            f"cannot verify approval_log from entry {start}: the log is empty (no entries yet)"
        )


def test_verification_from_among_deleted_newest_entries_still_reports_them(
    db: Database, signing_key: Any
) -> None:
    """The end of the log is the furthest of its newest entry, its head and its newest
    checkpoint: deleting the newest entries does not turn a start among them into bad
    usage that hides the deletion."""
    record(db)
    tamper(db, f"DELETE FROM decisions WHERE seq >= {N - 2}")  # behind the head
    (report,) = chain.verify(db, ["decisions"], from_seq=N - 1)
    assert not report["intact"] and [(p["kind"], p["seq"]) for p in report["problems"]] == [
        ("deleted", N - 1)
    ]

    chain.checkpoint(db, signing_key, ["decisions"])  # signs the head, entry N
    entries = rows(db)
    tamper(  # and the head rewound to hide it: the checkpoint still knows entry N
        db,
        "UPDATE log_heads SET seq = :seq, entry_hash = :h WHERE log = 'decisions'",
        seq=N - 3,
        h=entries[-1]["entry_hash"],
    )
    (report,) = chain.verify(db, ["decisions"], from_seq=N)
    assert not report["intact"]
    assert [(p["kind"], p["seq"]) for p in report["problems"]] == [("deleted", N)]
    assert "the checkpoint signed at" in report["problems"][0]["message"]
    with pytest.raises(chain.ChainError, match=f"its last entry is {N}"):
        chain.verify(db, ["decisions"], from_seq=N + 2)


def test_the_head_row_holds_the_newest_entry(db: Database) -> None:
    """The head row and the newest entry agree (both written in one transaction)."""
    record(db, 3)
    with db.engine.connect() as conn:
        head = chain.read_head(conn, chain.LOGS["decisions"])
    assert head is not None and head.seq == 3 and head.hash == rows(db)[-1]["entry_hash"]


def test_many_tamperings_are_all_listed(db: Database) -> None:
    record(db, 20)
    tamper(
        db,
        "UPDATE decisions SET allowed = true WHERE seq = 4",
        "DELETE FROM decisions WHERE seq = 9",
        "UPDATE decisions SET name = 'renamed' WHERE seq = 15",
    )
    assert problems(db) == [("edited", 4), ("deleted", 9), ("edited", 15)]
