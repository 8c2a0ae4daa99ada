"""Audit readiness over real scans: a stale scan, an unreachable source, and a clean
inventory that is ready."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from auditor.discovery import create_sources
from auditor.reconcile import Reconciler
from dashboard.app import create_app
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from policies.engines import PolicyEngine
from tests.fixtures.inventory import admit, deployment, metadata, write_snapshot


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
