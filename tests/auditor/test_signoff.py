"""The auditor with recorded sign-off (MODELGATE_APPROVAL_SOURCE=inventory, the default):
running versions without a current approval are ``unapproved`` (high), approvals about to
expire are ``expiring-approval``; the export and the PDF list each model's approvals (who,
when, evidence, expiry) and the recorded exemptions with who granted them."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelgate.cli import main
from modelgate.identity import Identity
from modelgate.inventory import signoff
from modelgate.inventory.db import Database
from policies.config import PolicyConfig
from tests.fixtures.inventory import admit, deployment, metadata, write_snapshot
from tests.fixtures.tools import tool

ALICE = Identity("risk-officer@example.com", ("model-risk",))
BOB = Identity("carol@example.com", ("model-risk",))
EVIDENCE = "https://docs.example.com/validation/credit-3.2"


def _objects() -> list[dict[str, Any]]:
    return [
        deployment("fraud", annotations=metadata()),
        deployment("credit", annotations=metadata(model_name="credit-scorer", model_version="3.2")),
        deployment("churn", annotations=metadata(model_name="churn", model_version="2.0")),
        deployment("rogue", namespace="lab", annotations=metadata(model_name="rogue-llm")),
    ]


@pytest.fixture
def scenario(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("MODELGATE_POLICY_DIR", raising=False)
    monkeypatch.delenv("MODELGATE_APPROVAL_SOURCE", raising=False)
    for obj in _objects()[:3]:
        admit(sqlite_db, "prod", obj)
    today = datetime.now(UTC).date()
    signoff.record_approval(
        sqlite_db,
        model="credit-scorer",
        version="3.2",
        decision="approved",
        actor=ALICE,
        reason="validated",
        evidence=[EVIDENCE],
        expires=(today + timedelta(days=10)).isoformat(),
        config=PolicyConfig(),
        today=today,
    )
    signoff.record_exemption(
        sqlite_db,
        model="churn",
        version="2.0",
        actor=BOB,
        reason="internal pilot, no customer data",
        expires=(today + timedelta(days=60)).isoformat(),
        today=today,
    )
    return write_snapshot(tmp_path / "snap" / "prod", _objects())


def test_unapproved_and_expiring_approvals_are_found_and_reported(
    scenario: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "audit",
            "--manifests",
            str(scenario),
            "--export",
            str(out / "audit.json"),
            "--report",
            str(out / "audit.pdf"),
            "--no-progress",
            "--fail-on",
            "high",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output  # unapproved is high
    doc = json.loads((out / "audit.json").read_text())
    found = {(f["name"], f["type"]): f for f in doc["findings"]}
    assert found[("fraud", "unapproved")]["severity"] == "high"
    assert "modelgate approve fraud-detector 1.0.0" in found[("fraud", "unapproved")]["message"]
    assert ("credit", "unapproved") not in found
    expiring = found[("credit", "expiring-approval")]
    assert expiring["severity"] == "medium"
    assert "the approval by risk-officer@example.com expires on" in expiring["message"]
    assert ("churn", "unapproved") not in found  # exempt
    assert ("rogue", "orphan") in found and ("rogue", "unapproved") not in found
    assert not any(t == "violation" and n in ("fraud", "credit") for n, t in found)

    credit = next(m for m in doc["models"] if m["name"] == "credit-scorer")
    assert [(a["approver"], a["evidence"], a["status"]) for a in credit["approvals"]] == [
        ("risk-officer@example.com", [EVIDENCE], "current")
    ]
    assert [(e["model"], e["granted_by"]) for e in doc["recorded_exemptions"]] == [
        ("churn", "carol@example.com")
    ]

    text = subprocess.run(
        [tool("pdftotext"), str(out / "audit.pdf"), "-"],  # reading order: cells stay whole
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(text.split())
    compact = "".join(text.split())  # table cells wrap long values over lines
    assert "Approvals" in flat
    assert "risk-officer@example.com" in compact and EVIDENCE in compact
    assert "Recorded exemptions" in flat and "carol@example.com" in compact
    assert "internalpilot,nocustomerdata" in compact
    assert "unapproved" in flat


def test_the_annotation_source_reports_no_sign_off_findings(
    scenario: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_APPROVAL_SOURCE", "annotation")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        main, ["audit", "--manifests", str(scenario), "--export", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    types = {f["type"] for f in json.loads(out.read_text())["findings"]}
    assert "unapproved" not in types and "expiring-approval" not in types
