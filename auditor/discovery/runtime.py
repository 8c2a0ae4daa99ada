"""Runtime metadata from a Kubernetes object (and, when known, its pods): replicas, images
and digests, summed resource requests/limits including GPUs, creation time, usage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from auditor.discovery.base import ImageStatus, RuntimeMetadata, empty_runtime
from modelgate.quantity import format_quantity, is_gpu_resource, parse_quantity
from modelgate.workload import Workload

__all__ = ["format_quantity", "parse_quantity", "runtime_from_object", "sum_resources"]


def sum_resources(containers: Iterable[Mapping[str, Any]]) -> tuple[dict[str, dict[str, str]], int]:
    """Summed requests/limits of the (non-init) containers and the GPU count."""
    totals: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for c in containers:
        if c.get("role") == "init" or str(c.get("role", "")).endswith("-init"):
            continue
        res = c.get("resources")
        if not isinstance(res, Mapping):
            continue
        for section in ("requests", "limits"):
            values = res.get(section)
            if not isinstance(values, Mapping):
                continue
            for name, raw in values.items():
                q = parse_quantity(raw)
                if q is None:
                    continue
                totals[section][str(name)] = totals[section].get(str(name), Decimal(0)) + q
    gpus = 0
    for name in sorted({*totals["limits"], *totals["requests"]}):
        if not is_gpu_resource(name):
            continue
        amount = max(
            totals["limits"].get(name, Decimal(0)), totals["requests"].get(name, Decimal(0))
        )
        gpus += int(amount)
    out = {
        section: {name: format_quantity(name, amount) for name, amount in sorted(values.items())}
        for section, values in totals.items()
        if values
    }
    return out, gpus


def digest_of(image_id: str, image: str = "") -> str:
    """``sha256:...`` from an imageID (``docker-pullable://repo@sha256:...``) or a pinned image."""
    for candidate in (image_id, image):
        if "@sha256:" in candidate:
            return "sha256:" + candidate.rsplit("@sha256:", 1)[1]
        if candidate.startswith("sha256:"):
            return candidate
    return ""


def image_statuses_of_pod(pod: Mapping[str, Any]) -> list[ImageStatus]:
    status = pod.get("status") if isinstance(pod.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    out: list[ImageStatus] = []
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            if not isinstance(cs, Mapping):
                continue
            image = str(cs.get("image") or "")
            image_id = str(cs.get("imageID") or "")
            out.append(
                ImageStatus(
                    container=str(cs.get("name") or ""),
                    image=image,
                    image_id=image_id,
                    digest=digest_of(image_id, image),
                )
            )
    return out


def restarts_of_pod(pod: Mapping[str, Any]) -> int | None:
    """Container restarts of a pod (``restartCount`` summed over its containers, init
    containers included); ``None`` when the pod reports no container status yet."""
    status = pod.get("status")
    if not isinstance(status, Mapping):
        return None
    total: int | None = None
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            if not isinstance(cs, Mapping):
                continue
            count = _int(cs.get("restartCount"))
            total = (total or 0) + (count or 0)
    return total


def pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status")
    if not isinstance(status, Mapping) or status.get("phase") != "Running":
        return False
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _replicas(obj: Mapping[str, Any], kind: str) -> tuple[int | None, int | None]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else None
    assert isinstance(spec, Mapping)
    desired: int | None = None
    ready: int | None = None
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        desired = _int(spec.get("replicas"))
        desired = 1 if desired is None and "replicas" not in spec else desired
        if status is not None:
            ready = _int(status.get("readyReplicas")) or 0
    elif kind == "DaemonSet":
        if status is not None:
            desired = _int(status.get("desiredNumberScheduled"))
            ready = _int(status.get("numberReady")) or 0
    elif kind == "Job":
        desired = _int(spec.get("parallelism"))
        desired = 1 if desired is None else desired
        if status is not None:
            ready = _int(status.get("ready")) or _int(status.get("active")) or 0
    elif kind == "Pod":
        desired = 1
        if status is not None:
            ready = 1 if pod_ready(obj) else 0
    elif kind == "SeldonDeployment":
        total = 0
        for p in spec.get("predictors") or []:
            if isinstance(p, Mapping):
                total += _int(p.get("replicas")) or 1
        desired = total or None
    elif kind == "InferenceService":
        pred = spec.get("predictor") if isinstance(spec.get("predictor"), Mapping) else {}
        assert isinstance(pred, Mapping)
        desired = _int(pred.get("minReplicas"))
        if status is not None:
            for cond in status.get("conditions") or []:
                if isinstance(cond, Mapping) and cond.get("type") == "Ready":
                    ready = (desired or 1) if cond.get("status") == "True" else 0
    return desired, ready


def runtime_from_object(obj: Mapping[str, Any], workload: Workload) -> RuntimeMetadata:
    """Runtime metadata readable from the object itself (its spec and status)."""
    rt = empty_runtime()
    rt["desired_replicas"], rt["ready_replicas"] = _replicas(obj, workload["kind"])
    rt["images"] = list(workload["images"])
    rt["resources"], rt["gpus"] = sum_resources(workload["containers"])  # type: ignore[arg-type]
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and meta.get("creationTimestamp"):
        rt["created"] = str(meta["creationTimestamp"])
    if workload["kind"] == "Pod":
        rt["image_statuses"] = image_statuses_of_pod(obj)
        rt["restarts"] = restarts_of_pod(obj)
    return rt
