"""Reports end to end through the CLI: JSON export schema, CSV, and a PDF/A-3b report that
veraPDF accepts, whose text (pdftotext) names the models, finding types and digests, and whose
embedded attachment is byte-identical to the export."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.report.render import PackageOnlyFetcher, RefusedURL
from modelgate.cli import main
from modelgate.inventory.db import Database
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
from tests.fixtures.tools import free_port, tool

FINDING_KEYS = {
    "type",
    "severity",
    "status",
    "cluster",
    "namespace",
    "kind",
    "name",
    "model",
    "version",
    "message",
    "first_seen",
    "last_seen",
    "resolved_at",
    "details",
    "owner",
    "due",
    "overdue",
}


@pytest.fixture(autouse=True)
def _annotation_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """These reports judge the annotations; recorded sign-off: tests/auditor/test_signoff.py."""
    monkeypatch.setenv("MODELGATE_APPROVAL_SOURCE", "annotation")


@pytest.fixture
def scenario(
    tmp_path: Path, sqlite_db: Database, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("MODELGATE_POLICY_DIR", raising=False)
    admit(
        sqlite_db,
        "prod",
        deployment(
            "credit",
            image="registry.example.com/credit:3.2",
            annotations=metadata(
                model_name="credit-scorer",
                model_version="3.2",
                risk_tier="high",
                model_card="https://models.example.com/credit-scorer",
                certifications=certs(("ISO-42001", in_days(200))),
            ),
        ),
    )
    admit(
        sqlite_db,
        "prod",
        deployment(
            "legacy",
            image="registry.example.com/legacy:0.9",
            annotations=metadata(
                model_name="legacy-ranker",
                model_version="0.9",
                compliance_status="exempt",
                exempt_reason="decommissioning approved by the model-risk board",
            ),
        ),
    )
    deny(
        sqlite_db,
        "prod",
        deployment("rogue"),
        ['missing required annotation "modelgate.dev/owner"'],
    )
    return write_snapshot(
        tmp_path / "snapshots" / "prod",
        [
            namespace("ml"),
            deployment(
                "credit",
                image="registry.example.com/credit:3.3",
                annotations=metadata(
                    model_name="credit-scorer",
                    model_version="3.2",
                    risk_tier="high",
                    model_card="https://models.example.com/credit-scorer",
                    certifications=certs(("ISO-42001", in_days(200))),
                ),
            ),
            deployment(
                "rogue",
                image="vllm/vllm-openai:v0.6.3",
                annotations=metadata(model_name="rogue-llm", owner=None),
            ),
        ],
    )


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_audit_writes_export_csv_and_a_valid_pdfa_report(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        "audit",
        "--manifests",
        str(scenario),
        "--export",
        str(out / "audit.json"),
        "--csv",
        str(out / "csv"),
        "--report",
        str(out / "audit-{scan_id}.pdf"),
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "manifests:prod: ok" in result.output

    data = (out / "audit.json").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    doc = json.loads(data)
    assert set(doc) >= {"format", "generated_at", "scan", "models", "findings", "exemptions"}
    assert doc["scan"]["id"] == 1 and doc["scan"]["clusters"] == ["prod"]
    assert len(doc["scan"]["bundle_digest"]) == 64
    assert {m["name"] for m in doc["models"]} == {"credit-scorer", "legacy-ranker"}
    for f in doc["findings"]:
        assert set(f) == FINDING_KEYS
    types = {(f["name"], f["type"]) for f in doc["findings"]}
    assert types == {
        ("credit", "drift"),
        ("rogue", "orphan"),  # one finding: its violations and missing fields are inside
        ("legacy", "retired"),
    }
    assert doc["exemptions"][0]["reason"].startswith("decommissioning approved")
    assert doc["decisions"]["denied"] == 1

    with (out / "csv" / "findings.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["name"], r["type"]) for r in rows} == types

    pdf = out / "audit-1.pdf"
    assert f"export sha256 {digest}" in result.output
    check = subprocess.run(
        [tool("verapdf"), str(pdf)], capture_output=True, text=True, timeout=300, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PASS" in check.stdout

    text = subprocess.run(
        [tool("pdftotext"), "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(text.split())
    for needle in (
        "credit-scorer",
        "legacy-ranker",
        "rogue-llm",
        "orphan",
        "drift",
        "retired",
        digest,
        doc["scan"]["bundle_digest"],
        "decommissioning approved by the model-risk board",
        "Contents",
        "Page 2 of",
        "Deployments at runtime",
    ):
        assert needle in flat, needle

    # charts are vector graphics (no raster image in the file); fonts are the shipped ones,
    # embedded
    images = subprocess.run(
        [tool("pdfimages"), "-list", str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(images) == 2, images  # the two header lines only
    fonts = subprocess.run(
        [tool("pdffonts"), str(pdf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    assert fonts and all("+MG-" in line for line in fonts), fonts  # our @font-face families
    assert all(line.split()[-5] == "yes" for line in fonts), fonts  # the "emb" column

    detached = tmp_path / "detached"
    detached.mkdir()
    subprocess.run(
        [tool("pdfdetach"), "-saveall", "-o", str(detached), str(pdf)], check=True, timeout=60
    )
    assert (detached / "modelgate-audit.json").read_bytes() == data


def test_fail_on_severity_sets_the_exit_code(scenario: Path) -> None:
    assert _run("audit", "--manifests", str(scenario), "--fail-on", "high").exit_code == 1
    assert _run("audit", "--manifests", str(scenario), "--fail-on", "critical").exit_code == 0


def test_report_renders_an_earlier_scan(scenario: Path, tmp_path: Path) -> None:
    assert _run("audit", "--manifests", str(scenario)).exit_code == 0
    assert _run("audit", "--manifests", str(scenario)).exit_code == 0
    result = _run("report", "--scan", "1", "--export", str(tmp_path / "one.json"))
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))
    assert doc["scan"]["id"] == 1
    assert {f["type"] for f in doc["findings"]} >= {"orphan", "drift"}

    missing = _run("report", "--scan", "99", "--report", str(tmp_path / "x.pdf"))
    assert missing.exit_code == 2
    assert "no scan with id 99" in missing.output

    listed = _run("report", "--list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "STARTED", "(UTC)", "STATUS", "FINDINGS", "CLUSTERS"]
    assert [line.split()[0] for line in lines[1:]] == ["2", "1"]  # newest first
    assert lines[1].split()[3:] == ["completed", "3", "prod"]
    assert _run("report", "--list", "--limit", "1").output.count("completed") == 1
    both = _run("report", "--list", "--scan", "1")
    assert both.exit_code == 2 and "--list cannot be combined" in both.output


def test_bad_invocations_are_clear_errors(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    nothing = _run("audit")
    assert nothing.exit_code == 2 and "nothing to scan" in nothing.output
    bad_dir = _run("audit", "--manifests", str(tmp_path / "missing"))
    assert bad_dir.exit_code == 2
    bad_interval = _run("audit", "--manifests", str(tmp_path), "--interval", "soon")
    assert bad_interval.exit_code == 2 and "not a duration" in bad_interval.output
    both = _run("audit", "--manifests", str(tmp_path), "--interval", "1h", "--fail-on", "high")
    assert both.exit_code == 2 and "cannot be combined with --interval" in both.output
    no_output = _run("report")
    assert no_output.exit_code == 2 and "nothing to write" in no_output.output


def test_schema_missing_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    snap = write_snapshot(tmp_path / "c1", [deployment("m")])
    result = _run("audit", "--manifests", str(snap))
    assert result.exit_code == 3
    assert "modelgate db upgrade" in result.output


def test_renderer_refuses_network_and_foreign_files(tmp_path: Path) -> None:
    fetcher = PackageOnlyFetcher()
    with pytest.raises(RefusedURL):
        fetcher.fetch("https://example.com/logo.png")
    secret = tmp_path / "secret.txt"
    secret.write_text("x", encoding="utf-8")
    with pytest.raises(RefusedURL):
        fetcher.fetch(secret.as_uri())
    assert fetcher.refused == ["https://example.com/logo.png", secret.as_uri()]
    font = fetcher.root / "fonts" / "DejaVuSans.ttf"
    response = fetcher.fetch(font.as_uri())
    assert response is not None


def test_interval_loop_rescans_until_interrupted(
    scenario: Path, tmp_path: Path, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("auditor.cli.wait_between_scans", fake_sleep)
    result = _run(
        "audit",
        "--manifests",
        str(scenario),
        "--interval",
        "6h",
        "--export",
        str(tmp_path / "loop-{scan_id}.json"),
        "--no-progress",
    )
    assert result.exit_code == 130
    assert sleeps == [21600.0, 21600.0]
    assert sorted(p.name for p in tmp_path.glob("loop-*.json")) == ["loop-1.json", "loop-2.json"]
    second = json.loads((tmp_path / "loop-2.json").read_text(encoding="utf-8"))
    orphan = next(f for f in second["findings"] if f["type"] == "orphan")
    assert orphan["first_seen"] < orphan["last_seen"]


def test_progress_bar_goes_to_stderr(scenario: Path) -> None:
    result = CliRunner().invoke(main, ["audit", "--manifests", str(scenario), "--progress"])
    assert result.exit_code == 0, result.output
    assert "scanning" in result.stderr
    assert "scanning" not in result.stdout


def test_verapdf_wrapper_rejects_a_plain_pdf(tmp_path: Path) -> None:
    """The validator the report test relies on does fail non-archival PDFs."""
    import weasyprint

    plain = tmp_path / "plain.pdf"
    weasyprint.HTML(string="<p>not archival</p>").write_pdf(str(plain))
    check = subprocess.run(
        [tool("verapdf"), str(plain)], capture_output=True, text=True, timeout=300, check=False
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert check.stdout.startswith("FAIL")


def test_report_shows_an_unreachable_cluster_and_expiring_certifications(
    tmp_path: Path, sqlite_db: Database, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable cluster is named in the scan output, the export, sources.csv and the
    PDF (cover scope and the sources table); the rest of the scan is reported as usual."""
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    scorer = deployment(
        "scorer",
        annotations=metadata(
            model_name="credit-scorer",
            risk_tier="high",
            model_card="https://models.example.com/credit-scorer",
            certifications=certs(("ISO-42001", in_days(10))),
        ),
    )
    admit(sqlite_db, "prod", scorer)
    snap = write_snapshot(tmp_path / "snapshots" / "prod", [namespace("ml"), scorer])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "gone", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "staging", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "staging",
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = _run(
        "audit",
        "--manifests",
        str(snap),
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        "staging",
        "--report",
        str(out / "audit.pdf"),
        "--export",
        str(out / "audit.json"),
        "--csv",
        str(out / "csv"),
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "kubernetes:staging: UNREACHABLE" in result.output

    doc = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert doc["scan"]["clusters"] == ["prod", "staging"]
    assert doc["scan"]["summary"]["unreachable"] == ["kubernetes:staging"]
    assert [(f["name"], f["type"]) for f in doc["findings"]] == [
        ("scorer", "expiring-certification")
    ]
    with (out / "csv" / "sources.csv").open(encoding="utf-8") as fh:
        states = {r["name"]: r["status"] for r in csv.DictReader(fh)}
    assert states == {"manifests:prod": "ok", "kubernetes:staging": "unreachable"}
    assert "prod, staging (unreachable)" in _run("report", "--list").output

    text = subprocess.run(
        [tool("pdftotext"), "-layout", str(out / "audit.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(text.split())
    assert "kubernetes:staging (unreachable)" in flat  # the cover's scope
    assert "kubernetes staging unreachable: cluster staging is" in flat  # the sources table
    assert "expiring-certification" in flat
    assert "certification 'ISO-42001' expires on" in flat


def test_help_lists_finding_types_severities_and_exit_codes() -> None:
    from modelgate.compliance import FINDING_TYPES
    from policies.config import PolicyConfig

    SEVERITIES = PolicyConfig().severities

    audit_help = " ".join(_run("audit", "--help").output.split())
    for word in (*FINDING_TYPES, *SEVERITIES, "--interval", "--fail-on", "--page-size"):
        assert word in audit_help, word
    assert "Exit codes: 0 scan done" in audit_help
    assert "1 findings of the --fail-on severity or worse exist" in audit_help
    report_help = " ".join(_run("report", "--help").output.split())
    assert "--scan INTEGER Scan id (default: the latest scan)" in report_help
    assert "Exit codes: 0 written, 2 bad input or unknown scan" in report_help


def test_findings_resolved_by_a_scan_are_exported_and_reported(
    scenario: Path, tmp_path: Path
) -> None:
    assert _run("audit", "--manifests", str(scenario), "--no-progress").exit_code == 0
    # the rogue deployment is gone: its finding is resolved by the second scan
    for path in scenario.glob("*.yaml"):
        path.write_text(
            path.read_text(encoding="utf-8").replace("name: rogue", "name: rogue-gone"),
            encoding="utf-8",
        )
    out = tmp_path / "out"
    result = _run(
        "audit",
        "--manifests",
        str(scenario),
        "--export",
        str(out / "two.json"),
        "--report",
        str(out / "two.pdf"),
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "two.json").read_text(encoding="utf-8"))
    assert doc["scan"]["summary"]["resolved"] == 1
    resolved = {(f["name"], f["type"]) for f in doc["resolved"]}
    assert resolved == {("rogue", "orphan")}
    assert all(f["status"] == "resolved" and f["resolved_at"] for f in doc["resolved"])
    assert not any(f["name"] == "rogue" for f in doc["findings"])

    text = subprocess.run(
        [tool("pdftotext"), "-layout", str(out / "two.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(text.split())
    assert "Resolved by this scan (1)" in flat
    assert "Deployment rogue" in flat


def test_interval_loop_reloads_edited_policies_and_survives_a_failed_scan(
    tmp_path: Path, sqlite_db: Database, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between scans the loop picks up an edited bundle (digest and policy data), and a scan
    that fails after the first (database trouble) is reported while the loop goes on."""
    import shutil

    from modelgate.inventory import audit
    from modelgate.inventory.db import InventoryError
    from modelgate.settings import Settings

    bundle = tmp_path / "policies"
    shutil.copytree(Settings.from_env({}).policy_dir, bundle)
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MODELGATE_POLICY_DIR", str(bundle))
    scorer = deployment(
        "scorer", annotations=metadata(certifications=certs(("ISO-42001", in_days(60))))
    )
    admit(sqlite_db, "prod", scorer)
    snap = write_snapshot(tmp_path / "snapshots" / "prod", [namespace("ml"), scorer])

    data_file = bundle / "modelgate" / "config" / "data.yaml"
    real_start = audit.start_scan
    starts: list[int] = []

    def flaky_start(*args: Any, **kwargs: Any) -> int:
        starts.append(1)
        if len(starts) == 2:
            raise InventoryError("database postgresql://db/modelgate unavailable: timeout")
        return real_start(*args, **kwargs)

    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:  # the policy author widens the warning window
            text = data_file.read_text(encoding="utf-8")
            data_file.write_text(
                text.replace("certification_warning_days: 30", "certification_warning_days: 120"),
                encoding="utf-8",
            )
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("auditor.reconcile.audit.start_scan", flaky_start)
    monkeypatch.setattr("auditor.cli.wait_between_scans", fake_sleep)
    result = CliRunner().invoke(
        main,
        [
            "audit",
            "--manifests",
            str(snap),
            "--interval",
            "1h",
            "--export",
            str(tmp_path / "scan-{scan_id}.json"),
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 130, result.output
    assert "database postgresql://db/modelgate unavailable" in result.stderr
    assert "the scan failed; the loop goes on" in result.stderr
    assert "policy bundle reloaded" in result.stderr
    first = json.loads((tmp_path / "scan-1.json").read_text(encoding="utf-8"))
    second = json.loads((tmp_path / "scan-2.json").read_text(encoding="utf-8"))
    assert first["findings"] == []
    assert [f["type"] for f in second["findings"]] == ["expiring-certification"]
    assert second["scan"]["bundle_digest"] != first["scan"]["bundle_digest"]


def test_model_sections_show_runtime_replicas_digests_and_gpus() -> None:
    from auditor.report.render import runtime_rows

    digest = "sha256:" + "ab" * 32
    deployment_info = {
        "cluster": "prod",
        "namespace": "ml",
        "kind": "Deployment",
        "name": "scorer",
        "images": ["registry.example.com/scorer:2.0"],
        "replicas": 3,
        "ready_replicas": 2,
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "2"},
            "gpus": 2,
            "images": [
                {
                    "container": "server",
                    "image": "registry.example.com/scorer:2.0",
                    "image_id": f"registry.example.com/scorer@{digest}",
                    "digest": digest,
                }
            ],
            "usage": {"cpu": "250m", "memory": "900Mi"},
        },
        "status": "running",
        "last_seen": "2026-01-02T03:04:05+00:00",
    }
    never_scanned = {
        **deployment_info,
        "name": "old",
        "replicas": None,
        "resources": None,
        "status": None,
        "last_seen": None,
    }
    model = {
        "versions": [
            {"version": "1.0", "deployments": [never_scanned]},
            {"version": "2.0", "deployments": [deployment_info]},
        ]
    }
    old, row = runtime_rows(model)
    assert row["where"] == "prod/ml/Deployment/scorer" and row["version"] == "2.0"
    assert row["replicas"] == "2/3" and row["gpus"] == 2
    assert row["images"] == ["registry.example.com/scorer:2.0 (sha256:abababababab…)"]
    assert (row["cpu"], row["memory"]) == ("500m / 2", "1Gi / 4Gi")
    assert row["usage"] == "cpu 250m, memory 900Mi"
    assert row["last_seen"] == "2026-01-02 03:04 UTC"
    assert old["replicas"] == "—" and old["status"] == "admitted"
    assert old["images"] == ["registry.example.com/scorer:2.0"]
    assert old["last_seen"] == "never scanned" and old["gpus"] == "—"


def test_audit_exits_3_when_every_source_was_unreachable(scenario: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-snapshot"
    empty.mkdir()
    export = tmp_path / "out.json"
    result = CliRunner().invoke(
        main, ["audit", "--manifests", str(empty), "--export", str(export), "--no-progress"]
    )
    assert result.exit_code == 3, result.output
    assert "every source was unreachable" in result.output
    doc = json.loads(export.read_text(encoding="utf-8"))  # the scan is still recorded
    assert [s["status"] for s in doc["scan"]["sources"]] == ["unreachable"]
    # one reachable source among unreachable ones is a normal scan
    both = CliRunner().invoke(
        main, ["audit", "--manifests", str(empty), "--manifests", str(scenario), "--no-progress"]
    )
    assert both.exit_code == 0, both.output
