"""Every figure of the overview, the capacity page and its API, checked number by number on
an inventory built through the real Recorder and two real audit scans (tests/dashboard/
scenario.py), on SQLite and on real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient

from dashboard.capacity import response_schema
from modelgate.inventory.db import Database
from policies.engines import PolicyEngine
from tests.dashboard import scenario
from tests.dashboard.conftest import make_client

GIB = 2**30


@pytest.fixture
def client(db: Database, db_url: str, engine: PolicyEngine, tmp_path: Path) -> FlaskClient:
    scenario.build(db, engine, tmp_path)
    return make_client(db_url)[1]


def _card(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()


def _bars(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {r["label"]: r["count"] for r in rows}


def test_overview_counts_follow_the_scans(client: FlaskClient) -> None:
    o = client.get("/api/v1/overview").get_json()
    # churn was admitted but neither scan found it: not live; the orphan was never admitted;
    # the denied shadow-model is registered, waiting for review (a model without deployments)
    assert o["counts"] == {"models": 5, "versions": 5, "live_deployments": 3}
    html = client.get("/").get_data(as_text=True)
    assert _card(html, "count-models") == "5"
    assert _card(html, "count-versions") == "5"
    assert _card(html, "count-deployments") == "3"
    # the models page counts the same live deployments
    models = {m["name"]: m["deployments"] for m in client.get("/api/v1/models").get_json()}
    assert models == {
        "churn-predictor": 0,
        "credit-scorer": 1,
        "fraud-detector": 1,
        "llm-chat": 1,
        "shadow-model": 0,
    }
    assert sum(models.values()) == o["counts"]["live_deployments"]


def test_documentation_headline_is_the_required_fields(client: FlaskClient) -> None:
    """No deployed version lacks a required field, one lacks a recommended one (scorer has no
    ``source``): the headline reads 100 %, not 67 %."""
    docs = client.get("/api/v1/overview").get_json()["documentation"]
    assert (docs["live_versions"], docs["required_complete"], docs["required_percent"]) == (
        3,
        3,
        100,
    )
    assert (docs["complete"], docs["percent"], docs["missing_recommended"]) == (2, 67, 1)
    html = client.get("/").get_data(as_text=True)
    assert _card(html, "doc-required-percent") == "100%"
    assert _card(html, "doc-percent") == "67%"
    assert "lack a required one" not in html


def test_certification_readiness_and_findings_figures(client: FlaskClient) -> None:
    o = client.get("/api/v1/overview").get_json()
    assert (o["certifications"]["expired"], o["certifications"]["expiring"]) == (0, 1)
    # the second scan: orphan (rogue), drift (fraud's image), retired (churn), expiring cert
    assert o["open_findings"] == 4
    assert _bars(o["open_findings_latest_scan"]) == {
        "orphan": 1,
        "violation": 0,
        "drift": 1,
        "retired": 1,
        "expiring-certification": 1,
        "missing-metadata": 0,
        "unapproved": 0,  # the scenario judges the compliance-status annotation
        "expiring-approval": 0,
    }
    assert o["readiness"]["status"] == "not ready"
    html = client.get("/").get_data(as_text=True)
    assert _card(html, "count-open-findings") == "4"
    assert _card(html, "certs-expired") == "0"
    assert _card(html, "certs-expiring") == "1"
    assert "1 source," in html  # not "1 sources"
    assert "source(s), " not in html


def test_not_ready_model_is_flagged_on_the_overview(client: FlaskClient) -> None:
    o = client.get("/api/v1/overview").get_json()
    assert [
        (m["model"], [(d["name"], d["ready"], d["desired"]) for d in m["deployments"]])
        for m in o["not_ready"]
    ] == [("llm-chat", [("llm", 1, 2)])]
    html = client.get("/").get_data(as_text=True)
    assert _card(html, "count-not-ready") == "1"
    section = html.split('id="not-ready"', 1)[1].split("</section>", 1)[0]
    assert "llm-chat" in section and "1 / 2" in section
    assert "fraud-detector" not in section


def test_overview_capacity_figures(client: FlaskClient) -> None:
    cap = client.get("/api/v1/overview").get_json()["capacity"]
    # fraud 2x1 + llm 2x2 + rogue 1x1 GPUs; llm has one replica not ready: 2 idle GPUs
    assert (cap["gpus"], cap["idle_gpus"], cap["orphans"], cap["orphan_gpus"]) == (7, 2, 1, 1)
    assert cap["requests"]["cpu"] == pytest.approx(3.5)  # 7 replicas x 500m
    assert cap["requests"]["memory"] == 7 * GIB
    html = client.get("/").get_data(as_text=True)
    assert _card(html, "count-gpus") == "7"
    assert _card(html, "count-idle-gpus") == "2"
    times = "\N{MULTIPLICATION SIGN}"
    assert f"1 orphan (never admitted) hold 500m CPU · 1 GiB · 1 {times} nvidia.com/gpu" in html


def test_trends_count_decisions_findings_and_models(client: FlaskClient) -> None:
    o = client.get("/api/v1/overview").get_json()
    t = o["trends"]
    per_day = {p["label"]: p["values"] for p in t["decisions"]["points"]}
    assert len(per_day) == 14
    # 4 admissions (3, 2, 20 and 1 day(s) ago: 20 is outside the window), 1 denial, 1 warned
    assert sum(v["allowed"] for v in per_day.values()) == 3
    assert sum(v["denied"] for v in per_day.values()) == 1
    assert sum(v["warned"] for v in per_day.values()) == 1
    warned_day = (scenario.NOW - timedelta(hours=5)).astimezone(UTC).strftime("%d %b")
    assert per_day[warned_day]["warned"] == 1
    assert [p["values"]["open findings"] for p in t["findings"]["points"]] == [3, 4]
    weeks = t["models"]["points"]
    assert len(weeks) == 12 and sum(p["values"]["models"] for p in weeks) == 4
    # the last column is the week (Monday to Sunday, UTC) the overview was generated in
    generated = datetime.fromisoformat(o["generated_at"]).astimezone(UTC).date()
    monday = generated - timedelta(days=generated.weekday())
    created = [
        datetime.fromisoformat(client.get(f"/api/v1/models/{name}").get_json()["created_at"])
        for name in ("fraud-detector", "credit-scorer", "churn-predictor", "llm-chat")
    ]
    expected = sum(1 for c in created if c.astimezone(UTC).date() >= monday)
    assert weeks[-1]["label"] == monday.strftime("%d %b")
    assert weeks[-1]["values"]["models"] == expected
    html = client.get("/").get_data(as_text=True)
    for figure in ("trend-decisions", "trend-findings", "trend-models"):
        assert f'id="{figure}"' in html
    assert html.count('data-series="warned"') == 1
    assert 'data-series="denied" data-value="1"' in html


def test_capacity_api_rows_by_model_match_the_scan_and_the_schema(client: FlaskClient) -> None:
    body = client.get("/api/v1/capacity?group_by=model").get_json()
    jsonschema.validate(body, response_schema())
    rows = {r["key"]: r for r in body["rows"]}
    assert list(rows) == ["llm-chat", "fraud-detector", "rogue-llm", "credit-scorer"]
    llm = rows["llm-chat"]
    assert llm["replicas"] == {"desired": 2, "ready": 1}
    assert llm["requests"] == {"cpu": 1.0, "memory": 2 * GIB, "gpu": {"nvidia.com/gpu": 4}}
    assert llm["limits"] == {"cpu": 4.0, "memory": 8 * GIB, "gpu": {"nvidia.com/gpu": 4}}
    assert (llm["idle_gpus"], llm["usage"], llm["usage_reported"]) == (2, None, 0)
    assert set(llm["flags"]) == {"not-ready", "idle-gpu"}
    assert rows["rogue-llm"]["orphans"] == 1 and "orphan" in rows["rogue-llm"]["flags"]
    assert rows["credit-scorer"]["requests"]["gpu"] == {}
    assert body["totals"]["orphan_requests"]["gpu"] == {"nvidia.com/gpu": 1}
    assert [p["gpus"] for p in body["trend"]] == [7, 7]
    assert all(not r["stale"] for r in body["rows"])


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "owner",
            {
                "risk-ml@example.com": 2,
                "genai@example.com": 4,
                "someone@example.com": 1,
                "credit-team@example.com": 0,
            },
        ),
        ("namespace", {"prod/ml": 2, "prod/gen": 4, "prod/lab": 1}),
        ("cluster", {"prod": 7}),
    ],
)
def test_capacity_api_groups_by_owner_namespace_and_cluster(
    client: FlaskClient, group_by: str, expected: dict[str, int]
) -> None:
    body = client.get(f"/api/v1/capacity?group_by={group_by}").get_json()
    jsonschema.validate(body, response_schema())
    gpus = {r["key"]: sum(r["requests"]["gpu"].values()) for r in body["rows"]}
    assert gpus == expected
    assert sum(r["deployments"] for r in body["rows"]) == 4


@pytest.mark.parametrize("bad", ["bogus", "models", "1"])
def test_malformed_group_by_is_a_400_json_error(client: FlaskClient, bad: str) -> None:
    response = client.get(f"/api/v1/capacity?group_by={bad}")
    assert response.status_code == 400
    assert (
        "group_by must be one of model, owner, namespace, cluster" in response.get_json()["error"]
    )
    page = client.get(f"/capacity?group_by={bad}")
    assert page.status_code == 400 and "group_by must be one of" in page.get_data(as_text=True)


def test_capacity_page_shows_holders_orphans_and_the_trend(client: FlaskClient) -> None:
    html = client.get("/capacity").get_data(as_text=True)
    assert _card(html, "cap-gpus") == "7"
    assert _card(html, "cap-idle-gpus") == "2"
    assert _card(html, "cap-orphans") == "1"
    assert _card(html, "cap-cpu") == "3.5"
    assert _card(html, "cap-memory") == "7 GiB"
    holders = html.split('id="gpu-holders"', 1)[1].split("</section>", 1)[0]
    assert holders.index("prod/gen/Deployment/llm") < holders.index("prod/ml/Deployment/fraud")
    assert "(2 idle)" in holders
    orphans = html.split('id="orphans"', 1)[1].split("</section>", 1)[0]
    assert "prod/lab/Deployment/rogue" in orphans and "rogue-llm" in orphans
    trend = html.split('id="trend-table"', 1)[1].split("</table>", 1)[0]
    assert trend.count("<tr>") == 3  # header + two scans


def test_runtime_older_than_one_scan_interval_is_stale(
    db: Database, db_url: str, engine: PolicyEngine, tmp_path: Path
) -> None:
    scenario.build(db, engine, tmp_path)
    later = datetime.now(UTC) + timedelta(hours=2)
    _, client = make_client(db_url, clock=lambda: later, scan_interval_seconds=3600)
    body = client.get("/api/v1/capacity").get_json()
    assert body["scan_interval_seconds"] == 3600
    assert all(r["stale"] and "stale" in r["flags"] for r in body["rows"])
    assert client.get("/api/v1/overview").get_json()["capacity"]["stale"] == 4
    page = client.get("/models/fraud-detector").get_data(as_text=True)
    assert "b-stale" in page
    # within the interval nothing is stale
    _, fresh = make_client(db_url, scan_interval_seconds=86400)
    assert not any(r["stale"] for r in fresh.get("/api/v1/capacity").get_json()["rows"])


def test_overview_charts_follow_the_inventory(client: FlaskClient) -> None:
    o = client.get("/api/v1/overview").get_json()
    assert _bars(o["by_tier"]) == {"high": 1, "limited": 3, "minimal": 1}  # with shadow-model
    assert _bars(o["by_status"]) == {
        "approved": 3,
        "pending-review": 2,  # with the denied shadow-model, registered for review
        "rejected": 0,
        "exempt": 0,
    }
    assert {k: v for k, v in _bars(o["documentation"]["field_gaps"]).items() if v} == {"source": 1}
    assert [(g["model"], g["missing_recommended"]) for g in o["documentation"]["gaps"]] == [
        ("credit-scorer", ["source"])
    ]


def test_capacity_without_any_scan_is_empty_not_an_error(sqlite_url: str) -> None:
    client = make_client(sqlite_url)[1]
    body = client.get("/api/v1/capacity").get_json()
    jsonschema.validate(body, response_schema())
    assert (body["rows"], body["trend"], body["totals"]["deployments"]) == ([], [], 0)
    html = client.get("/capacity").get_data(as_text=True)
    assert "No scan has sampled the model workloads' resources yet" in html
    assert "No scan has sampled" in client.get("/").get_data(as_text=True)


def test_capacity_api_with_the_database_down_is_a_503_json_error() -> None:
    from tests.fixtures.tools import free_port

    client = make_client(f"postgresql://modelgate:pw@127.0.0.1:{free_port()}/none")[1]
    response = client.get("/api/v1/capacity?group_by=owner")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert "does not answer" in error and "pw@" not in error
    assert client.get("/capacity").status_code == 503
