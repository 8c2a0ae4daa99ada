"""modelgate.compliance and PolicyConfig: each rule has one home, and every room follows it.

The cross-room tests edit a copy of the bundle's data file (or build an inventory whose scan
finds fewer deployments than were admitted) and check that the webhook, the auditor, the
dashboard, the JSON export and the PDF report all agree."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from auditor.discovery import create_sources
from auditor.reconcile import Reconciler
from auditor.report.render import cert_state
from dashboard.app import create_app as create_dashboard
from modelgate.cli import main
from modelgate.compliance import (
    certification_state,
    documentation_gaps,
    is_live,
    is_recorded,
)
from modelgate.engine import engine_for
from modelgate.inventory import audit
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from policies.config import PolicyConfig
from tests.fixtures.inventory import admit, certs, deployment, metadata, write_snapshot
from tests.fixtures.tools import tool
from tests.policies.samples import copy_policies
from tests.webhook.fakes import FailingEngine, FakeRecorder
from tests.webhook.reviews import review
from webhook.app import create_app as create_webhook

TODAY = datetime.now(UTC).date()


def _days(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


def _bundle_with(tmp_path: Path, **data: Any) -> Path:
    policies = copy_policies(tmp_path)
    data_file = policies / "modelgate" / "config" / "data.yaml"
    doc = yaml.safe_load(data_file.read_text(encoding="utf-8"))
    doc.update(data)
    data_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return policies


def _pdf_text(path: Path) -> str:
    out = subprocess.run(
        [tool("pdftotext"), str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return " ".join(out.split())


# --- the rules ------------------------------------------------------------------------------


def test_certification_state_counts_the_expiry_day_as_valid_and_a_missing_date_as_unknown() -> None:
    today = date(2026, 6, 1)
    assert certification_state(date(2026, 5, 31), today, 30).state == "expired"
    assert certification_state(today, today, 30).state == "expiring"
    assert certification_state(date(2026, 7, 1), today, 30).state == "expiring"
    assert certification_state(date(2026, 7, 2), today, 30).state == "valid"
    assert certification_state(None, today, 30).state == "unknown"
    assert certification_state(date(2026, 5, 29), today, 30).days_left == -3


def test_the_report_calls_a_certification_without_expiry_unknown_like_the_dashboard() -> None:
    # the report used to call it "valid" while the dashboard said "unknown"
    assert cert_state(None, TODAY, 30) == "unknown"
    assert cert_state("", TODAY, 30) == "unknown"
    assert cert_state("not a date", TODAY, 30) == "unknown"
    assert cert_state(_days(10), TODAY, 30) == "expiring"
    assert cert_state(_days(10), TODAY, 5) == "valid"


def test_live_excludes_deployments_not_found_running_and_deleted_ones() -> None:
    assert is_live(None) and is_live("running")
    assert not is_live("not-running") and not is_live("deleted")
    assert is_recorded("not-running") and not is_recorded("deleted")


def test_certified_tiers_come_from_the_policy_data() -> None:
    md = {
        "model-name": "m",
        "model-version": "1",
        "owner": "o@example.com",
        "training-date": "2025-01-01",
        "training-data": "s3://d",
        "compliance-status": "approved",
        "risk-tier": "limited",
    }
    assert documentation_gaps(md, PolicyConfig()).missing_required == ()
    strict = PolicyConfig(certified_tiers=("limited", "high"))
    assert documentation_gaps(md, strict).missing_required == ("model-card", "certifications")


def test_severity_order_and_severity_per_type_are_policy_data(tmp_path: Path) -> None:
    policies = _bundle_with(
        tmp_path,
        finding_severities={"drift": "critical"},
        severities=["low", "medium", "high", "critical"],
    )
    config = PolicyConfig.load(policies)
    assert config.severity_of("drift") == "critical"
    assert config.severity_of("orphan") == "high"  # the shipped default for the others
    assert config.severity_rank("critical") > config.severity_rank("high")
    with pytest.raises(ValueError, match="unknown severity 'info'"):
        config.severity_rank("info")


# --- every room follows the bundle's certification window ------------------------------------


def test_an_edited_certification_window_changes_webhook_audit_dashboard_and_report(
    tmp_path: Path, sqlite_db: Database, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certification 60 days from expiry: inside a 90-day window, outside the shipped 30."""
    policies = _bundle_with(tmp_path, certification_warning_days=90)
    annotations = metadata(certifications=certs(("ISO-42001", _days(60))))
    obj = deployment("scorer", annotations=annotations)
    settings = Settings(policy_dir=policies, database_url=sqlite_url, approval_source="annotation")

    # the webhook's warning comes from the Rego rule reading the same data file
    engine = engine_for(settings)
    webhook = create_webhook(
        settings, engine=engine, recorder=FakeRecorder(), reload_in_background=False
    )
    answer = webhook.test_client().post("/validate", json=review(obj)).get_json()["response"]
    assert answer["allowed"] is True
    assert any("within 90 days" in w for w in answer.get("warnings", [])), answer

    # the auditor's finding
    admit(sqlite_db, "prod", obj, when=datetime.now(UTC) - timedelta(days=1))
    snapshot = write_snapshot(tmp_path / "snap" / "prod", [obj])
    config = PolicyConfig.load(policies)
    result = Reconciler(sqlite_db, engine, policy_data=config).scan(
        create_sources("manifests", {"paths": [snapshot]})
    )
    engine.close()
    found = {f["type"] for f in audit.scan_findings_of(sqlite_db, result.scan_id)}
    assert "expiring-certification" in found

    # the dashboard
    dashboard = create_dashboard(replace(settings, allow_anonymous=True))  # reads, not auth
    overview = dashboard.test_client().get("/api/v1/overview").get_json()
    assert overview["certifications"]["expiring"] == 1

    # the PDF report
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MODELGATE_POLICY_DIR", str(policies))
    pdf = tmp_path / "report.pdf"
    out = CliRunner().invoke(main, ["report", "--report", str(pdf)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert re.search(r"ISO-42001 \S+ expiring", _pdf_text(pdf)), _pdf_text(pdf)

    # and with the shipped 30-day window none of them flags it
    shipped = Settings(database_url=sqlite_url, allow_anonymous=True)
    quiet = create_dashboard(shipped).test_client().get("/api/v1/overview").get_json()
    assert quiet["certifications"]["expiring"] == 0


# --- one "live" count -----------------------------------------------------------------------


def test_one_live_count_in_the_dashboard_the_export_and_the_report(
    tmp_path: Path, sqlite_db: Database, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three admitted deployments; the scan finds two running: two are live everywhere."""
    admitted_at = datetime.now(UTC) - timedelta(days=2)
    objs = [
        deployment(name, annotations=metadata(model_name=f"model-{name}"))
        for name in ("a", "b", "c")
    ]
    for obj in objs:
        admit(sqlite_db, "prod", obj, when=admitted_at)
    snapshot = write_snapshot(tmp_path / "snap" / "prod", objs[:2])
    engine = engine_for(Settings())
    Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snapshot]}))
    engine.close()

    dashboard = create_dashboard(
        Settings(database_url=sqlite_url, allow_anonymous=True)
    ).test_client()
    assert dashboard.get("/api/v1/overview").get_json()["counts"]["live_deployments"] == 2
    models = {m["name"]: m for m in dashboard.get("/api/v1/models").get_json()}
    assert [models[f"model-{n}"]["deployments"] for n in "abc"] == [1, 1, 0]

    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    export, pdf = tmp_path / "audit.json", tmp_path / "audit.pdf"
    out = CliRunner().invoke(
        main, ["report", "--export", str(export), "--report", str(pdf)], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(export.read_text(encoding="utf-8"))
    assert doc["inventory"]["live_deployments"] == 2
    flags = [d["live"] for m in doc["models"] for v in m["versions"] for d in v["deployments"]]
    assert sorted(flags) == [False, True, True]
    assert "The inventory holds 3 models with 2 live deployments" in _pdf_text(pdf)


# --- "controlled": one rule for the webhook and the auditor -----------------------------------


def _owned_by_operator(obj: dict[str, Any]) -> dict[str, Any]:
    owned = json.loads(json.dumps(obj))
    owned["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "example.com/v1",
            "kind": "ModelServer",
            "name": "server",
            "uid": "1234",
            "controller": True,
        }
    ]
    return owned


def test_a_workload_owned_by_an_unsupported_operator_is_judged_by_webhook_and_audit(
    tmp_path: Path, sqlite_db: Database, engine: Any
) -> None:
    # undocumented: the webhook denies it, so the audit must report it too (it used to skip
    # every workload with any controller)
    obj = _owned_by_operator(deployment("op-model", annotations={}))
    settings = Settings()
    webhook = create_webhook(
        settings, engine=engine, recorder=FakeRecorder(), reload_in_background=False
    )
    answer = webhook.test_client().post("/validate", json=review(obj)).get_json()["response"]
    assert answer["allowed"] is False
    snapshot = write_snapshot(tmp_path / "snap" / "prod", [obj])
    result = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snapshot]}))
    names = {(f["name"], f["type"]) for f in audit.scan_findings_of(sqlite_db, result.scan_id)}
    assert ("op-model", "orphan") in names


def test_a_replicaset_of_a_deployment_is_judged_through_its_controller_in_both(
    tmp_path: Path, sqlite_db: Database, engine: Any
) -> None:
    rs = deployment("fraud-7d9f", annotations={})
    rs["kind"] = "ReplicaSet"
    rs["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud", "controller": True}
    ]
    webhook = create_webhook(
        Settings(), engine=engine, recorder=FakeRecorder(), reload_in_background=False
    )
    answer = webhook.test_client().post("/validate", json=review(rs)).get_json()["response"]
    assert answer["allowed"] is True  # not judged on its own
    snapshot = write_snapshot(tmp_path / "snap" / "prod", [rs])
    result = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snapshot]}))
    assert result.workloads == 0


# --- model kinds: the webhook follows the bundle -----------------------------------------------


def test_the_webhook_counts_a_bundles_model_kind_as_a_model_when_evaluation_fails() -> None:
    """With the engine failing, the decision log still says whether a model was refused: the
    kinds come from the serving bundle (they were hard-coded in the webhook)."""
    engine = FailingEngine(config=PolicyConfig(model_kinds=("Deployment",)))
    recorder = FakeRecorder()
    app = create_webhook(Settings(), engine=engine, recorder=recorder, reload_in_background=False)
    obj = deployment("plain", annotations={})
    obj["metadata"]["labels"] = {"app": "plain"}  # no model label
    answer = app.test_client().post("/validate", json=review(obj)).get_json()["response"]
    assert answer["allowed"] is False  # failure mode closed
    (event,) = recorder.events
    assert event.is_model is True and event.error is not None
