"""Audit readiness over real scans: a stale scan, an unreachable source, and a clean
inventory that is ready; the log-integrity check of the report's readiness, where an empty
log (of either kind) has nothing to check yet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditor.discovery import create_sources
from auditor.reconcile import Reconciler
from dashboard.app import create_app
from modelgate import readiness
from modelgate.inventory import chain
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from policies.config import PolicyConfig
from policies.engines import PolicyEngine
from tests.fixtures.inventory import admit, deployment, metadata, write_snapshot
from tests.inventory.test_approval_log_chain import ACTIONS, sign_off
from tests.inventory.test_chain import tamper


def _checks(url: str, now: datetime | None = None) -> tuple[str, dict[str, dict[str, str]]]:
    app = create_app(
        Settings.from_env({}, database_url=url, allow_anonymous=True),
        clock=(lambda: now) if now else None,
    )
    readiness = app.test_client().get("/api/v1/overview").get_json()["readiness"]
    return readiness["status"], {c["name"]: c for c in readiness["checks"]}


def _documented() -> dict[str, object]:
    return deployment(
        "fraud",
        annotations=metadata(
            model_card="https://models.example.com/fraud/card",
            source="https://git.example.com/risk/fraud@4f2a9c1",
        ),
    )


def test_clean_recent_scan_is_ready_and_turns_stale_after_seven_days(
    sqlite_db: Database, sqlite_url: str, engine: PolicyEngine, tmp_path: Path
) -> None:
    admit(sqlite_db, "prod", _documented())
    snap = write_snapshot(tmp_path / "snap" / "prod", [_documented()])
    Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))

    status, checks = _checks(sqlite_url)
    assert status == "ready", checks
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert checks["documentation"]["reason"] == "all 1 deployed version(s) fully documented"

    status, checks = _checks(sqlite_url, now=datetime.now(UTC) + timedelta(days=8))
    assert status == "not ready"
    assert checks["recent scan"]["status"] == "fail"
    assert "8 days ago, more than 7 days" in checks["recent scan"]["reason"]


def test_unreachable_source_and_missing_required_metadata_are_named(
    sqlite_db: Database, sqlite_url: str, engine: PolicyEngine, tmp_path: Path
) -> None:
    admit(sqlite_db, "prod", _documented())
    admit(
        sqlite_db,
        "prod",
        deployment("ranker", annotations=metadata(model_name="ranker", training_date="soon")),
    )
    snap = write_snapshot(
        tmp_path / "snap" / "prod",
        [_documented(), deployment("ranker", annotations=metadata(model_name="ranker"))],
    )
    empty = tmp_path / "snap" / "staging"
    empty.mkdir()
    Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap, empty]}))

    status, checks = _checks(sqlite_url)
    assert status == "not ready"
    assert checks["sources reachable"]["status"] == "fail"
    assert (
        "1 source(s) unreachable in the last scan: manifests:staging"
        in (checks["sources reachable"]["reason"])
    )
    assert checks["documentation"]["status"] == "fail"
    assert "ranker@1.0.0 (training-date)" in checks["documentation"]["reason"]
    overview = create_app(
        Settings.from_env({}, database_url=sqlite_url, allow_anonymous=True)
    ).test_client()
    html = overview.get("/").get_data(as_text=True)
    assert "manifests:staging" in html and "1 unreachable" in html


def _log_check(db: Database, now: datetime | None = None) -> tuple[str, dict[str, str]]:
    """The report's readiness (it verifies the logs): the overall status and its log check."""
    verdict = readiness.assess(
        db, now or datetime.now(UTC), PolicyConfig(), log_integrity=chain.verify(db)
    )
    (check,) = [c for c in verdict["checks"] if c["name"] == "log integrity"]
    return verdict["status"], dict(check)


def test_an_empty_log_has_nothing_to_check_and_lowers_readiness_for_neither_log(
    sqlite_db: Database, engine: PolicyEngine, tmp_path: Path
) -> None:
    key = chain.generate_key()
    _, check = _log_check(sqlite_db)
    assert check == {
        "name": "log integrity",
        "status": "ok",
        "reason": "the decisions and approval_log logs are empty: nothing to check yet",
    }

    # the decision log recorded and signed, nothing signed off yet (approval source
    # `annotation`, or before the first sign-off): ready, the approval log not a warning
    admit(sqlite_db, "prod", _documented())
    snap = write_snapshot(tmp_path / "snap" / "prod", [_documented()])
    Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    status, check = _log_check(sqlite_db)
    assert (status, check["status"]) == ("at risk", "warn")  # the decisions are not signed
    assert check["reason"] == (
        "decisions intact up to entry 1; no signed checkpoint of the decisions log: run "
        "`modelgate log checkpoint`; the approval_log log is empty: nothing to check yet"
    )
    chain.checkpoint(sqlite_db, key, ["decisions"])
    status, check = _log_check(sqlite_db)
    assert (status, check["status"]) == ("ready", "ok"), check
    assert check["reason"] == (
        "decisions intact up to entry 1, with a signed checkpoint; "
        "the approval_log log is empty: nothing to check yet"
    )
    # the report's cover says the same of each log
    from auditor.report.render import integrity_lines

    verified = {"logs": chain.verify(sqlite_db)}
    texts = {line["text"].split(" ", 1)[0]: line for line in integrity_lines(verified)}
    assert texts["approval_log"]["ok"] is True
    assert texts["approval_log"]["text"] == (
        "approval_log log empty (nothing recorded yet): nothing to check"
    )
    assert texts["decisions"]["text"].startswith("decisions log intact up to entry 1")


def test_an_empty_decision_log_is_treated_like_an_empty_approval_log(
    sqlite_db: Database,
) -> None:
    sign_off(sqlite_db)  # approval-log entries, no admission decision yet
    n = len(ACTIONS)
    _, check = _log_check(sqlite_db)
    assert check["status"] == "warn"
    assert check["reason"] == (
        f"approval_log intact up to entry {n}; no signed checkpoint of the approval_log log: "
        "run `modelgate log checkpoint`; the decisions log is empty: nothing to check yet"
    )
    chain.checkpoint(sqlite_db, chain.generate_key(), ["approval_log"])
    _, check = _log_check(sqlite_db)
    assert check == {
        "name": "log integrity",
        "status": "ok",
        "reason": f"approval_log intact up to entry {n}, with a signed checkpoint; "
        "the decisions log is empty: nothing to check yet",
    }


def test_a_log_emptied_behind_its_head_is_not_nothing_to_check(sqlite_db: Database) -> None:
    sign_off(sqlite_db)
    tamper(sqlite_db, "DELETE FROM approval_log")
    status, check = _log_check(sqlite_db)
    assert (status, check["status"]) == ("not ready", "fail")
    assert check["reason"].startswith("the approval_log log does not verify, 1 problem(s)")
    assert "nothing to check" not in check["reason"]
