"""Inventory test helpers: a migrated database on each backend and admission events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from modelgate.events import AdmissionEvent
from modelgate.inventory import migrate
from modelgate.inventory.db import Database
from modelgate.workload import extract_workload

BACKENDS = ["sqlite", "postgres"]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (not migrated) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inventory.db'}"
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture
def db_url(empty_url: str) -> str:
    """A database migrated to head on each backend."""
    migrate.upgrade(empty_url)
    return empty_url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


def model_manifest(
    *,
    model: str = "fraud-detector",
    version: str = "1.2.0",
    name: str = "fraud-api",
    namespace: str = "risk",
    kind: str = "Deployment",
    image: str = "nvcr.io/nvidia/tritonserver:24.05-py3",
    **metadata: str,
) -> dict[str, Any]:
    annotations = {
        "modelgate.dev/model-name": model,
        "modelgate.dev/model-version": version,
        "modelgate.dev/owner": "risk-ml@example.com",
        "modelgate.dev/training-date": "2025-11-02",
        "modelgate.dev/training-data": "s3://data/transactions-2025q3, s3://data/chargebacks",
        "modelgate.dev/compliance-status": "approved",
        "modelgate.dev/risk-tier": "high",
        "modelgate.dev/model-card": "https://models.example.com/fraud/card",
        "modelgate.dev/certifications": json.dumps(
            [{"name": "iso-42001", "expires": "2027-03-01"}]
        ),
        "modelgate.dev/metrics": json.dumps({"auc": 0.94, "f1": 0.81}),
        "modelgate.dev/training-run": "https://mlflow.example.com/#/runs/abc123",
        "modelgate.dev/source": "https://git.example.com/risk/fraud@4f2a9c1",
    }
    for key, value in metadata.items():
        full = "modelgate.dev/" + key.replace("_", "-")
        if value is None:
            annotations.pop(full, None)
        else:
            annotations[full] = value
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"modelgate.dev/model": "true"},
            "annotations": annotations,
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "server", "image": image}]},
            }
        },
    }


EventFactory = Callable[..., AdmissionEvent]


@pytest.fixture
def make_event() -> EventFactory:
    counter = iter(range(1_000_000))

    def factory(
        manifest: dict[str, Any] | None = None,
        *,
        allowed: bool = True,
        is_model: bool = True,
        operation: str = "CREATE",
        cluster: str = "prod-eu",
        minutes: int | None = None,
        violations: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
        **manifest_kwargs: Any,
    ) -> AdmissionEvent:
        n = next(counter)
        manifest = manifest if manifest is not None else model_manifest(**manifest_kwargs)
        workload = extract_workload(manifest)
        return AdmissionEvent(
            time=T0 + timedelta(minutes=n if minutes is None else minutes),
            uid=f"uid-{n}",
            user="alice@example.com",
            operation=operation,
            cluster=cluster,
            kind=workload["kind"],
            namespace=workload["namespace"],
            name=workload["name"],
            allowed=allowed,
            is_model=is_model,
            violations=violations,
            warnings=warnings,
            enforcement="enforce",
            bundle_digest="sha256:feedface",
            engine="embedded",
            workload=workload,
        )

    return factory
