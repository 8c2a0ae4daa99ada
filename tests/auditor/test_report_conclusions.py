"""The report concludes: a verdict with its reasons on the cover (the dashboard's readiness
checks, one implementation), the log verification result — and a broken chain in the
verdict —, the scope and method, an owner and a due date per finding (overdue ones stand
out), the changes since the previous scan and the evidence coverage; read back from the
PDF's text (pdftotext) and its embedded JSON (pdfdetach), the PDF still PDF/A-3b."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from auditor.discovery import create_sources
from auditor.reconcile import Reconciler
from dashboard.app import create_app
from modelgate.cli import main
from modelgate.identity import Identity
from modelgate.inventory import chain, signoff
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from policies.config import PolicyConfig
from policies.engines import PolicyEngine
from tests.fixtures.inventory import (
    admit,
    certs,
    deny,
    deployment,
    in_days,
    metadata,
    namespace,
    write_snapshot,
)
from tests.fixtures.tools import tool
from tests.inventory.test_chain import tamper

LONG_EMAIL = "model-risk-governance-team@bank.example.com"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def pdf_text(pdf: Path, layout: bool = True) -> str:
    args = [tool("pdftotext"), *(["-layout"] if layout else []), str(pdf), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def flat(text: str) -> str:
    """The text on one line; a word wrapped at its hyphen in a narrow cell is joined again."""
    return re.sub(r"(?<=\w-) (?=\w)", "", " ".join(text.split()))


def embedded(pdf: Path, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / f"detached-{pdf.stem}"
    out.mkdir()
    subprocess.run(
        [tool("pdfdetach"), "-saveall", "-o", str(out), str(pdf)], check=True, timeout=60
    )
    doc: dict[str, Any] = json.loads((out / "modelgate-audit.json").read_text("utf-8"))
    return doc


def verapdf_passes(pdf: Path) -> None:
    check = subprocess.run(
        [tool("verapdf"), str(pdf)], capture_output=True, text=True, timeout=300, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MODELGATE_* for the CLI: the test inventory and a checkpoint signing key."""
    for name in list(os.environ):
        if name.startswith("MODELGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    key = tmp_path / "log-signing.pem"
    key.write_bytes(chain.private_key_pem(chain.generate_key()))
    monkeypatch.setenv("MODELGATE_LOG_SIGNING_KEY_FILE", str(key))
    return key


def documented(
    name: str = "fraud", image: str = "registry.example.com/fraud:1.0.0", **overrides: str | None
) -> dict[str, Any]:
    fields: dict[str, str | None] = {
        "model_name": name,
        "model_card": f"https://models.example.com/{name}/card",
        "source": f"https://git.example.com/risk/{name}@4f2a9c1",
        "intended_purpose": "flag card transactions for review",
        "restrictions": "not for credit decisions",
        "limitations": "not validated on business accounts",
        "validation_date": "2025-06-01",
        "owner": LONG_EMAIL,
    }
    fields.update(overrides)
    return deployment(name, image=image, annotations=metadata(**fields))


APPROVER = Identity("model-risk@example.com", ("model-risk",))


def approve(db: Database, model: str = "fraud", version: str = "1.0.0") -> None:
    """A recorded approval by someone who is not the owner (the inventory approval source)."""
    today = datetime.now(UTC).date()
    signoff.record_approval(
        db,
        model=model,
        version=version,
        decision="approved",
        actor=APPROVER,
        reason="validated",
        evidence=["https://docs.example.com/validation/fraud"],
        expires=None,
        config=PolicyConfig(),
        today=today,
    )


def test_a_clean_inventory_is_ready_and_a_broken_chain_makes_the_report_say_so(
    env: Path, sqlite_db: Database, tmp_path: Path
) -> None:
    admit(sqlite_db, "prod", documented())
    approve(sqlite_db)  # recorded sign-off (the default approval source)
    snap = write_snapshot(tmp_path / "snap" / "prod", [namespace("ml"), documented()])
    assert run("log", "checkpoint").exit_code == 0
    fingerprint = chain.fingerprint(chain.load_private_key(env).public_key())

    ready = tmp_path / "ready.pdf"
    result = run("audit", "--manifests", str(snap), "--report", str(ready), "--no-progress")
    assert result.exit_code == 0, result.output
    cover = flat(pdf_text(ready).split("\f")[0])
    assert "VERDICT READY" in cover
    assert (
        "OK log integrity: decisions intact up to entry 1, approval_log intact up to entry 1, "
        "with signed checkpoints" in cover
    )
    assert "decisions log intact up to entry 1 (1 entries verified); checkpoint of entry 1" in cover
    # the approval is the approval log's one entry, recorded before the checkpoint
    assert "approval_log log intact up to entry 1 (1 entries verified); checkpoint of" in cover
    assert fingerprint in cover and "(the configured key)" in cover
    doc = embedded(ready, tmp_path)
    assert doc["readiness"]["status"] == "ready"
    assert {c["status"] for c in doc["readiness"]["checks"]} == {"ok"}
    assert doc["log_integrity"]["intact"] is True
    assert doc["log_integrity"]["key_fingerprint"] == fingerprint
    assert doc["log_integrity"]["public_key"] == chain.public_key_text(
        chain.load_private_key(env).public_key()
    )
    assert doc["log_integrity"]["public_key"] in flat(pdf_text(ready))  # printed in full

    # someone edits the decision log behind modelgate's back
    tamper(sqlite_db, "UPDATE decisions SET allowed = false WHERE seq = 1")
    broken = tmp_path / "broken.pdf"
    result = run("report", "--report", str(broken), "--no-progress")
    assert result.exit_code == 0, result.output
    cover = flat(pdf_text(broken).split("\f")[0])
    assert "VERDICT NOT READY" in cover
    assert (
        "FAIL log integrity: the decisions log does not verify, 1 problem(s): "
        "first at entry 1 (edited)" in cover
    )
    assert "decisions log BROKEN: 1 problem(s); first at entry 1: entry 1 was edited" in cover
    doc = embedded(broken, tmp_path)
    assert doc["readiness"]["status"] == "not ready"
    assert doc["log_integrity"]["intact"] is False
    log, approval_log = doc["log_integrity"]["logs"]
    assert (log["log"], approval_log["log"]) == ("decisions", "approval_log")
    assert approval_log["intact"] is True
    assert [(p["kind"], p["seq"]) for p in log["problems"]] == [("edited", 1)]
    integrity_page = flat(pdf_text(broken))
    assert "entry 1 — edited: entry 1 was edited" in integrity_page
    assert log["problems"][0]["expected"] in "".join(integrity_page.split())  # (wrapped)
    verapdf_passes(broken)


def test_scope_and_method(
    env: Path, sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_APPROVAL_SOURCE", "annotation")
    admit(sqlite_db, "prod", documented())
    snap = write_snapshot(
        tmp_path / "snap" / "prod",
        [
            namespace("ml"),
            namespace("lab", {"modelgate.dev/enforcement": "warn"}),
            namespace("sandbox", {"modelgate.dev/enforcement": "off"}),
            documented(),
            deployment("trial", "lab", annotations=metadata(model_name="trial")),
            deployment("toy", "sandbox", annotations=metadata(model_name="toy")),
        ],
    )
    missing = tmp_path / "snap" / "edge"
    missing.mkdir()  # an export directory without files: unreachable
    pdf = tmp_path / "scope.pdf"
    result = run(
        "audit", "--manifests", str(snap), "--manifests", str(missing),
        "--report", str(pdf), "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = embedded(pdf, tmp_path)
    scope = doc["scope"]
    assert scope["clusters"] == ["edge", "prod"]
    assert scope["unreachable"] == ["manifests:edge"]
    assert scope["enforcement"] == {
        "enforce": ["prod/ml"],
        "off": ["prod/sandbox"],
        "warn": ["prod/lab"],
    }
    assert scope["excluded_namespaces"] == ["prod/sandbox"]
    assert scope["bundle_digest"] == doc["scan"]["bundle_digest"] == scope["rules_digest"]
    assert scope["approval_source"] == "annotation"
    assert [r["package"] for r in scope["rules"]] == [
        "modelgate.admission",
        "modelgate.compliance",
        "modelgate.detection",
        "modelgate.enforcement",
        "modelgate.limits",
        "modelgate.metadata",
        "modelgate.risk",
    ]
    assert scope["window"]["scan_started"] == doc["scan"]["started_at"]
    text = flat(pdf_text(pdf))
    assert "Scope and method" in text
    assert "unreachable: manifests:edge (nothing there is judged" in text
    assert "enforce: prod/ml; off: prod/sandbox; warn: prod/lab" in text
    assert "prod/sandbox (label modelgate.dev/enforcement: off)" in text
    assert "annotation: the compliance-status annotation is trusted" in text
    assert "Rules applied (7)" in text
    for r in scope["rules"]:
        assert f"{r['title']} ({r['package']}):" in text  # one line per rule
    assert doc["scan"]["bundle_digest"] in text


def test_every_finding_has_an_owner_and_a_due_date_and_overdue_ones_stand_out(
    env: Path, sqlite_db: Database, tmp_path: Path, engine: PolicyEngine
) -> None:
    admit(sqlite_db, "prod", documented())
    approve(sqlite_db)
    drifted = documented(image="registry.example.com/fraud:9.9")
    snap = write_snapshot(
        tmp_path / "snap" / "prod",
        [
            namespace("shadow", {"modelgate.dev/owner": "ml-platform"}),
            namespace("ml"),
            drifted,
            deployment("rogue", "shadow", annotations=metadata(model_name="rogue", owner=None)),
        ],
    )
    # an earlier scan saw both 45 days ago: the high-severity orphan (30 days) is overdue,
    # the medium drift (90 days) is not
    long_ago = datetime.now(UTC) - timedelta(days=45)
    Reconciler(sqlite_db, engine, now=lambda: long_ago).scan(
        create_sources("manifests", {"paths": [snap]})
    )
    pdf = tmp_path / "owners.pdf"
    result = run("audit", "--manifests", str(snap), "--report", str(pdf), "--no-progress")
    assert result.exit_code == 0, result.output
    doc = embedded(pdf, tmp_path)
    found = {(f["name"], f["type"]): f for f in doc["findings"]}
    assert set(found) == {("rogue", "orphan"), ("fraud", "drift")}
    orphan, drift = found[("rogue", "orphan")], found[("fraud", "drift")]
    assert orphan["owner"] == "ml-platform" and drift["owner"] == LONG_EMAIL
    assert orphan["due"] == (long_ago.date() + timedelta(days=30)).isoformat()
    assert drift["due"] == (long_ago.date() + timedelta(days=90)).isoformat()
    assert orphan["overdue"] is True and drift["overdue"] is False
    assert doc["summary"]["overdue"] == 1
    assert [f["name"] for f in doc["summary"]["top_risks"]] == ["rogue", "fraud"]
    text = pdf_text(pdf)
    assert f"OVERDUE {orphan['due']}" in flat(text)
    assert "Top risks" in text
    # the accountable e-mail address is never broken in a narrow column
    assert LONG_EMAIL in text
    for line in text.splitlines():
        if "model-risk-gov" in line:
            assert LONG_EMAIL in line, line


def test_changes_since_the_previous_scan(
    env: Path, sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_APPROVAL_SOURCE", "annotation")  # about changes, not sign-off
    keeper = documented("keeper", model_version="1.0.0")
    going = documented("going")
    admit(sqlite_db, "prod", keeper)
    admit(sqlite_db, "prod", going)
    snap = tmp_path / "snap" / "prod"
    write_snapshot(
        snap, [namespace("ml"), keeper, going, deployment("stowaway", annotations=metadata())]
    )
    assert run("audit", "--manifests", str(snap), "--no-progress").exit_code == 0
    for f in snap.glob("*.yaml"):
        f.unlink()
    bumped = documented("keeper", model_version="2.0.0")
    admit(sqlite_db, "prod", bumped)
    admit(sqlite_db, "prod", documented("newcomer"))
    write_snapshot(
        snap,
        [
            namespace("ml"),
            bumped,
            documented("newcomer"),
            deployment("intruder", annotations=metadata(model_name="intruder")),
        ],
    )
    pdf = tmp_path / "changes.pdf"
    result = run("audit", "--manifests", str(snap), "--report", str(pdf), "--no-progress")
    assert result.exit_code == 0, result.output
    changes = embedded(pdf, tmp_path)["changes"]
    assert changes["previous_scan"]["id"] == 1
    assert sorted((f["type"], f["name"]) for f in changes["new"]) == [
        ("orphan", "intruder"),
        ("retired", "going"),
    ]
    assert [(f["type"], f["name"]) for f in changes["resolved"]] == [("orphan", "stowaway")]
    assert changes["still_open"] == []
    models = changes["models"]
    assert models["added"] == [
        {"cluster": "prod", "model": "intruder", "versions": ["1.0.0"]},
        {"cluster": "prod", "model": "newcomer", "versions": ["1.0.0"]},
    ]
    assert models["retired"] == [
        {"cluster": "prod", "model": "fraud-detector", "versions": ["1.0.0"]},
        {"cluster": "prod", "model": "going", "versions": ["1.0.0"]},
    ]
    assert models["reversioned"] == [
        {"cluster": "prod", "model": "keeper", "from": ["1.0.0"], "to": ["2.0.0"]}
    ]
    text = flat(pdf_text(pdf))
    assert "Changes since the previous scan" in text
    assert (
        "2 new findings, 1 resolved, 0 still open; models 2 added, 2 retired, 1 re-versioned"
        in text
    )
    cells = flat(pdf_text(pdf, layout=False))  # cell by cell, in reading order
    assert "new orphan prod/ml Deployment intruder" in cells
    assert "resolved orphan prod/ml Deployment stowaway" in cells
    assert "model added newcomer 1.0.0 (prod)" in cells
    assert "model retired going 1.0.0 (prod)" in cells
    assert "keeper 1.0.0 → 2.0.0 (prod)" in cells


def test_evidence_coverage_per_model_and_overall(
    env: Path, sqlite_db: Database, tmp_path: Path
) -> None:
    full = documented(
        "complete",
        risk_tier="high",
        certifications=certs(("SR 11-7 validation", in_days(300))),
    )
    bare = deployment("bare", annotations=metadata(model_name="bare", risk_tier=None, metrics=None))
    admit(sqlite_db, "prod", full)
    admit(sqlite_db, "prod", bare)
    snap = write_snapshot(tmp_path / "snap" / "prod", [namespace("ml"), full, bare])
    pdf = tmp_path / "coverage.pdf"
    result = run("audit", "--manifests", str(snap), "--report", str(pdf), "--no-progress")
    assert result.exit_code == 0, result.output
    coverage = embedded(pdf, tmp_path)["coverage"]
    rows = {m["model"]: m for m in coverage["models"]}
    assert set(rows) == {"complete", "bare"}
    complete, bare_row = rows["complete"]["items"], rows["bare"]["items"]
    for key in ("intended-purpose", "restrictions", "limitations", "validation-date", "metrics"):
        assert complete[key] is True and bare_row[key] is False, key
    assert complete["risk-tier"] is True and bare_row["risk-tier"] is False  # default is no tier
    assert complete["certifications"] is True and bare_row["certifications"] is None  # n/a
    assert complete["exceptions"] is None  # nothing exempt
    assert complete["approver"] is False  # no sign-off recorded in this inventory
    assert complete["logs"] is True and complete["change-log"] is True
    assert rows["complete"]["share"] == round(
        rows["complete"]["held"] / rows["complete"]["applicable"], 4
    )
    assert rows["bare"]["share"] < rows["complete"]["share"]
    by_key = {i["key"]: i for i in coverage["items"]}
    assert by_key["intended-purpose"]["held"] == 1 and by_key["intended-purpose"]["applicable"] == 2
    assert by_key["certifications"]["applicable"] == 1
    assert coverage["held"] == rows["complete"]["held"] + rows["bare"]["held"]
    text = flat(pdf_text(pdf))
    assert "Evidence coverage" in text
    assert f"Overall: {round(100 * coverage['share'])} %" in text
    cells = flat(pdf_text(pdf, layout=False))
    for item in coverage["items"]:
        assert item["title"] in cells
    assert "EU AI Act Annex IV §1(a)" in cells and "NIST AI RMF GOVERN 1.6" in cells


def test_short_chapters_share_pages(env: Path, sqlite_db: Database, tmp_path: Path) -> None:
    admit(sqlite_db, "prod", documented())
    approve(sqlite_db)
    deny(sqlite_db, "prod", deployment("rogue"), ["missing owner"])
    snap = write_snapshot(tmp_path / "snap" / "prod", [namespace("ml"), documented()])
    pdf = tmp_path / "layout.pdf"
    assert run("audit", "--manifests", str(snap), "--report", str(pdf)).exit_code == 0
    pages = pdf_text(pdf).split("\f")

    def page_of(heading: str) -> int:
        return next(n for n, p in enumerate(pages) if f"\n{heading}\n" in f"\n{p}")

    # one-row tables (one source, no finding, no exemption, two decisions) do not each take
    # a page: the short chapters follow one another
    assert page_of("Scan sources") == page_of("Inventory by risk tier")
    # (the model's approvals table can push the next chapter over a page break, never more)
    assert page_of("Findings") in (page_of("Exemptions"), page_of("Exemptions") - 1)
    assert page_of("Exemptions") == page_of("Admission decisions")
    assert len([p for p in pages if p.strip()]) <= 9


def test_the_report_and_the_dashboard_judge_readiness_alike(
    env: Path, sqlite_db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    admit(sqlite_db, "prod", documented(model_card=None))
    snap = write_snapshot(
        tmp_path / "snap" / "prod",
        [namespace("ml"), documented(model_card=None), deployment("rogue")],
    )
    export = tmp_path / "export.json"
    assert run("audit", "--manifests", str(snap), "--export", str(export)).exit_code == 0
    doc = json.loads(export.read_text("utf-8"))
    app = create_app(Settings.from_env({}, database_url=sqlite_url, allow_anonymous=True))
    dashboard = app.test_client().get("/api/v1/overview").get_json()["readiness"]
    report = {c["name"]: c["status"] for c in doc["readiness"]["checks"]}
    assert report.pop("log integrity") == "warn"  # the report also verifies the logs
    assert report == {c["name"]: c["status"] for c in dashboard["checks"]}
    assert dashboard["status"] == doc["readiness"]["status"] == "not ready"
