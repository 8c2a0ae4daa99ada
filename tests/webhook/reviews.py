"""Builders for AdmissionReview requests used by the webhook tests."""

from __future__ import annotations

import copy
import uuid
from typing import Any

COMPLETE = {
    "modelgate.dev/model-name": "fraud",
    "modelgate.dev/model-version": "1.2.0",
    "modelgate.dev/owner": "risk-ml@example.com",
}


#: The required annotations of a compliant limited-tier model.
P = "modelgate.dev/"
COMPLIANT = {
    P + "model-name": "fraud-detector",
    P + "model-version": "1.4.2",
    P + "owner": "risk-ml@example.com",
    P + "training-date": "2025-03-14",
    P + "training-data": "s3://datasets/fraud/2025-03.parquet",
    P + "compliance-status": "approved",
}


def deployment(
    name: str = "fraud",
    namespace: str | None = "ml",
    *,
    annotations: dict[str, str] | None = None,
    model: bool = True,
    image: str = "nvcr.io/nvidia/tritonserver:24.05-py3",
) -> dict[str, Any]:
    labels = {"app": name}
    if model:
        labels["modelgate.dev/model"] = "true"
    meta: dict[str, Any] = {"name": name, "labels": labels, "annotations": annotations or {}}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
        },
    }


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    namespace: str = "ml",
    uid: str | None = None,
    dry_run: bool = False,
    user: str = "alice@example.com",
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    source = obj if obj is not None else old or {}
    kind = source.get("kind", "Deployment")
    group, _, version = source.get("apiVersion", "apps/v1").rpartition("/")
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "name": source.get("metadata", {}).get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": copy.deepcopy(obj),
        "oldObject": copy.deepcopy(old),
        "dryRun": dry_run,
        "options": None,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
