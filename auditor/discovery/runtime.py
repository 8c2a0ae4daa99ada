"""Runtime metadata from a Kubernetes object (and, when known, its pods): replicas, images
and digests, summed resource requests/limits including GPUs, creation time, usage."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from auditor.discovery.base import ImageStatus, RuntimeMetadata, empty_runtime
from modelgate.workload import Workload

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")

_SUFFIXES: dict[str, Decimal] = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]{0,2})\s*$")


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity as a number (``"500m"`` -> 0.5); ``None`` if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    m = _QUANTITY.match(str(value))
    if not m or m.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(m.group(1)) * _SUFFIXES[m.group(2)]
    except InvalidOperation:
        return None


def format_quantity(resource: str, amount: Decimal) -> str:
    """A readable quantity: CPU in millicores, memory in Mi/Gi, anything else as a number."""
    if resource == "cpu":
        milli = int((amount * 1000).to_integral_value())
        return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"
    if resource in ("memory", "ephemeral-storage"):
        b = int(amount)
        for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if b >= size and b % size == 0:
                return f"{b // size}{unit}"
        if b >= 2**20:
            return f"{(Decimal(b) / 2**20).quantize(Decimal('0.1'))}Mi"
        return str(b)
    return str(amount.normalize()) if amount == amount.to_integral_value() else str(amount)


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
    for name in GPU_RESOURCES:
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
    return rt
