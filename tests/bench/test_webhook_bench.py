"""Benchmark of the admission hot path: POST /validate with the embedded engine.

Run with ``make bench`` (``pytest -m benchmark tests/bench --benchmark-only``). The numbers
are for information; the assertions only check that every round produced a real decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pytest_benchmark.fixture import BenchmarkFixture

from modelgate.engine import engine_for
from modelgate.inventory.migrate import upgrade
from modelgate.inventory.recorder import Recorder
from modelgate.settings import Settings
from tests.webhook.reviews import COMPLIANT, deployment, review
from webhook.app import app_state, create_app

pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    workdir: Path = tmp_path_factory.mktemp("bench")
    url = f"sqlite:///{workdir / 'inventory.db'}"
    upgrade(url)
    settings = Settings(database_url=url, spool_dir=workdir / "spool", approval_source="annotation")
    app = create_app(
        settings,
        engine=engine_for(settings),
        recorder=Recorder(settings),
        reload_in_background=False,
    )
    yield app
    app_state(app).close()


def _bench(benchmark: BenchmarkFixture, app: Flask, body: dict[str, Any], path: str) -> Any:
    client = app.test_client()
    data = json.dumps(body).encode()

    def call() -> Any:
        resp = client.post(path, data=data, content_type="application/json")
        assert resp.status_code == 200
        return resp.get_json()["response"]

    return benchmark(call)


def test_bench_validate_allowed_model(benchmark: BenchmarkFixture, app: Flask) -> None:
    out = _bench(benchmark, app, review(deployment(annotations=COMPLIANT)), "/validate")
    assert out["allowed"] is True


def test_bench_validate_denied_model(benchmark: BenchmarkFixture, app: Flask) -> None:
    out = _bench(benchmark, app, review(deployment(annotations={})), "/validate")
    assert out["allowed"] is False
    assert out["status"]["message"].count("missing required annotation") == 6


def test_bench_validate_non_model_dry_run(benchmark: BenchmarkFixture, app: Flask) -> None:
    body = review(deployment("web", model=False, image="nginx:1.27"), dry_run=True)
    out = _bench(benchmark, app, body, "/validate")
    assert out["allowed"] is True
