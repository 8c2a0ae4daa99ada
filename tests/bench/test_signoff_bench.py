"""Benchmarks of recorded sign-off: how long an approval takes to reach the webhook's
snapshot on PostgreSQL (LISTEN/NOTIFY, polling practically off), and the admission hot path
with the snapshot (the lookup replaces nothing but adds no database round trip).

Run with ``make bench``; the numbers are for information (the README quotes them), the
assertions only check that every round really delivered the approval.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pytest_benchmark.fixture import BenchmarkFixture

from modelgate.engine import engine_for
from modelgate.identity import Identity
from modelgate.inventory import signoff
from modelgate.inventory.db import Database
from modelgate.inventory.migrate import upgrade
from modelgate.inventory.recorder import Recorder
from modelgate.inventory.registry import ApprovalRegistry
from modelgate.settings import Settings
from policies.config import PolicyConfig
from tests.webhook.reviews import COMPLIANT, deployment, review
from webhook.app import app_state, create_app

pytestmark = pytest.mark.benchmark

APPROVER = Identity("bench-approver@example.com", ("model-risk",))
OWNER = Identity("bench-owner@example.com", ("ml-eng",))
METADATA = {
    "owner": "bench-owner@example.com",
    "training-date": "2026-01-01",
    "training-data": "s3://bench/train.parquet",
}


@pytest.fixture(scope="module")
def registry(postgres_server: Any) -> Iterator[tuple[ApprovalRegistry, Database]]:
    name = postgres_server.create_database()
    url = postgres_server.url(name)
    upgrade(url)
    db = Database(url)
    reg = ApprovalRegistry(db, cluster="bench", refresh_seconds=3600).start()
    deadline = time.monotonic() + 30
    while not reg.status()["listening"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reg.status()["listening"]
    yield reg, db
    reg.close()
    db.dispose()


def test_approval_reaches_the_snapshot_by_notification(
    benchmark: BenchmarkFixture, registry: tuple[ApprovalRegistry, Database]
) -> None:
    reg, db = registry
    versions = (f"1.0.{n}" for n in itertools.count())
    latencies: list[float] = []

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        version = next(versions)
        signoff.register_version(
            db,
            model="bench-model",
            version=version,
            metadata=METADATA,
            actor=OWNER,
            config=PolicyConfig(),
        )
        return (version,), {}

    def approve_and_wait(version: str) -> None:
        started = time.perf_counter()
        signoff.record_approval(
            db,
            model="bench-model",
            version=version,
            decision="approved",
            actor=APPROVER,
            reason="bench",
            config=PolicyConfig(),
            today=datetime.now(UTC).date(),
        )
        deadline = time.monotonic() + 30
        while not reg.entry("bench-model", version)["approvals"]:
            assert time.monotonic() < deadline, "the approval never reached the snapshot"
            time.sleep(0.002)
        latencies.append(time.perf_counter() - started)

    benchmark.pedantic(approve_and_wait, setup=setup, rounds=15, iterations=1)
    latencies.sort()
    benchmark.extra_info["median_seconds"] = latencies[len(latencies) // 2]
    benchmark.extra_info["max_seconds"] = latencies[-1]


@pytest.fixture(scope="module")
def inventory_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    workdir: Path = tmp_path_factory.mktemp("bench-signoff")
    url = f"sqlite:///{workdir / 'inventory.db'}"
    upgrade(url)
    db = Database(url)
    signoff.register_version(
        db,
        model="fraud-detector",
        version="1.4.2",
        metadata=METADATA,
        actor=OWNER,
        config=PolicyConfig(),
    )
    signoff.record_approval(
        db,
        model="fraud-detector",
        version="1.4.2",
        decision="approved",
        actor=APPROVER,
        reason="bench",
        config=PolicyConfig(),
        today=datetime.now(UTC).date(),
    )
    db.dispose()
    settings = Settings(database_url=url, spool_dir=workdir / "spool")
    app = create_app(
        settings,
        engine=engine_for(settings),
        recorder=Recorder(settings),
        reload_in_background=False,
    )
    yield app
    app_state(app).close()


def test_admission_with_recorded_sign_off(
    benchmark: BenchmarkFixture, inventory_app: Flask
) -> None:
    client = inventory_app.test_client()
    body = json.dumps(review(deployment("fraud", annotations=COMPLIANT), dry_run=True)).encode()

    def call() -> Any:
        resp = client.post("/validate", data=body, content_type="application/json")
        assert resp.status_code == 200
        return resp.get_json()["response"]

    response = benchmark(call)
    assert response["allowed"] is True
