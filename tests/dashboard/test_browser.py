"""The dashboard in a real browser: headless Debian Chromium (Playwright) against the real
``modelgate dashboard`` process over the scenario's inventory and scans. Each page renders its
numbers, the filter forms work, every link of every page answers without a 4xx/5xx, the strict
CSP blocks nothing the pages need; screenshots are kept under the test's temporary
directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
import requests

from modelgate.inventory import migrate
from modelgate.inventory.db import Database
from policies.engines import PolicyEngine
from tests.dashboard import scenario
from tests.dashboard.conftest import VIEWER_TOKEN, viewer_token_file
from tests.fixtures.browser import serve_dashboard

VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
PAGES = ["/", "/models", "/decisions", "/findings", "/capacity", "/models/fraud-detector"]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, engine: PolicyEngine) -> Iterator[str]:
    work = tmp_path_factory.mktemp("browser-dashboard")
    url = f"sqlite:///{work / 'inventory.db'}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        scenario.build(db, engine, work)
    finally:
        db.dispose()
    env = {
        "MODELGATE_TOKEN_FILE": str(viewer_token_file()),
        "MODELGATE_ROLE_GROUPS": "viewer=auditors",
    }
    with serve_dashboard(url, work, env) as base:
        yield base


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    # every request carries a viewer's bearer token (sign-in itself: tests/dashboard/test_auth)
    p = chromium.new_page()
    p.set_extra_http_headers({"Authorization": f"Bearer {VIEWER_TOKEN}"})
    p.problems = []  # console errors and CSP violations, failed requests
    p.on("console", lambda m: p.problems.append(m.text) if m.type == "error" else None)
    p.on("requestfailed", lambda r: p.problems.append(f"failed: {r.url}"))
    p.on(
        "response",
        lambda r: p.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None,
    )
    yield p
    p.close()


def _open(page: Any, url: str, shots: Path, name: str) -> Any:
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    return response


def _text(page: Any, selector: str) -> str:
    return " ".join(str(page.locator(selector).first.text_content()).split())


def test_each_page_renders_its_numbers(page: Any, base_url: str, tmp_path: Path) -> None:
    overview = requests.get(f"{base_url}/api/v1/overview", headers=VIEWER, timeout=30).json()
    _open(page, f"{base_url}/", tmp_path, "overview")
    assert _text(page, "#count-models") == str(overview["counts"]["models"]) == "5"
    assert _text(page, "#count-deployments") == "3"
    assert _text(page, "#doc-required-percent") == "100%"
    assert _text(page, "#count-not-ready") == "1"
    assert _text(page, "#count-gpus") == "7"
    assert _text(page, "#count-idle-gpus") == "2"
    assert _text(page, "#readiness-status") == "not ready"
    assert page.locator("#trends svg").count() == 3
    assert "llm-chat" in _text(page, "#not-ready")

    _open(page, f"{base_url}/capacity", tmp_path, "capacity")
    assert _text(page, "#cap-gpus") == "7"
    assert _text(page, "#cap-orphans") == "1"
    first = page.locator("#capacity tbody tr").first
    assert first.get_attribute("data-key") == "llm-chat"
    assert "(2 idle)" in first.inner_text()

    _open(page, f"{base_url}/models/fraud-detector", tmp_path, "model")
    assert "drift" in _text(page, "#model-findings")
    assert scenario.FRAUD_DRIFTED in _text(page, "table.deployments")

    _open(page, f"{base_url}/findings", tmp_path, "findings")
    assert _text(page, "#finding-total") == "4 findings"
    _open(page, f"{base_url}/decisions", tmp_path, "decisions")
    assert _text(page, "#decision-total").startswith("6 decisions")
    assert not page.problems, page.problems


def test_filter_forms_narrow_the_tables(page: Any, base_url: str, tmp_path: Path) -> None:
    _open(page, f"{base_url}/findings", tmp_path, "findings-before")
    page.select_option("select[name=severity]", "high")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/findings?*severity=high*")
    page.screenshot(path=str(tmp_path / "findings-high.png"), full_page=True)
    rows = page.locator("#findings tbody tr")
    assert rows.count() == 1 and "prod/lab/Deployment/rogue" in rows.first.inner_text()

    page.select_option("select[name=severity]", "")
    page.select_option("select[name=namespace]", "ml")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**namespace=ml*")
    names = {r.inner_text().split("\t")[3] for r in page.locator("#findings tbody tr").all()}
    assert names == {"prod/ml/Deployment/fraud", "prod/ml/Deployment/scorer"}

    _open(page, f"{base_url}/models", tmp_path, "models-before")
    page.select_option("select[name=owner]", "genai@example.com")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**owner=genai*")
    assert [r.locator("td").first.inner_text() for r in page.locator("#models tbody tr").all()] == [
        "llm-chat"
    ]
    assert _text(page, "#model-total") == "1 model"

    _open(page, f"{base_url}/capacity", tmp_path, "capacity-before")
    page.select_option("select[name=group_by]", "namespace")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**group_by=namespace*")
    keys = [r.get_attribute("data-key") for r in page.locator("#capacity tbody tr").all()]
    assert keys == ["prod/gen", "prod/ml", "prod/lab"]

    _open(page, f"{base_url}/decisions", tmp_path, "decisions-before")
    page.select_option("select[name=decision]", "denied")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**decision=denied*")
    assert _text(page, "#decision-total").startswith("1 decision ")
    assert not page.problems, page.problems


def test_no_link_on_any_page_is_broken(page: Any, base_url: str, tmp_path: Path) -> None:
    """Crawl every same-origin link from every page (pages, filters, pagination, JSON) and
    require each to answer below 400."""
    origin = urlparse(base_url).netloc
    queue = [urljoin(base_url, p) for p in PAGES]
    seen: set[str] = set()
    statuses: dict[str, int] = {}
    while queue and len(seen) < 400:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        response = page.goto(url)
        assert response is not None
        statuses[url] = response.status
        if "text/html" not in (response.headers.get("content-type") or ""):
            continue
        if len(seen) <= len(PAGES):
            name = urlparse(url).path.strip("/").replace("/", "_") or "index"
            page.screenshot(path=str(tmp_path / f"crawl-{name}.png"), full_page=True)
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            target = urldefrag(str(href))[0]
            if urlparse(target).netloc == origin and target not in seen:
                queue.append(target)
    broken = {u: s for u, s in statuses.items() if s >= 400}
    assert not broken, broken
    assert len(statuses) >= 18, sorted(statuses)  # the crawl really went through the site
    visited = {urlparse(u).path for u in statuses}
    for path in (
        "/models/llm-chat",
        "/models/credit-scorer",
        "/api/v1/capacity",
        "/capacity",
        "/decisions",
    ):
        assert path in visited, sorted(visited)
    assert "/models/rogue-llm" not in visited  # an orphan: never admitted, never registered
    assert not page.problems, page.problems
