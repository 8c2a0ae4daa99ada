"""The dashboard's pages and JSON on a SQLite inventory seeded through the real Recorder and
a real audit scan: the numbers and names shown, filters, pagination and empty states."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from flask.testing import FlaskClient

from dashboard.app import create_app
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from policies import BUNDLE_DIR
from policies.engines import PolicyEngine
from tests.dashboard.conftest import make_client, run_scan, seed_inventory
from tests.fixtures.inventory import deny, deployment, metadata


def _text(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def _card(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1)


def _bars(svg_rows: list[dict[str, object]]) -> dict[object, object]:
    return {row["label"]: row["count"] for row in svg_rows}


def test_overview_shows_counts_charts_documentation_certificates_and_readiness(
    scanned_client: FlaskClient,
) -> None:
    data = scanned_client.get("/api/v1/overview").get_json()
    # the scan did not find churn running: live means running per the latest scan (or
    # admitted since), so 2 of the 3 recorded deployments are live
    assert data["counts"] == {"models": 3, "versions": 3, "live_deployments": 2}
    assert _bars(data["by_tier"]) == {"high": 1, "limited": 1, "minimal": 1}
    assert _bars(data["by_status"]) == {
        "approved": 2,
        "pending-review": 1,
        "rejected": 0,
        "exempt": 0,
    }
    docs = data["documentation"]
    assert (docs["live_versions"], docs["complete"], docs["percent"]) == (2, 1, 50)
    gaps = {(g["model"], tuple(g["missing_recommended"])) for g in docs["gaps"]}
    assert gaps == {("credit-scorer", ("source",))}
    assert (data["certifications"]["expired"], data["certifications"]["expiring"]) == (1, 1)
    assert _bars(data["open_findings_latest_scan"]) == {
        "orphan": 1,
        "violation": 0,
        "drift": 0,
        "retired": 1,
        "expiring-certification": 1,
        "missing-metadata": 0,
        "unapproved": 0,  # the scan judges the annotations (Reconciler's default)
        "expiring-approval": 0,
    }
    readiness = data["readiness"]
    assert readiness["status"] == "not ready"
    checks = {c["name"]: c for c in readiness["checks"]}
    assert checks["recent scan"]["status"] == "ok"
    assert checks["sources reachable"]["status"] == "ok"
    assert checks["high-severity findings"]["status"] == "fail"
    assert checks["undocumented orphans"]["status"] == "fail"
    assert "prod/lab/rogue" in checks["undocumented orphans"]["reason"]
    assert checks["certifications"]["status"] == "fail"
    assert "credit-scorer@3.2 EU-AI-Act" in checks["certifications"]["reason"]
    assert checks["documentation"]["status"] == "warn"

    html = _text(scanned_client, "/")
    assert _card(html, "count-models") == "3"
    assert _card(html, "count-versions") == "3"
    assert _card(html, "count-deployments") == "2"
    assert _card(html, "doc-percent") == "50%"
    assert _card(html, "certs-expired") == "1"
    assert _card(html, "certs-expiring") == "1"
    assert data["certifications"]["warning_days"] == 30  # the shipped bundle's window
    assert html.count("expiring within 30 days") == 3  # the card, readiness, the table
    assert _card(html, "readiness-status") == "not ready"
    assert "prod/lab/rogue" in html
    # tier, status, findings, field gaps; decisions per day, findings per scan, models per week
    assert html.count("<svg") == 7
    assert 'aria-label="Models by risk tier"' in html
    assert "EU-AI-Act" in html and "5 days ago" in html
    assert "ISO-42001" in html and "in 10 days" in html
    assert "https://" not in html.split("<body>")[0]  # no CDN: everything is served locally
    css = scanned_client.get("/static/dashboard.css")
    assert css.status_code == 200 and b"svg.bars" in css.data


def test_empty_inventory_shows_helpful_empty_states(empty_client: FlaskClient) -> None:
    html = _text(empty_client, "/")
    assert "The inventory is empty" in html
    assert _card(html, "count-models") == "0"
    assert _card(html, "doc-percent") == "—"
    assert "No audit scan recorded yet" in html
    # the reason's command is shown as code, not as literal backticks
    assert "no audit scan recorded: run <code>modelgate audit</code>" in html
    assert "`" not in html.replace("&#96;", "`")
    assert "holds no model yet" in _text(empty_client, "/models")
    assert "No admission decision recorded yet" in _text(empty_client, "/decisions")
    assert "No open finding" in _text(empty_client, "/findings")
    data = empty_client.get("/api/v1/overview").get_json()
    assert data["counts"] == {"models": 0, "versions": 0, "live_deployments": 0}
    assert data["scan"] is None and data["readiness"]["status"] == "not ready"
    checks = {c["name"]: c for c in data["readiness"]["checks"]}
    assert checks["recent scan"]["status"] == "fail"
    # nobody looked for orphans: not "ok"
    assert checks["undocumented orphans"]["status"] == "warn"
    assert checks["undocumented orphans"]["reason"].startswith("unknown: no audit scan")


def _names(client: FlaskClient, query: str) -> list[str]:
    return [m["name"] for m in client.get(f"/api/v1/models{query}").get_json()]


def test_models_search_by_name_owner_or_dataset_and_filter_by_tier_and_status(
    seeded_client: FlaskClient,
) -> None:
    assert _names(seeded_client, "") == ["churn-predictor", "credit-scorer", "fraud-detector"]
    assert _names(seeded_client, "?q=FRAUD") == ["fraud-detector"]  # name, any case
    assert _names(seeded_client, "?q=credit-team") == ["credit-scorer"]  # owner
    assert _names(seeded_client, "?q=bureau-2025") == ["credit-scorer"]  # dataset URI
    assert _names(seeded_client, "?q=data/growth") == ["churn-predictor"]
    assert _names(seeded_client, "?tier=minimal") == ["churn-predictor"]
    assert _names(seeded_client, "?status=pending-review") == ["churn-predictor"]
    assert _names(seeded_client, "?tier=high&status=approved") == ["credit-scorer"]
    assert _names(seeded_client, "?q=fraud&tier=high") == []

    html = _text(seeded_client, "/models?q=bureau-2025")
    assert "credit-scorer" in html and "fraud-detector" not in html
    assert "credit-team@example.com" in html
    assert "No model matches these filters" in _text(seeded_client, "/models?q=nothing-like-it")


def test_model_detail_shows_versions_lineage_certifications_and_decisions(
    seeded_client: FlaskClient,
) -> None:
    html = _text(seeded_client, "/models/credit-scorer")
    assert "s3://data/credit/bureau-2025.parquet" in html
    assert "mlflow-run-42" in html
    assert "prod/ml/Deployment/scorer" in html
    assert "registry.example.com/scorer:3.2" in html
    assert re.search(r"EU-AI-Act.*?expired</span> 5 days ago", html, re.S)
    assert re.search(r"ISO-42001.*?expiring</span> in 10 days", html, re.S)
    assert '<a href="https://models.example.com/credit/card"' in html
    assert "alice@example.com" in html  # the admitting user in recent decisions

    data = seeded_client.get("/api/v1/models/credit-scorer").get_json()
    assert [v["version"] for v in data["versions"]] == ["3.2"]
    edges = {(e["source_type"], e["source"], e["target_type"]) for e in data["lineage"]}
    assert ("dataset", "s3://data/credit/bureau-2025.parquet", "training_run") in edges
    assert ("training_run", "mlflow-run-42", "model_version") in edges
    assert ("model_version", "credit-scorer@3.2", "deployment") in edges
    states = {c["name"]: c["state"] for c in data["versions"][0]["certifications"]}
    assert states == {"EU-AI-Act": "expired", "ISO-42001": "expiring"}
    assert [d["allowed"] for d in data["decisions"]] == [True]

    missing = seeded_client.get("/models/no-such-model")
    assert missing.status_code == 404
    assert "no model named &#39;no-such-model&#39;" in missing.get_data(as_text=True)
    assert seeded_client.get("/api/v1/models/no-such-model").get_json() == {
        "error": "no model named 'no-such-model' in the inventory"
    }


def test_untrusted_links_and_markup_are_not_rendered_as_html(
    sqlite_db: Database, sqlite_url: str
) -> None:
    from tests.fixtures.inventory import admit

    admit(
        sqlite_db,
        "prod",
        deployment(
            "evil",
            annotations=metadata(
                model_name="evil-model",
                owner="<script>alert(1)</script>",
                model_card="javascript:alert(1)",
            ),
        ),
    )
    _, client = make_client(sqlite_url)
    html = _text(client, "/models/evil-model")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html


def test_decisions_filter_by_outcome_and_namespace_and_paginate(
    sqlite_db: Database, seeded_client: FlaskClient
) -> None:
    data = seeded_client.get("/api/v1/decisions").get_json()
    assert data["total"] == 4 and data["pages"] == 1
    assert data["namespaces"] == ["growth", "ml"]
    denied = seeded_client.get("/api/v1/decisions?decision=denied").get_json()
    assert [(d["name"], d["allowed"]) for d in denied["decisions"]] == [("shadow", False)]
    assert denied["decisions"][0]["violations"] == [
        "missing required metadata: modelgate.dev/owner"
    ]
    growth = seeded_client.get("/api/v1/decisions?namespace=growth").get_json()
    assert sorted(d["name"] for d in growth["decisions"]) == ["churn", "shadow"]
    allowed_growth = seeded_client.get("/api/v1/decisions?namespace=growth&decision=allowed")
    assert [d["name"] for d in allowed_growth.get_json()["decisions"]] == ["churn"]
    scorer = seeded_client.get("/api/v1/decisions?model=credit-scorer").get_json()
    assert [d["name"] for d in scorer["decisions"]] == ["scorer"] and scorer["total"] == 1
    assert 'href="/decisions?model=credit-scorer"' in _text(seeded_client, "/models/credit-scorer")

    for i in range(55):
        deny(sqlite_db, "prod", deployment(f"batch-{i:02d}", namespace="batch"), ["bad"])
    page1 = seeded_client.get("/api/v1/decisions?decision=denied").get_json()
    assert (page1["total"], page1["pages"], len(page1["decisions"])) == (56, 2, 50)
    page2 = seeded_client.get("/api/v1/decisions?decision=denied&page=2").get_json()
    assert len(page2["decisions"]) == 6
    seen = [d["name"] for d in page1["decisions"] + page2["decisions"]]
    assert len(set(seen)) == 56  # no row on both pages, none skipped

    html = _text(seeded_client, "/decisions?decision=denied&namespace=batch")
    assert "55 decisions · page 1 of 2" in html
    assert 'rel="next" href="?decision=denied&amp;namespace=batch&amp;page=2"' in html
    html2 = _text(seeded_client, "/decisions?decision=denied&namespace=batch&page=2")
    assert "page 2 of 2" in html2 and 'rel="prev"' in html2 and 'rel="next"' not in html2
    assert "past the end" in _text(seeded_client, "/decisions?page=9")
    assert "No decision matches" in _text(seeded_client, "/decisions?namespace=nowhere")


def test_bad_query_parameters_are_a_clear_400(seeded_client: FlaskClient) -> None:
    for path, message in (
        ("/decisions?page=abc", "page must be a positive integer, not &#39;abc&#39;"),
        ("/decisions?page=0", "page must be a positive integer"),
        ("/decisions?decision=maybe", "decision must be &#39;allowed&#39;, &#39;denied&#39;"),
        ("/findings?status=closed", "status must be &#39;open&#39;, &#39;resolved&#39;"),
    ):
        assert message in _text(seeded_client, path, status=400), path
    bad = seeded_client.get("/api/v1/decisions?page=-1")
    assert bad.status_code == 400
    assert bad.get_json() == {"error": "page must be a positive integer, not '-1'"}


def test_findings_page_filters_open_resolved_and_type(
    sqlite_db: Database,
    sqlite_url: str,
    engine: PolicyEngine,
    tmp_path: Path,
    seeded_client: FlaskClient,
) -> None:
    run_scan(sqlite_db, engine, tmp_path)
    open_ = seeded_client.get("/api/v1/findings").get_json()
    assert sorted((f["type"], f["name"]) for f in open_["findings"]) == [
        ("expiring-certification", "scorer"),
        ("orphan", "rogue"),
        ("retired", "churn"),
    ]
    assert open_["findings"][0]["severity"] == "high"  # worst first
    orphans = seeded_client.get("/api/v1/findings?type=orphan").get_json()["findings"]
    assert [(f["cluster"], f["namespace"], f["name"]) for f in orphans] == [
        ("prod", "lab", "rogue")
    ]
    assert "No finding matches these filters" in _text(seeded_client, "/findings?status=resolved")
    assert "past the end" in _text(seeded_client, "/findings?page=2")

    run_scan(sqlite_db, engine, tmp_path, with_rogue=False)  # the orphan is gone
    resolved = seeded_client.get("/api/v1/findings?status=resolved").get_json()["findings"]
    assert [(f["type"], f["name"]) for f in resolved] == [("orphan", "rogue")]
    assert resolved[0]["resolved_at"]
    html = _text(seeded_client, "/findings?status=all&type=orphan")
    assert "prod/lab/Deployment/rogue" in html and "resolved" in html
    readiness = seeded_client.get("/api/v1/overview").get_json()["readiness"]
    checks = {c["name"]: c["status"] for c in readiness["checks"]}
    assert checks["undocumented orphans"] == "ok"


def test_healthz_answers(seeded_client: FlaskClient) -> None:
    assert seeded_client.get("/healthz").get_json()["status"] == "ok"
    assert seeded_client.get("/readyz").get_json() == {"status": "ok", "database": "ok"}


def test_pages_forbid_scripts_framing_and_caching(seeded_client: FlaskClient) -> None:
    response = seeded_client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert "script-src" not in csp  # no script may run
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "<script" not in response.get_data(as_text=True)


def test_findings_are_paginated(sqlite_db: Database, seeded_client: FlaskClient) -> None:
    from datetime import UTC, datetime

    from modelgate.inventory import audit

    scan = audit.start_scan(sqlite_db)
    audit.record_findings(
        sqlite_db,
        scan,
        [
            audit.FindingInput(
                type="drift",
                severity="low" if i % 2 else "high",
                cluster="prod",
                namespace="ml",
                kind="Deployment",
                name=f"w-{i:03d}",
                model=None,
                version=None,
                message="images differ",
                details={},
            )
            for i in range(130)
        ],
        datetime.now(UTC),
    )
    first = seeded_client.get("/api/v1/findings").get_json()
    assert (first["total"], first["pages"], len(first["findings"])) == (130, 2, 100)
    assert {f["severity"] for f in first["findings"][:65]} == {"high"}  # worst first
    second = seeded_client.get("/api/v1/findings?page=2").get_json()
    assert len(second["findings"]) == 30
    names = {f["name"] for f in first["findings"] + second["findings"]}
    assert len(names) == 130
    html = _text(seeded_client, "/findings?type=drift")
    assert "130 findings · page 1 of 2" in html
    assert 'rel="next" href="?type=drift&amp;page=2"' in html


def test_the_certification_window_follows_the_policy_bundle(
    sqlite_db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    seed_inventory(sqlite_db)
    root = tmp_path / "policies"
    shutil.copytree(BUNDLE_DIR / "modelgate", root / "modelgate")
    data_file = root / "modelgate" / "config" / "data.yaml"
    data = yaml.safe_load(data_file.read_text(encoding="utf-8"))
    data["certification_warning_days"] = 7  # ISO-42001 expires in 10 days: no longer "expiring"
    data_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    app = create_app(
        Settings.from_env({}, database_url=sqlite_url, policy_dir=root, allow_anonymous=True)
    )
    data_out = app.test_client().get("/api/v1/models/credit-scorer").get_json()
    states = {c["name"]: c["state"] for c in data_out["versions"][0]["certifications"]}
    assert states == {"EU-AI-Act": "expired", "ISO-42001": "valid"}

    # the overview's words name the bundle's window, not the default one
    overview = app.test_client().get("/api/v1/overview").get_json()["certifications"]
    assert (overview["warning_days"], overview["expiring"]) == (7, 0)
    html = _text(app.test_client(), "/")
    assert _card(html, "certs-expiring") == "0"
    assert re.search(r'id="certs-expiring">0</span><span>expiring within 7 days<', html)
    assert "certifications expiring within 7 days, missing recommended" in " ".join(html.split())
    assert "<h2>Certifications expired or expiring within 7 days</h2>" in html
    assert "30 days" not in html
