"""The webhook app with the real embedded engine and the real recorder (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from modelgate.engine import engine_for
from modelgate.evaluate import evaluate_manifests, load_manifests
from modelgate.inventory import queries
from modelgate.inventory.db import Database
from modelgate.inventory.migrate import upgrade
from modelgate.inventory.recorder import Recorder
from modelgate.inventory.records import jsonable
from modelgate.settings import DEFAULT_POLICY_DIR, Settings
from tests.fixtures.inventory import summaries
from tests.fixtures.tools import free_port
from tests.webhook.reviews import COMPLIANT, P
from webhook.app import app_state, create_app

from .reviews import deployment, review

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "manifests"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICY_DIR / "modelgate", target / "modelgate")
    return target


def real_app(settings: Settings) -> Flask:
    engine = engine_for(settings)
    recorder = Recorder(settings)
    return create_app(settings, engine=engine, recorder=recorder, reload_in_background=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inventory.db'}"
    else:
        url = str(request.getfixturevalue("postgres_db_url"))
    upgrade(url)
    return url


@pytest.fixture
def app(database_url: str, policy_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    settings = Settings(
        database_url=database_url,
        policy_dir=policy_dir,
        cluster_name="unit",
        spool_dir=tmp_path / "spool",
        approval_source="annotation",  # recorded sign-off: tests/webhook/test_signoff.py
    )
    app = real_app(settings)
    yield app
    app_state(app).close()


def post(app: Flask, body: Any, path: str = "/validate") -> dict[str, Any]:
    resp = app.test_client().post(path, data=json.dumps(body), content_type="application/json")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()["response"]
    return out


def wait_for(fn: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_admitted_model_lands_in_the_inventory_and_denials_in_the_log(
    app: Flask, database_url: str
) -> None:
    ok = post(app, review(deployment("fraud", annotations=COMPLIANT), uid="ok-1", user="ann"))
    assert ok["allowed"] is True
    bad = post(app, review(deployment("fraud", annotations={}), uid="bad-1"))
    assert bad["allowed"] is False
    dry = post(app, review(deployment("fraud", annotations=COMPLIANT), uid="dry-1", dry_run=True))
    assert dry["allowed"] is True
    assert app_state(app).recorder.flush(10)  # type: ignore[attr-defined]
    db = Database(database_url)
    try:
        models = summaries(db)
        log = jsonable(queries.decisions(db, name="fraud", limit=None))
    finally:
        db.dispose()
    assert [(m["name"], m["version"], m["owner"], m["deployments"]) for m in models] == [
        ("fraud-detector", "1.4.2", "risk-ml@example.com", 1)
    ]
    assert {d["uid"]: d["allowed"] for d in log} == {"ok-1": True, "bad-1": False}
    ok_row = next(d for d in log if d["uid"] == "ok-1")
    assert (ok_row["user"], ok_row["cluster"], ok_row["engine"]) == ("ann", "unit", "embedded")
    assert ok_row["bundle_digest"] == app_state(app).engine.bundle_digest


def test_webhook_and_evaluate_agree_on_every_example(app: Flask) -> None:
    manifests = load_manifests([str(EXAMPLES)])
    offline = evaluate_manifests(manifests, app_state(app).engine)
    namespaces = {
        m.obj["metadata"]["name"]: (m.obj["metadata"].get("labels") or {}).get(P + "enforcement")
        for m in manifests
        if m.obj["kind"] == "Namespace"
    }
    compared = 0
    for m, expected in zip(manifests, offline, strict=True):
        if m.obj["kind"] == "Namespace":
            continue
        ns = m.obj["metadata"].get("namespace", "default")
        mode = namespaces.get(ns) or "enforce"
        path = "/validate" if mode == "enforce" else f"/validate/{mode}"
        got = post(app, review(m.obj, namespace=ns, dry_run=True), path)
        assert got["allowed"] is expected["allowed"], m.source
        if not got["allowed"]:
            message = got["status"]["message"]
            assert message.startswith(f"modelgate denied {m.obj['kind']} {ns}/")
            assert f"{len(expected['violations'])} problem" in message
            for v in expected["violations"]:
                assert v in message
        compared += 1
    assert compared >= 15


def test_edited_policy_takes_effect_and_a_broken_one_keeps_the_last_good(
    app: Flask, policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = app_state(app)
    body = review(deployment("fraud", annotations=COMPLIANT), dry_run=True)
    assert post(app, body)["allowed"] is True
    first_digest = state.engine.bundle_digest

    data = policy_dir / "modelgate" / "config" / "data.yaml"
    text = data.read_text()
    data.write_text(
        text.replace('  - "compliance-status"\n', '  - "compliance-status"\n  - "source"\n', 1)
    )
    assert state.reload_policies() is True
    denied = post(app, body)
    assert denied["allowed"] is False
    assert P + "source" in denied["status"]["message"]
    assert state.engine.bundle_digest != first_digest

    (policy_dir / "modelgate" / "broken.rego").write_text(
        "package modelgate.broken\n\nthis is not rego\n"
    )
    assert state.reload_policies() is False
    assert "last good bundle keeps serving" in caplog.text
    still = post(app, body)
    assert still["allowed"] is False and P + "source" in still["status"]["message"]
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'modelgate_policy_reloads_total{result="success"} 1.0' in metrics
    assert 'modelgate_policy_reloads_total{result="failure"} 1.0' in metrics
    assert app.test_client().get("/readyz").status_code == 200  # the last good bundle serves


def test_readyz_is_503_when_the_database_does_not_answer(policy_dir: Path, tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    app = real_app(
        Settings(
            database_url=url,
            policy_dir=policy_dir,
            spool_dir=tmp_path / "s",
            approval_source="annotation",
        )
    )
    try:
        resp = app.test_client().get("/readyz")
        assert resp.status_code == 503
        assert resp.get_json()["reasons"] == ["the inventory database does not answer"]
        # admission still answers while the database is down
        out = post(app, review(deployment("fraud", annotations=COMPLIANT)))
        assert out["allowed"] is True
    finally:
        started = time.monotonic()
        app_state(app).close(timeout=1)
        assert time.monotonic() - started < 5  # shutdown is bounded while the database is down


def test_readyz_is_503_without_a_policy_bundle(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    upgrade(url)
    app = real_app(
        Settings(database_url=url, policy_dir=tmp_path / "missing", approval_source="annotation")
    )
    try:
        resp = app.test_client().get("/readyz")
        assert resp.status_code == 503
        (reason,) = resp.get_json()["reasons"]
        assert reason.startswith("no policy bundle is loaded") and "does not exist" in reason
        out = post(app, review(deployment("fraud", annotations=COMPLIANT)))
        assert out["allowed"] is False  # failure mode closed
        assert "could not evaluate the policy" in out["status"]["message"]
    finally:
        app_state(app).close()
