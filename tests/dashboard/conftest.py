"""Dashboard fixtures: an inventory seeded through the real Recorder and a real audit scan
(manifests snapshot reconciled by the auditor with the embedded policy engine)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from auditor.discovery import create_sources
from auditor.reconcile import Reconciler
from dashboard.app import create_app
from modelgate.identity.tokens import write_token_file
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from policies.engines import PolicyEngine
from tests.fixtures.inventory import (
    admit,
    certs,
    deny,
    deployment,
    in_days,
    metadata,
    write_snapshot,
)

NOW = datetime.now(UTC)


def seed_inventory(db: Database) -> None:
    """Three models in cluster prod:

    - fraud-detector 1.0.0, limited, approved, fully documented (model card, metrics, run,
      source), deployed as ``fraud`` in ns ``ml``;
    - credit-scorer 3.2, high, approved, certification ISO-42001 expiring in 10 days and
      EU-AI-Act expired 5 days ago, no source, deployed as ``scorer`` in ns ``ml``;
    - churn-predictor 2.0, minimal, pending-review, no model card, metrics, run or source,
      deployed as ``churn`` in ns ``growth``;
    plus a denied ``shadow`` in ns ``growth`` (owner missing).
    """
    admit(
        db,
        "prod",
        deployment(
            "fraud",
            annotations=metadata(
                model_card="https://models.example.com/fraud/card",
                source="https://git.example.com/risk/fraud@4f2a9c1",
            ),
        ),
        when=NOW - timedelta(days=3),
    )
    admit(
        db,
        "prod",
        deployment(
            "scorer",
            image="registry.example.com/scorer:3.2",
            annotations=metadata(
                model_name="credit-scorer",
                model_version="3.2",
                owner="credit-team@example.com",
                risk_tier="high",
                model_card="https://models.example.com/credit/card",
                training_data="s3://data/credit/bureau-2025.parquet",
                certifications=certs(("ISO-42001", in_days(10)), ("EU-AI-Act", in_days(-5))),
            ),
        ),
        when=NOW - timedelta(days=2),
    )
    admit(
        db,
        "prod",
        deployment(
            "churn",
            namespace="growth",
            image="registry.example.com/churn:2.0",
            annotations=metadata(
                model_name="churn-predictor",
                model_version="2.0",
                owner="growth@example.com",
                compliance_status="pending-review",
                risk_tier="minimal",
                training_data="s3://data/growth/events.parquet",
                training_run=None,
                metrics=None,
            ),
        ),
        when=NOW - timedelta(days=1),
    )
    deny(
        db,
        "prod",
        deployment("shadow", namespace="growth", annotations=metadata(owner=None)),
        ["missing required metadata: modelgate.dev/owner"],
    )


def run_scan(
    db: Database, engine: PolicyEngine, tmp_path: Path, *, with_rogue: bool = True
) -> None:
    """A snapshot of cluster prod: fraud and scorer as admitted, churn gone (retired), an
    orphan ``rogue-llm`` in ns ``lab`` never admitted (left out with ``with_rogue=False``)."""
    objects: list[dict[str, Any]] = [
        deployment(
            "fraud",
            annotations=metadata(
                model_card="https://models.example.com/fraud/card",
                source="https://git.example.com/risk/fraud@4f2a9c1",
            ),
        ),
        deployment(
            "scorer",
            image="registry.example.com/scorer:3.2",
            annotations=metadata(
                model_name="credit-scorer",
                model_version="3.2",
                owner="credit-team@example.com",
                risk_tier="high",
                model_card="https://models.example.com/credit/card",
                training_data="s3://data/credit/bureau-2025.parquet",
                certifications=certs(("ISO-42001", in_days(10)), ("EU-AI-Act", in_days(-5))),
            ),
        ),
        deployment(
            "rogue",
            namespace="lab",
            image="vllm/vllm-openai:v0.6.3",
            annotations=metadata(model_name="rogue-llm"),
        ),
    ]
    if not with_rogue:
        objects = objects[:2]
    snap = write_snapshot(tmp_path / ("prod" if with_rogue else "prod-again") / "prod", objects)
    Reconciler(db, engine).scan(create_sources("manifests", {"paths": [snap]}))


VIEWER_TOKEN = "dashboard-test-viewer-token"


def viewer_token_file() -> Path:
    """A token file with one viewer (group ``auditors``); the dashboard needs a caller."""
    path = Path(tempfile.mkdtemp(prefix="modelgate-tokens-")) / "tokens.csv"
    return write_token_file(path, [(VIEWER_TOKEN, "auditor@example.com", ["auditors"])])


def make_client(
    url: str, clock: Callable[[], datetime] | None = None, **settings: Any
) -> tuple[Flask, FlaskClient]:
    """The dashboard for ``url`` (with more ``settings``, and ``clock``); its test client
    sends a viewer's bearer token."""
    app = create_app(
        Settings.from_env(
            {},
            database_url=url,
            token_file=str(viewer_token_file()),
            role_groups="viewer=auditors",
            **settings,
        ),
        **({"clock": clock} if clock is not None else {}),
    )
    app.testing = True
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {VIEWER_TOKEN}"
    return app, client


@pytest.fixture
def empty_client(sqlite_url: str) -> FlaskClient:
    return make_client(sqlite_url)[1]


@pytest.fixture
def seeded_client(sqlite_db: Database, sqlite_url: str) -> FlaskClient:
    seed_inventory(sqlite_db)
    return make_client(sqlite_url)[1]


@pytest.fixture
def scanned_client(
    sqlite_db: Database, sqlite_url: str, engine: PolicyEngine, tmp_path: Path
) -> FlaskClient:
    seed_inventory(sqlite_db)
    run_scan(sqlite_db, engine, tmp_path)
    return make_client(sqlite_url)[1]
