"""The approval log's hash chain on SQLite and real PostgreSQL: every sign-off write — through
the API's functions, and a denied admission that registers its version — is an entry of the
chained log ``approval_log``, written in the same transaction; a refused write leaves the
chain as it was; and editing or deleting an entry behind modelgate's back (raw SQL around
the append-only triggers) is named with its sequence number."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from modelgate.events import SubmittedEvent
from modelgate.identity import Identity
from modelgate.inventory import chain, signoff
from modelgate.inventory.db import Database
from modelgate.inventory.writes import apply_events
from policies.config import PolicyConfig
from tests.fixtures.inventory import EventFactory
from tests.inventory.test_chain import tamper

#: when the sign-off writes of :func:`sign_off` happen: entry n at 12:0n
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
OWNER = Identity("owner@example.com", ("ml-eng",))
APPROVER = Identity("zoë@example.com", ("model-risk", "auditors"))
LEAD = Identity("lead@example.com", ("model-risk",))
#: the actions :func:`sign_off` logs, in order
ACTIONS = ["register", "approve", "certify", "exempt", "reject", "revoke"]


def at(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def sign_off(db: Database, version: str = "1.0", *, start: int = 1) -> None:
    """Six sign-off writes of ``scorer`` ``version``, one of each kind (:data:`ACTIONS`),
    at 12:0n for entry n (from ``start``)."""
    today = datetime.now(UTC).date()
    later = (today + timedelta(days=90)).isoformat()
    config = PolicyConfig()
    common: dict[str, Any] = {"model": "scorer", "version": version}
    signoff.register_version(
        db,
        **common,
        metadata={
            "owner": OWNER.user,
            "training-date": "2026-01-01",
            "training-data": "s3://data/ü",
        },
        actor=OWNER,
        config=config,
        now=at(start),
    )
    approval = signoff.record_approval(
        db,
        **common,
        decision="approved",
        actor=APPROVER,
        reason="geprüft ✓",
        evidence=["https://example.com/review"],
        expires=later,
        scope={"clusters": ["prod"]},
        config=config,
        today=today,
        now=at(start + 1),
    )
    signoff.record_certification(
        db,
        **common,
        actor=APPROVER,
        name="iso-42001",
        expires=later,
        today=today,
        now=at(start + 2),
    )
    signoff.record_exemption(
        db, **common, actor=APPROVER, reason="pilot", expires=later, today=today, now=at(start + 3)
    )
    signoff.record_approval(
        db,
        **common,
        decision="rejected",
        actor=LEAD,
        reason='no "card"',
        config=config,
        today=today,
        now=at(start + 4),
    )
    signoff.revoke_approval(
        db, approval["id"], actor=LEAD, reason="superseded", today=today, now=at(start + 5)
    )


def entries(db: Database) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM approval_log ORDER BY seq"))
        return [dict(r._mapping) for r in result]


def reports(db: Database) -> dict[str, chain.LogReport]:
    return {r["log"]: r for r in chain.verify(db)}


def problems(db: Database) -> list[tuple[str, int]]:
    (report,) = chain.verify(db, ["approval_log"])
    assert report["intact"] is (not report["problems"])
    return [(p["kind"], p["seq"]) for p in report["problems"]]


def test_sign_off_writes_form_a_chain_of_their_own(db: Database) -> None:
    sign_off(db)
    logged = entries(db)
    assert [e["action"] for e in logged] == ACTIONS
    assert [e["seq"] for e in logged] == [1, 2, 3, 4, 5, 6]
    genesis = hashlib.sha256(b"modelgate log chain\napproval_log").hexdigest()
    assert chain.genesis("approval_log") == genesis != chain.genesis("decisions")
    assert logged[0]["prev_hash"] == genesis
    for before, after in itertools.pairwise(logged):
        assert after["prev_hash"] == before["entry_hash"]
    with db.engine.connect() as conn:
        head = chain.read_head(conn, chain.LOGS["approval_log"])
    assert head is not None and (head.seq, head.hash) == (6, logged[-1]["entry_hash"])
    found = reports(db)
    assert found["approval_log"]["intact"], found["approval_log"]["problems"]
    assert (found["approval_log"]["first_seq"], found["approval_log"]["last_seq"]) == (1, 6)
    assert found["decisions"]["intact"] and found["decisions"]["entries"] == 0

    sign_off(db, "2.0", start=7)  # the chain goes on
    assert [e["seq"] for e in entries(db)] == list(range(1, 13))
    assert problems(db) == []


def test_hashes_are_the_documented_form_of_the_stored_row(sqlite_db: Database) -> None:
    sign_off(sqlite_db)
    approve = entries(sqlite_db)[1]
    fields = {
        "time": "2026-01-01T12:02:00.000000Z",
        "action": "approve",
        "actor": APPROVER.user,
        "actor_groups": "model-risk,auditors",
        "model": "scorer",
        "version": "1.0",
        "record_type": "approval",
        "record_id": approve["record_id"],
        "reason": "geprüft ✓",
        "evidence": '["https://example.com/review"]',
        "expires": approve["expires"],
        "scope": '{"clusters":["prod"]}',
    }
    content = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(f"{approve['prev_hash']}\n{content}".encode()).hexdigest()
    assert approve["entry_hash"] == expected
    register = entries(sqlite_db)[0]
    assert register["expires"] is None and register["scope"] is None  # NULL: left out
    content = chain.canonical(
        {k: v for k, v in register.items() if k not in chain.EXCLUDED_COLUMNS}
    )
    assert b'"expires"' not in content and b'"scope"' not in content


def test_the_verifiers_encoder_gives_the_canonical_form_of_the_typed_values(
    db: Database,
) -> None:
    sign_off(db)
    log = chain.LOGS["approval_log"]
    columns, encode = chain.encoder(log)
    names = [c.name for c in columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    with db.engine.connect() as conn:
        raw = conn.exec_driver_sql(f"SELECT {quoted} FROM approval_log ORDER BY seq").all()
        typed = conn.execute(
            log.table.select().with_only_columns(*columns).order_by(log.table.c.seq)
        ).all()
    assert len(raw) == len(ACTIONS)
    for raw_values, typed_values in zip(raw, typed, strict=True):
        assert encode(raw_values) == chain.canonical(dict(zip(names, typed_values, strict=True)))


def test_a_denied_admission_registering_its_version_is_chained_in_both_logs(
    db: Database, make_event: EventFactory
) -> None:
    denied = make_event(
        allowed=False, violations=("not approved",), model="pending-one", version="0.1"
    )
    with db.session() as session:
        apply_events(session, [SubmittedEvent("denied-1", denied)])
    (registered,) = entries(db)
    assert (registered["seq"], registered["action"], registered["model"]) == (
        1,
        "register",
        "pending-one",
    )
    assert registered["prev_hash"] == chain.genesis("approval_log")
    found = reports(db)
    assert found["decisions"]["intact"] and found["decisions"]["last_seq"] == 1
    assert found["approval_log"]["intact"] and found["approval_log"]["last_seq"] == 1

    signoff.record_approval(
        db,
        model="pending-one",
        version="0.1",
        decision="rejected",
        actor=LEAD,
        reason="undocumented",
        config=PolicyConfig(),
        today=date.today(),
    )
    assert [e["seq"] for e in entries(db)] == [1, 2]
    assert problems(db) == []


def test_a_refused_sign_off_write_leaves_the_chain_as_it_was(db: Database) -> None:
    sign_off(db)
    before = entries(db)
    with pytest.raises(signoff.SignOffRefused):
        signoff.record_approval(
            db,
            model="scorer",
            version="1.0",
            decision="approved",
            actor=OWNER,  # separation of duties
            reason="mine",
            config=PolicyConfig(),
            today=date.today(),
        )
    with pytest.raises(signoff.NotFound):
        signoff.revoke_approval(db, 9999, actor=LEAD, reason="x", today=date.today())
    assert entries(db) == before
    sign_off(db, "2.0", start=7)
    assert [e["seq"] for e in entries(db)] == list(range(1, 13))  # no gap
    assert problems(db) == []


# --------------------------------------------------------------------------- tampering


def test_an_edited_entry_is_named(db: Database) -> None:
    sign_off(db)
    original = entries(db)[1]["entry_hash"]
    tamper(db, "UPDATE approval_log SET actor = 'mallory@example.com' WHERE seq = 2")
    (report,) = chain.verify(db, ["approval_log"])
    assert [(p["kind"], p["seq"], p["expected"]) for p in report["problems"]] == [
        ("edited", 2, original)
    ]
    assert "entry 2 was edited" in report["problems"][0]["message"]
    assert reports(db)["decisions"]["intact"]  # the other log is not concerned


def test_an_edit_whose_hash_was_recomputed_breaks_the_next_link(db: Database) -> None:
    sign_off(db)
    logged = entries(db)
    tamper(db, "UPDATE approval_log SET reason = 'nothing to see' WHERE seq = 3")
    # the attacker knows the algorithm and rewrites entry 3's hash too
    log = chain.LOGS["approval_log"]
    with db.engine.connect() as conn:
        values = conn.execute(
            log.table.select().with_only_columns(*log.logged_columns).where(log.table.c.seq == 3)
        ).one()
    edited = dict(zip([c.name for c in log.logged_columns], values, strict=True))
    rehashed = chain.entry_hash(logged[1]["entry_hash"], chain.canonical(edited))
    tamper(db, "UPDATE approval_log SET entry_hash = :h WHERE seq = 3", h=rehashed)
    assert problems(db) == [("broken", 3)]


def test_a_deleted_entry_is_named(db: Database) -> None:
    sign_off(db)
    tamper(db, "DELETE FROM approval_log WHERE seq = 4")
    (report,) = chain.verify(db, ["approval_log"])
    assert [(p["kind"], p["seq"]) for p in report["problems"]] == [("deleted", 4)]
    assert report["problems"][0]["message"] == "entry 4 was deleted"


def test_deleting_the_newest_entries_is_seen_by_the_head_and_the_checkpoint(
    db: Database,
) -> None:
    sign_off(db)
    key = chain.generate_key()
    (cp,) = chain.checkpoint(db, key, ["approval_log"])
    assert (cp["log"], cp["seq"]) == ("approval_log", 6)
    tamper(db, "DELETE FROM approval_log WHERE seq >= 5")
    assert problems(db) == [("deleted", 5)]
    logged = entries(db)
    tamper(  # and the head rewound to hide it: the checkpoint still tells
        db,
        "UPDATE log_heads SET seq = 4, entry_hash = :h WHERE log = 'approval_log'",
        h=logged[-1]["entry_hash"],
    )
    (report,) = chain.verify(db, ["approval_log"])
    assert [(p["kind"], p["seq"]) for p in report["problems"]] == [("deleted", 5)]
    assert "covers entry 6" in report["problems"][0]["message"]
