"""One governance scenario for the numbers tests and the browser tests: an inventory recorded
through the real Recorder, then two real audit scans (manifests snapshots with workload status,
reconciled with the embedded policy engine) — every figure the dashboard shows follows from it.

Cluster ``prod``:

============  =========  ==================  =====  ==========  ======================
workload      namespace  model               tier   replicas    per replica
============  =========  ==================  =====  ==========  ======================
fraud         ml         fraud-detector 1.0  ltd    2, 2 ready  500m/1Gi req, 1 GPU
scorer        ml         credit-scorer 3.2   high   2, 2 ready  500m/1Gi req, no GPU
churn         growth     churn-predictor 2.0 min    (admitted; gone in both scans: retired)
llm           gen        llm-chat 0.9        ltd    2, 1 ready  500m/1Gi req, 2 GPUs
rogue         lab        rogue-llm (orphan)  -      1, 1 ready  500m/1Gi req, 1 GPU
============  =========  ==================  =====  ==========  ======================

Plus a denied ``shadow`` (model ``shadow-model``, never admitted) and a warn-mode admission
of ``llm`` (violation returned as warning). The second scan sees ``fraud`` running another
image than was admitted (drift).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from auditor.discovery import create_sources
from auditor.reconcile import Reconciler
from modelgate.events import AdmissionEvent
from modelgate.inventory.db import Database
from modelgate.inventory.recorder import Recorder
from modelgate.workload import extract_workload
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

#: the scenario's "now", set again by :func:`build` (the admissions are relative to it)
NOW = datetime.now(UTC)
CLUSTER = "prod"
FRAUD_IMAGE = "registry.example.com/fraud:1.0.0"
FRAUD_DRIFTED = "registry.example.com/fraud:1.0.1-hotfix"


def _fraud(image: str = FRAUD_IMAGE) -> dict[str, Any]:
    return deployment(
        "fraud",
        image=image,
        gpus=1,
        annotations=metadata(
            model_card="https://models.example.com/fraud/card",
            source="https://git.example.com/risk/fraud@4f2a9c1",
        ),
    )


def _scorer() -> dict[str, Any]:
    return deployment(
        "scorer",
        image="registry.example.com/scorer:3.2",
        annotations=metadata(
            model_name="credit-scorer",
            model_version="3.2",
            owner="credit-team@example.com",
            risk_tier="high",
            model_card="https://models.example.com/credit/card",
            training_data="s3://data/credit/bureau-2025.parquet",
            training_run="mlflow-run-77",
            certifications=certs(("ISO-42001", in_days(10)), ("EU-AI-Act", in_days(9000))),
        ),
    )


def _churn() -> dict[str, Any]:
    return deployment(
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
    )


def _llm() -> dict[str, Any]:
    return deployment(
        "llm",
        namespace="gen",
        image="vllm/vllm-openai:v0.6.3",
        gpus=2,
        annotations=metadata(
            model_name="llm-chat",
            model_version="0.9",
            owner="genai@example.com",
            training_data="s3://data/gen/corpus",
            training_run="mlflow-run-90",
            model_card="https://models.example.com/llm/card",
            source="https://git.example.com/gen/llm@1a2b3c4",
        ),
    )


def _rogue() -> dict[str, Any]:
    return deployment(
        "rogue",
        namespace="lab",
        image="vllm/vllm-openai:v0.6.3",
        replicas=1,
        gpus=1,
        annotations=metadata(model_name="rogue-llm", owner="someone@example.com"),
    )


def _with_status(obj: dict[str, Any], ready: int) -> dict[str, Any]:
    obj["status"] = {"replicas": obj["spec"]["replicas"], "readyReplicas": ready}
    return obj


def seed(db: Database) -> None:
    admit(db, CLUSTER, _fraud(), when=NOW - timedelta(days=3))
    admit(db, CLUSTER, _scorer(), when=NOW - timedelta(days=2))
    admit(db, CLUSTER, _churn(), when=NOW - timedelta(days=20))
    admit(db, CLUSTER, _llm(), when=NOW - timedelta(days=1))
    deny(
        db,
        CLUSTER,
        deployment("shadow", namespace="growth", annotations=metadata(model_name="shadow-model")),
        ["missing required metadata: modelgate.dev/owner"],
    )
    # a warn-mode UPDATE of llm: the violation comes back as a warning with the same text
    workload = extract_workload(_llm())
    Recorder(database=db).record(
        AdmissionEvent(
            time=NOW - timedelta(hours=5),
            uid="warn-llm",
            user="carol@example.com",
            operation="UPDATE",
            cluster=CLUSTER,
            kind="Deployment",
            namespace="gen",
            name="llm",
            allowed=True,
            is_model=True,
            violations=("compliance-status pending-review is not approved",),
            warnings=(
                "compliance-status pending-review is not approved",
                "certification 'x' expires soon",
            ),
            enforcement="warn",
            bundle_digest="seeded",
            engine="embedded",
            workload=workload,
        )
    )


def snapshot(fraud_image: str) -> list[dict[str, Any]]:
    return [
        _with_status(_fraud(fraud_image), 2),
        _with_status(_scorer(), 2),
        _with_status(_llm(), 1),
        _with_status(_rogue(), 1),
    ]


def scan(db: Database, engine: PolicyEngine, tmp_path: Path, fraud_image: str, n: int) -> None:
    snap = write_snapshot(tmp_path / f"scan-{n}" / CLUSTER, snapshot(fraud_image))
    Reconciler(db, engine).scan(create_sources("manifests", {"paths": [snap]}))


def build(db: Database, engine: PolicyEngine, tmp_path: Path) -> None:
    """The inventory and both scans."""
    global NOW
    NOW = datetime.now(UTC)
    seed(db)
    scan(db, engine, tmp_path, FRAUD_IMAGE, 1)
    scan(db, engine, tmp_path, FRAUD_DRIFTED, 2)
