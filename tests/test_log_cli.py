"""``modelgate log``: verify (exit 0 intact, 1 tampered naming the entry, 2 usage, 3 database),
checkpoint, keygen, export of a segment that verifies on its own, and pruning what a segment
archives while the rest still verifies."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modelgate.cli import main
from modelgate.inventory import chain
from modelgate.inventory.db import Database
from tests.fixtures.tools import free_port
from tests.inventory.test_approval_log_chain import ACTIONS, sign_off
from tests.inventory.test_chain import N, record, rows, tamper


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["log", *args], catch_exceptions=False)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing.pem"
    path.parent.mkdir()
    result = run("keygen", "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(os.environ):
        if name.startswith("MODELGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MODELGATE_DATABASE_URL", db_url)
    return db_url


def test_verify_exits_0_on_an_intact_log_and_1_naming_a_tampered_entry(
    env: str, db: Database
) -> None:
    record(db)
    intact = run("verify")
    assert intact.exit_code == 0, intact.output
    assert f"decisions: intact, {N} entries (1-{N}), 0 checkpoint(s) checked" in intact.output
    assert "approval_log: intact, 0 entries (-), 0 checkpoint(s) checked" in intact.output
    assert "no checkpoint" in intact.output and "no trusted public key" in intact.output

    original = rows(db)[2]["entry_hash"]
    tamper(db, "UPDATE decisions SET allowed = false WHERE seq = 3")
    tampered = run("verify")
    assert tampered.exit_code == 1
    assert f"decisions: TAMPERED, 1 problem(s) in {N} entries" in tampered.output
    assert "seq 3  edited: entry 3 was edited" in tampered.output
    assert f"expected {original}, found " in tampered.output

    as_json = run("verify", "--output", "json")
    assert as_json.exit_code == 1
    doc = json.loads(as_json.output)
    assert doc["intact"] is False and doc["trusted_keys"] is None
    log, approval_log = doc["logs"]
    assert log["log"] == "decisions" and log["entries"] == N
    assert approval_log["log"] == "approval_log" and approval_log["intact"]
    assert [(p["kind"], p["seq"], p["expected"]) for p in log["problems"]] == [
        ("edited", 3, original)
    ]

    later = run("verify", "--from", "4", "--output", "json")  # of the decision log
    assert later.exit_code == 0, later.output
    (from_4,) = json.loads(later.output)["logs"]
    assert (from_4["log"], from_4["first_seq"]) == ("decisions", 4)


def test_checkpoints_are_signed_with_the_configured_key_and_checked_against_it(
    env: str, db: Database, key_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record(db)
    missing = run("checkpoint")
    assert missing.exit_code == 2 and "MODELGATE_LOG_SIGNING_KEY_FILE" in missing.output

    monkeypatch.setenv("MODELGATE_LOG_SIGNING_KEY_FILE", str(key_file))
    signed = run("checkpoint")
    assert signed.exit_code == 0, signed.output
    fp = chain.fingerprint(chain.load_private_key(key_file).public_key())
    assert f"decisions: checkpoint of entry {N}" in signed.output and fp in signed.output

    verified = run("verify")
    assert verified.exit_code == 0, verified.output
    assert f"1 checkpoint(s) checked; latest: entry {N} signed at" in verified.output
    assert fp in verified.output and "no trusted public key" not in verified.output

    other = tmp_path / "other.pem"
    assert run("keygen", "--out", str(other)).exit_code == 0
    foreign = run("checkpoint", "--key-file", str(other))
    assert foreign.exit_code == 0
    rejected = run("verify")  # the signing key's public half is the trusted one
    assert rejected.exit_code == 1
    assert "not by the trusted key" in rejected.output
    accepted = run("verify", "--public-key", str(other), "--public-key", str(key_file))
    assert accepted.exit_code == 0, accepted.output


def test_keygen_writes_a_private_pem_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = run("keygen", "--out", str(path))
    assert first.exit_code == 0
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = chain.load_private_key(path)
    assert f"fingerprint: {chain.fingerprint(key.public_key())}" in first.output
    assert chain.public_key_text(key.public_key()) in first.output
    again = run("keygen", "--out", str(path))
    assert again.exit_code == 2 and "not overwritten" in again.output
    assert chain.load_private_key(path).private_bytes_raw() == key.private_bytes_raw()


def test_an_exported_segment_verifies_on_its_own_and_pruning_keeps_the_rest_verifiable(
    env: str, db: Database, key_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record(db)  # entries 1..8 at 12:01 .. 12:08
    monkeypatch.setenv("MODELGATE_LOG_SIGNING_KEY_FILE", str(key_file))
    segment = tmp_path / "archive" / "decisions-1.jsonl"
    exported = run(
        "export", "--since", "2026-01-01", "--until", "2026-01-01T12:05:30", "--out", str(segment)
    )
    assert exported.exit_code == 0, exported.output
    assert "entries 1-5 (5) written to" in exported.output and "signed now" in exported.output
    lines = segment.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "modelgate.log-segment/v1"
    assert (header["from_seq"], header["to_seq"], header["entries"]) == (1, 5, 5)
    assert header["prev_hash"] == chain.genesis("decisions")
    assert [json.loads(line)["seq"] for line in lines[1:6]] == [1, 2, 3, 4, 5]
    assert json.loads(lines[1])["content"]["name"] == "workload-1"
    assert json.loads(lines[-1])["checkpoint"]["seq"] == 5

    # on its own: no database at all
    monkeypatch.setenv("MODELGATE_DATABASE_URL", f"postgresql://u@127.0.0.1:{free_port()}/gone")
    alone = run("verify", "--segment", str(segment))
    assert alone.exit_code == 0, alone.output
    assert "decisions: intact, 5 entries (1-5), 1 checkpoint(s) checked" in alone.output

    edited = tmp_path / "edited.jsonl"
    entry = json.loads(lines[3])
    entry["content"]["allowed"] = not entry["content"]["allowed"]
    edited.write_text("\n".join([*lines[:3], json.dumps(entry), *lines[4:]]) + "\n", "utf-8")
    caught = run("verify", "--segment", str(edited))
    assert caught.exit_code == 1 and "seq 3  edited" in caught.output

    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join([*lines[:4], lines[-1]]) + "\n", "utf-8")  # 4 and 5 dropped
    short = run("verify", "--segment", str(cut))
    assert short.exit_code == 1 and "entries 4-5 were deleted" in short.output

    monkeypatch.setenv("MODELGATE_DATABASE_URL", env)
    pruned = run("prune", "--segment", str(segment))
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 5 entries" in pruned.output
    assert [r["seq"] for r in rows(db)] == [6, 7, 8]
    remaining = run("verify", "--output", "json")
    assert remaining.exit_code == 0, remaining.output
    log, _ = json.loads(remaining.output)["logs"]
    assert log["anchored_by"] == "checkpoint" and log["first_seq"] == 6
    assert run("verify", "--segment", str(segment)).exit_code == 0  # the archive still does

    record(db, 1, start=N + 1)  # the chain goes on after pruning
    assert run("verify").exit_code == 0

    # to stdout (the summary goes to stderr): the same segment format
    piped = CliRunner().invoke(main, ["log", "export", "--since", "2026-01-01T12:07"])
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout.splitlines()[0])["from_seq"] == 7
    assert "written to stdout" in piped.stderr
    streamed = tmp_path / "streamed.jsonl"
    streamed.write_text(piped.stdout, encoding="utf-8")
    assert run("verify", "--segment", str(streamed)).exit_code == 0

    # a later segment cannot be pruned before the one in between is archived
    later = tmp_path / "later.jsonl"
    assert run("export", "--since", "2026-01-01T12:08", "--out", str(later)).exit_code == 0
    refused = run("prune", "--segment", str(later))
    assert refused.exit_code == 2 and "archive those first" in refused.output


def test_verify_names_the_approval_log_and_its_edited_or_deleted_entry(
    env: str, db: Database
) -> None:
    record(db)
    sign_off(db)
    n = len(ACTIONS)
    intact = run("verify")
    assert intact.exit_code == 0, intact.output
    assert intact.output.index("decisions: intact") < intact.output.index("approval_log: intact")
    assert f"approval_log: intact, {n} entries (1-{n})" in intact.output

    tamper(db, "UPDATE approval_log SET actor = 'mallory@example.com' WHERE seq = 2")
    edited = run("verify")
    assert edited.exit_code == 1
    assert f"decisions: intact, {N} entries" in edited.output
    assert f"approval_log: TAMPERED, 1 problem(s) in {n} entries (1-{n})" in edited.output
    assert "seq 2  edited: entry 2 was edited" in edited.output

    tamper(db, "DELETE FROM approval_log WHERE seq = 4")
    as_json = run("verify", "--log", "approval_log", "--output", "json")
    assert as_json.exit_code == 1
    (log,) = json.loads(as_json.output)["logs"]
    assert log["log"] == "approval_log" and log["intact"] is False
    assert [(p["kind"], p["seq"]) for p in log["problems"]] == [("edited", 2), ("deleted", 4)]
    assert run("verify", "--log", "decisions").exit_code == 0


def test_the_approval_log_is_checkpointed_exported_and_pruned_like_the_decision_log(
    env: str, db: Database, key_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record(db)  # decisions at 12:01 .. 12:08
    sign_off(db)  # approval-log entries 1..6 at 12:01 .. 12:06
    monkeypatch.setenv("MODELGATE_LOG_SIGNING_KEY_FILE", str(key_file))
    signed = run("checkpoint")
    assert signed.exit_code == 0, signed.output
    assert f"decisions: checkpoint of entry {N}" in signed.output
    assert "approval_log: checkpoint of entry 6" in signed.output

    segment = tmp_path / "approval_log-1.jsonl"
    exported = run(
        "export", "--log", "approval_log", "--until", "2026-01-01T12:03:30", "--out", str(segment)
    )
    assert exported.exit_code == 0, exported.output
    assert "approval_log: entries 1-3 (3) written to" in exported.output
    lines = segment.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert (header["log"], header["from_seq"], header["to_seq"]) == ("approval_log", 1, 3)
    assert header["prev_hash"] == chain.genesis("approval_log")
    assert [json.loads(line)["content"]["action"] for line in lines[1:4]] == ACTIONS[:3]
    alone = run("verify", "--segment", str(segment))
    assert alone.exit_code == 0, alone.output
    assert "approval_log: intact, 3 entries (1-3), 1 checkpoint(s) checked" in alone.output

    # the DESIGN contract `log export --since --until` still means the decision log
    default = tmp_path / "decisions.jsonl"
    exported = run(
        "export", "--since", "2026-01-01", "--until", "2026-01-02", "--out", str(default)
    )
    assert exported.exit_code == 0, exported.output
    assert f"decisions: entries 1-{N} ({N}) written to" in exported.output
    assert json.loads(default.read_text("utf-8").splitlines()[0])["log"] == "decisions"

    pruned = run("prune", "--segment", str(segment))
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 3 entries" in pruned.output
    remaining = run("verify", "--output", "json")
    assert remaining.exit_code == 0, remaining.output
    decisions, approval_log = json.loads(remaining.output)["logs"]
    assert decisions["first_seq"] == 1 and decisions["entries"] == N
    assert approval_log["anchored_by"] == "checkpoint"
    assert (approval_log["first_seq"], approval_log["last_seq"]) == (4, 6)
    sign_off(db, "2.0", start=7)  # and sign-off goes on after pruning
    assert run("verify").exit_code == 0


def test_deleting_old_entries_without_a_checkpoint_is_not_pruning(env: str, db: Database) -> None:
    record(db)
    tamper(db, "DELETE FROM decisions WHERE seq <= 3")
    result = run("verify")
    assert result.exit_code == 1 and "seq 1  deleted: entries 1-3 were deleted" in result.output


def test_a_tampered_log_is_not_exported(
    env: str, db: Database, key_file: Path, tmp_path: Path
) -> None:
    record(db)
    tamper(db, "DELETE FROM decisions WHERE seq = 2")
    out = tmp_path / "seg.jsonl"
    result = run("export", "--out", str(out), "--key-file", str(key_file))
    assert result.exit_code == 1
    assert "does not verify: not exported" in result.output
    assert "seq 2  deleted" in result.output
    assert not out.exists()


def test_usage_errors_exit_2(env: str, db: Database, tmp_path: Path) -> None:
    cases: list[tuple[list[str], str]] = [
        (["verify", "--log", "nope"], "unknown log 'nope'"),
        (["verify", "--segment", str(tmp_path / "none.jsonl")], "cannot read the segment"),
        (["verify", "--segment", "x", "--from", "2"], "cannot be combined"),
        (["verify", "--from", "0"], "0 is not in the range"),
        (["verify", "--from", "-1"], "-1 is not in the range"),
        (["verify", "--from", "2", "--log", "decisions", "--log", "approval_log"], "one --log"),
        (["export", "--out", "x", "--log", "nope"], "unknown log 'nope'"),
        (["export", "--out", "x", "--since", "yesterday"], "not an ISO 8601 date"),
        (["export", "--out", "x", "--since", "2026-02-01", "--until", "2026-01-01"], "before"),
        (["export", "--out", str(tmp_path / "s.jsonl"), "--since", "2030-01-01"], "no entry"),
        (["checkpoint", "--key-file", str(tmp_path / "missing.pem")], "cannot read"),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something else"}\n', "utf-8")
    cases.append((["verify", "--segment", str(bad)], "not a modelgate log segment"))
    notkey = tmp_path / "notkey.pem"
    notkey.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    cases.append((["checkpoint", "--key-file", str(notkey)], "not an unencrypted Ed25519"))
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "AAAA" not in result.output  # key material never shown


def test_verify_from_past_the_end_of_a_log_is_bad_usage_not_tampering(
    env: str, db: Database
) -> None:
    record(db)
    last = run("verify", "--from", str(N))
    assert last.exit_code == 0, last.output
    assert f"decisions: intact, 1 entries ({N}-{N})" in last.output
    # the entry after the last: an incremental check when nothing new was recorded
    nothing_new = run("verify", "--from", str(N + 1))
    assert nothing_new.exit_code == 0, nothing_new.output
    assert "decisions: intact" in nothing_new.output and "TAMPERED" not in nothing_new.output
    for start in (N + 2, N + 40):
        for output in ("table", "json"):
            past = run("verify", "--from", str(start), "--output", output)
            assert past.exit_code == 2, past.output
            assert past.output == (
                f"Error: cannot verify decisions from entry {start}: its last entry is {N}\n"
            )
    assert run("verify", "--log", "approval_log", "--from", "1").exit_code == 0
    empty = run("verify", "--log", "approval_log", "--from", "2")
    assert empty.exit_code == 2, empty.output
    assert empty.output == (
        "Error: cannot verify approval_log from entry 2: the log is empty (no entries yet)\n"
    )
    sign_off(db)
    n = len(ACTIONS)
    past = run("verify", "--log", "approval_log", "--from", str(n + 2))
    assert past.exit_code == 2 and f"its last entry is {n}" in past.output
    assert "TAMPERED" not in past.output and "inserted" not in past.output


def test_database_errors_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MODELGATE_DATABASE_URL", f"postgresql://u:secret@127.0.0.1:{free_port()}/gone"
    )
    down = run("verify")
    assert down.exit_code == 3 and "unavailable" in down.output
    assert "secret" not in down.output
    monkeypatch.setenv("MODELGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'missing.db'}")
    missing = run("verify")
    assert missing.exit_code == 3 and "does not exist" in missing.output
    empty = tmp_path / "empty.db"
    empty.touch()
    monkeypatch.setenv("MODELGATE_DATABASE_URL", f"sqlite:///{empty}")
    unmigrated = run("verify")
    assert unmigrated.exit_code == 3 and "modelgate db upgrade" in unmigrated.output


def test_help_documents_the_exit_codes() -> None:
    text = " ".join(run("--help").output.split())
    assert "0 intact / done 1 tampered" in text and "3 database errors" in text
    verify_help = " ".join(run("verify", "--help").output.split())
    for option in ("--from", "--segment", "--output", "--public-key", "--log"):
        assert option in verify_help
    listed = CliRunner().invoke(main, ["--help"]).output
    assert "log" in listed.split()
