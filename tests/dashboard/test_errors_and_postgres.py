"""The dashboard when the database is down or not migrated (a 503 page, never a traceback),
and the same pages on a real PostgreSQL server."""

from __future__ import annotations

import socket
from pathlib import Path

from modelgate.inventory import migrate
from modelgate.inventory.db import Database
from policies.engines import PolicyEngine
from tests.dashboard.conftest import make_client, run_scan, seed_inventory


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_database_down_is_a_503_page_never_a_traceback() -> None:
    url = f"postgresql://auditor:s3cret-pw@127.0.0.1:{_closed_port()}/inventory"
    _, client = make_client(url)
    for path in ("/", "/models", "/models/fraud-detector", "/decisions", "/findings"):
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 503, path
        assert "Database unavailable" in html
        assert "127.0.0.1" in html and "s3cret-pw" not in html
        assert "Traceback" not in html and "OperationalError" not in html
    api = client.get("/api/v1/overview")
    assert api.status_code == 503
    assert api.headers["Retry-After"] == "10"
    assert "does not answer" in api.get_json()["error"]
    assert client.get("/healthz").status_code == 200  # the process itself is alive
    assert client.get("/readyz").status_code == 503


def test_unmigrated_database_says_to_run_db_upgrade(tmp_path: Path) -> None:
    (tmp_path / "blank.db").touch()  # an empty database: no tables
    _, client = make_client(f"sqlite:///{tmp_path / 'blank.db'}")
    response = client.get("/")
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "Inventory not initialised" in html
    assert "the inventory schema is missing" in html
    assert "run `modelgate db upgrade`" in html.replace("&#96;", "`")


def test_pages_on_real_postgresql(
    postgres_db_url: str, engine: PolicyEngine, tmp_path: Path
) -> None:
    migrate.upgrade(postgres_db_url)
    db = Database(postgres_db_url)
    try:
        seed_inventory(db)
        run_scan(db, engine, tmp_path)
        _, client = make_client(postgres_db_url)
        data = client.get("/api/v1/overview").get_json()
        # the scan did not find churn running: not live
        assert data["counts"] == {"models": 3, "versions": 3, "live_deployments": 2}
        assert data["documentation"]["percent"] == 50
        assert data["readiness"]["status"] == "not ready"
        models = client.get("/api/v1/models?q=Bureau-2025").get_json()
        assert [m["name"] for m in models] == ["credit-scorer"]
        html = client.get("/models/credit-scorer").get_data(as_text=True)
        assert "prod/ml/Deployment/scorer" in html and "EU-AI-Act" in html
        denied = client.get("/api/v1/decisions?decision=denied&namespace=growth").get_json()
        assert [d["name"] for d in denied["decisions"]] == ["shadow"]
        findings = client.get("/api/v1/findings?type=orphan").get_json()["findings"]
        assert [f["name"] for f in findings] == ["rogue"]
        assert client.get("/readyz").status_code == 200
    finally:
        db.dispose()


def test_missing_sqlite_file_is_reported_and_never_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    _, client = make_client(f"sqlite:///{path}")
    for url in ("/", "/api/v1/models", "/readyz"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert "does not exist" in response.get_data(as_text=True)
    assert client.get("/healthz").status_code == 200
    assert not path.exists()
