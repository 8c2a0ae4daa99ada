"""Builders for model workloads, inventory seeding and scans used by the auditor tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from modelgate.events import AdmissionEvent
from modelgate.inventory.db import Database
from modelgate.inventory.recorder import Recorder
from modelgate.workload import extract_workload

TODAY = datetime.now(UTC).date()


def metadata(**overrides: str | None) -> dict[str, str]:
    """Complete, compliant modelgate.dev/* annotations (``None`` removes a key)."""
    md: dict[str, str | None] = {
        "model-name": "fraud-detector",
        "model-version": "1.0.0",
        "owner": "risk-ml@example.com",
        "training-date": "2025-03-14",
        "training-data": "s3://data/fraud/train.parquet,s3://data/fraud/labels.parquet",
        "compliance-status": "approved",
        "risk-tier": "limited",
        "training-run": "mlflow-run-42",
        "metrics": json.dumps({"auc": 0.93, "f1": 0.81}),
    }
    md.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return {f"modelgate.dev/{k}": v for k, v in md.items() if v is not None}


def deployment(
    name: str,
    namespace: str = "ml",
    *,
    image: str = "registry.example.com/fraud:1.0.0",
    annotations: Mapping[str, str] | None = None,
    model: bool = True,
    replicas: int = 2,
    gpus: int = 0,
) -> dict[str, Any]:
    labels = {"app": name}
    if model:
        labels["modelgate.dev/model"] = "true"
    limits: dict[str, Any] = {"cpu": "2", "memory": "4Gi"}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": limits,
                            },
                        }
                    ]
                },
            },
        },
    }


def namespace(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(labels or {})},
    }


def admit_event(
    cluster: str, obj: Mapping[str, Any], when: datetime | None = None
) -> AdmissionEvent:
    """An allowed CREATE of ``obj`` in ``cluster`` (what the webhook records)."""
    workload = extract_workload(obj)
    return AdmissionEvent(
        time=when or datetime.now(UTC) - timedelta(days=3),
        uid=f"uid-{cluster}-{workload['namespace']}-{workload['name']}",
        user="alice@example.com",
        operation="CREATE",
        cluster=cluster,
        kind=workload["kind"],
        namespace=workload["namespace"],
        name=workload["name"],
        allowed=True,
        is_model=True,
        bundle_digest="seeded",
        engine="embedded",
        workload=workload,
    )


def admit(db: Database, cluster: str, obj: Mapping[str, Any], when: datetime | None = None) -> None:
    """Record an allowed CREATE of ``obj`` in ``cluster`` synchronously."""
    Recorder(database=db).record(admit_event(cluster, obj, when))


def deny(db: Database, cluster: str, obj: Mapping[str, Any], violations: list[str]) -> None:
    workload = extract_workload(obj)
    Recorder(database=db).record(
        AdmissionEvent(
            time=datetime.now(UTC) - timedelta(days=1),
            uid=f"deny-{workload['name']}",
            user="bob@example.com",
            operation="CREATE",
            cluster=cluster,
            kind=workload["kind"],
            namespace=workload["namespace"],
            name=workload["name"],
            allowed=False,
            is_model=True,
            violations=tuple(violations),
            bundle_digest="seeded",
            engine="embedded",
            workload=workload,
        )
    )


def write_snapshot(directory: Path, objects: list[dict[str, Any]], per_file: int = 50) -> Path:
    """Write objects as multi-document YAML files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(objects), per_file):
        (directory / f"part-{i // per_file:04d}.yaml").write_text(
            yaml.safe_dump_all(objects[i : i + per_file], sort_keys=False), encoding="utf-8"
        )
    return directory


def in_days(days: int) -> str:
    return (TODAY + timedelta(days=days)).isoformat()


def certs(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"name": n, "expires": e} for n, e in pairs])


__all__ = ["TODAY", "date"]
