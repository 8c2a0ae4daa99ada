"""What a new user found wrong, each checked on the scenario's inventory and scans: findings
on model and version pages, links only to pages that exist, warn-mode decisions shown once,
the runtime table showing what runs, filters by cluster, namespace, severity and owner, and
human texts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from modelgate.inventory.db import Database
from policies.engines import PolicyEngine
from tests.dashboard import scenario
from tests.dashboard.conftest import make_client


@pytest.fixture
def client(
    sqlite_db: Database, sqlite_url: str, engine: PolicyEngine, tmp_path: Path
) -> FlaskClient:
    scenario.build(sqlite_db, engine, tmp_path)
    return make_client(sqlite_url)[1]


def _html(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:1000]
    return response.get_data(as_text=True)


def _section(html: str, element_id: str) -> str:
    return html.split(f'id="{element_id}"', 1)[1].split("</section>", 1)[0]


def test_model_page_shows_its_open_drift_finding_and_the_running_image(
    client: FlaskClient,
) -> None:
    detail = client.get("/api/v1/models/fraud-detector").get_json()
    assert [(f["type"], f["status"]) for f in detail["findings"]] == [("drift", "open")]
    assert detail["open_findings"] == 1
    version = detail["versions"][0]
    assert [f["type"] for f in version["findings"]] == ["drift"]
    dep = version["deployments"][0]
    assert dep["running_images"] == [scenario.FRAUD_DRIFTED]
    assert dep["admitted_images"] == [scenario.FRAUD_IMAGE]
    assert dep["images_drift"] is True
    assert (dep["desired"], dep["ready"], dep["not_ready"]) == (2, 2, False)

    html = _html(client, "/models/fraud-detector")
    findings = _section(html, "model-findings")
    assert "drift" in findings and scenario.FRAUD_DRIFTED in findings
    row = html.split('class="deployments"', 1)[1].split("</table>", 1)[0]
    running = row.split("running</span>", 1)[1].split("</div>", 1)[0]
    assert scenario.FRAUD_DRIFTED in running and scenario.FRAUD_IMAGE not in running
    assert "findings-1.0.0" in html  # the version's own findings table


def test_model_without_findings_says_so(client: FlaskClient) -> None:
    html = _html(client, "/models/llm-chat")
    assert "No audit finding about this model." in html
    assert "not ready" in html  # 1 of 2 replicas ready
    assert re.search(r'class="bad">1 / 2<', html)


def test_findings_link_their_model_only_when_the_inventory_holds_it(client: FlaskClient) -> None:
    html = _html(client, "/findings")
    assert 'href="/models/fraud-detector"' in html
    assert 'href="/models/credit-scorer"' in html
    assert 'href="/models/rogue-llm"' not in html  # the orphan's model was never admitted
    assert "rogue-llm" in html and "(not in the inventory)" in html
    for href in set(re.findall(r'href="(/models/[^"]+)"', html)):
        assert client.get(href).status_code == 200, href


def test_decisions_link_only_models_the_inventory_holds(client: FlaskClient) -> None:
    html = _html(client, "/decisions")
    # the denied shadow-model was registered for review by its denial: it has a page now
    assert 'href="/models/shadow-model"' in html
    assert "pending-review" in _html(client, "/models/shadow-model")
    for href in set(re.findall(r'href="(/models/[^"?]+)"', html)):
        assert client.get(href).status_code == 200, href


def test_warn_mode_decision_shows_its_violation_once(client: FlaskClient) -> None:
    html = _html(client, "/decisions")
    text = "compliance-status pending-review is not approved"
    assert html.count(text) == 1
    assert "not enforced (warn mode)" in html
    assert html.count("certification &#39;x&#39; expires soon") == 1
    model_page = _html(client, "/models/llm-chat")
    assert model_page.count(text) == 1
    api = client.get("/api/v1/decisions").get_json()["decisions"]
    warned = next(d for d in api if d["uid"] == "warn-llm")
    assert warned["enforced"] is False
    assert warned["advisories"] == ["certification 'x' expires soon"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("status=all", {"fraud", "scorer", "churn", "rogue"}),
        ("namespace=lab", {"rogue"}),
        ("cluster=prod&namespace=ml", {"fraud", "scorer"}),
        ("cluster=elsewhere", set()),
        ("severity=high", {"rogue"}),
        ("severity=medium", {"fraud", "scorer"}),
        ("owner=credit-team@example.com", {"scorer"}),
        ("owner=risk-ml@example.com", {"fraud"}),
    ],
)
def test_findings_filter_by_cluster_namespace_severity_and_owner(
    client: FlaskClient, query: str, names: set[str]
) -> None:
    found = client.get(f"/api/v1/findings?{query}").get_json()
    assert {f["name"] for f in found["findings"]} == names
    html = _html(client, f"/findings?{query}")
    for name in names:
        assert f"/{name}</td>" in html


def test_findings_filter_options_list_what_exists(client: FlaskClient) -> None:
    options = client.get("/api/v1/findings").get_json()["options"]
    assert options["clusters"] == ["prod"]
    assert options["namespaces"] == ["growth", "lab", "ml"]
    assert options["severities"][0] == "critical"
    assert "credit-team@example.com" in options["owners"]


@pytest.mark.parametrize("query", ["severity=urgent", "type=nonsense", "status=maybe"])
def test_malformed_finding_filters_are_400_json(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/findings?{query}")
    assert response.status_code == 400
    assert "must be" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("cluster=prod", {"fraud-detector", "credit-scorer", "llm-chat"}),
        ("namespace=gen", {"llm-chat"}),
        ("namespace=growth", set()),  # churn is admitted there but no longer live
        ("owner=growth@example.com", {"churn-predictor"}),
        ("owner=credit-team@example.com&cluster=prod", {"credit-scorer"}),
    ],
)
def test_models_filter_by_cluster_namespace_and_owner(
    client: FlaskClient, query: str, names: set[str]
) -> None:
    assert {m["name"] for m in client.get(f"/api/v1/models?{query}").get_json()} == names
    html = _html(client, f"/models?{query}")
    for name in names:
        assert f'href="/models/{name}"' in html


def test_certification_validity_reads_as_words(client: FlaskClient) -> None:
    html = _html(client, "/models/credit-scorer")
    assert "valid</span> for over 24 years" in html
    assert "expiring</span> in 10 days" in html
    assert not re.search(r"in \d{3,} days", html)
    assert "first admitted" in html and "last admitted" in html
    assert "1 version ·" in html  # not "1 version(s)"
