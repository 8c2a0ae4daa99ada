"""Resources and capacity of the model workloads, from what the audit scans saw: who holds how
many GPUs, CPU and memory requested against what is used, what orphans consume, and how it
changes from scan to scan. Pure functions over :class:`~modelgate.inventory.records.
CapacitySampleRecord` values (the dashboard, its API and the reports share them).

Definitions (each made here once):

- **requests / limits** of a workload are those of one replica (its non-init containers
  summed, as discovery reads them) times its *desired* replicas; a request a container does
  not set while it sets the limit takes the limit (Kubernetes' own defaulting). A source that
  reports no replica count counts as one replica. Units: CPU in cores, memory in bytes, GPUs
  as a count per resource name (``nvidia.com/gpu``, ``amd.com/gpu``, …).
- **usage** is what ``metrics.k8s.io`` reported for all pods of the workload; ``None`` where
  it reported nothing (no metrics-server, or no pod running).
- **idle GPUs**: the GPUs of replicas that are not ready, and every GPU of a workload whose
  pods use less than :data:`IDLE_CPU_SHARE` of the CPU they request (a model server that
  barely computes is not serving).
- **over-requested memory**: pods that use less than :data:`OVER_REQUEST_SHARE` of the memory
  requested for them.
- **stale**: runtime state seen longer ago than one scan interval (:func:`is_stale`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, TypedDict, get_args

from modelgate.inventory.records import (
    CapacitySampleRecord,
    ResourceAmounts,
    UsageAmounts,
)
from modelgate.quantity import bytes_of, cores, is_gpu_resource

GroupBy = Literal["model", "owner", "namespace", "cluster"]
#: the ``group_by`` values of the capacity page and ``GET /api/v1/capacity``
GROUP_BY: tuple[str, ...] = get_args(GroupBy)

#: below this share of its CPU request, a GPU workload counts as idle
IDLE_CPU_SHARE = 0.05
#: below this share of its memory request, a workload's memory counts as over-requested
OVER_REQUEST_SHARE = 0.5

FLAG_NOT_READY = "not-ready"
FLAG_IDLE_GPU = "idle-gpu"
FLAG_OVER_REQUESTED_MEMORY = "over-requested-memory"
FLAG_STALE = "stale"
FLAG_ORPHAN = "orphan"


class GroupByError(ValueError):
    """A ``group_by`` that is not one of :data:`GROUP_BY`."""


def parse_group_by(value: str | None) -> GroupBy:
    """``value`` as a :data:`GroupBy` (``model`` when empty); :class:`GroupByError` otherwise."""
    text = (value or "model").strip().lower()
    if text not in GROUP_BY:
        raise GroupByError(f"group_by must be one of {', '.join(GROUP_BY)}, not {value!r}")
    return text  # type: ignore[return-value]


# --- one replica, as the auditor stores it -------------------------------------------------


def zero() -> ResourceAmounts:
    return ResourceAmounts(cpu=0.0, memory=0, gpu={})


def pod_amounts(
    resources: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[ResourceAmounts, ResourceAmounts]:
    """Requests and limits of one replica from discovery's summed quantities
    (``{"requests": {"cpu": "500m", …}, "limits": {"nvidia.com/gpu": "1", …}}``), with
    Kubernetes' defaulting: a request left unset while its limit is set takes the limit."""
    resources = resources or {}
    raw_requests = dict(resources.get("requests") or {})
    raw_limits = dict(resources.get("limits") or {})
    for name, value in raw_limits.items():
        raw_requests.setdefault(name, value)
    return _amounts(raw_requests), _amounts(raw_limits)


def _amounts(values: Mapping[str, Any]) -> ResourceAmounts:
    out = zero()
    for name, raw in values.items():
        if name == "cpu":
            out["cpu"] = cores(raw) or 0.0
        elif name == "memory":
            out["memory"] = bytes_of(raw) or 0
        elif is_gpu_resource(str(name)):
            count = cores(raw)
            if count:
                out["gpu"][str(name)] = int(count)
    return out


def usage_amounts(usage: Mapping[str, Any] | None) -> UsageAmounts | None:
    """Discovery's usage (``{"cpu": "250m", "memory": "512Mi"}``) in cores and bytes."""
    if not usage:
        return None
    return UsageAmounts(
        cpu=cores(usage.get("cpu")) or 0.0, memory=bytes_of(usage.get("memory")) or 0
    )


def add(a: ResourceAmounts, b: ResourceAmounts, times: int = 1) -> ResourceAmounts:
    """``a + times * b``."""
    gpu = dict(a["gpu"])
    for name, count in b["gpu"].items():
        gpu[name] = gpu.get(name, 0) + times * count
    return ResourceAmounts(
        cpu=round(a["cpu"] + times * b["cpu"], 6), memory=a["memory"] + times * b["memory"], gpu=gpu
    )


def gpu_count(amounts: ResourceAmounts) -> int:
    return sum(amounts["gpu"].values())


def is_stale(seen_at: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether runtime state seen at ``seen_at`` is older than one scan ``interval``."""
    return seen_at is None or now - seen_at > interval


# --- one workload ---------------------------------------------------------------------------


class Replicas(TypedDict):
    desired: int
    ready: int | None  # None when the source reports no readiness (e.g. a manifests snapshot)


class WorkloadCapacity(TypedDict):
    """One sampled model workload with its totals and flags."""

    cluster: str
    namespace: str
    kind: str
    name: str
    model: str | None
    version: str | None
    owner: str
    registered: bool
    replicas: Replicas
    restarts: int | None
    requests: ResourceAmounts  # over desired replicas
    limits: ResourceAmounts  # over desired replicas
    usage: UsageAmounts | None
    idle_gpus: int
    last_seen: datetime
    stale: bool
    flags: list[str]


def desired_replicas(sample: CapacitySampleRecord) -> int:
    return sample["replicas"] if sample["replicas"] is not None else 1


def workload_capacity(
    sample: CapacitySampleRecord, now: datetime, interval: timedelta
) -> WorkloadCapacity:
    desired = desired_replicas(sample)
    ready = sample["ready_replicas"]
    requests = add(zero(), sample["requests"], desired)
    limits = add(zero(), sample["limits"], desired)
    usage = sample["usage"]
    per_replica_gpus = gpu_count(sample["requests"])
    idle = max(0, desired - ready) * per_replica_gpus if ready is not None else 0
    flags: list[str] = []
    if (
        usage is not None
        and requests["cpu"] > 0
        and gpu_count(requests)
        and usage["cpu"] < IDLE_CPU_SHARE * requests["cpu"]
    ):
        idle = gpu_count(requests)
    if ready is not None and ready < desired:
        flags.append(FLAG_NOT_READY)
    if idle:
        flags.append(FLAG_IDLE_GPU)
    if (
        usage is not None
        and requests["memory"] > 0
        and usage["memory"] < OVER_REQUEST_SHARE * requests["memory"]
    ):
        flags.append(FLAG_OVER_REQUESTED_MEMORY)
    if not sample["registered"]:
        flags.append(FLAG_ORPHAN)
    stale = is_stale(sample["seen_at"], now, interval)
    if stale:
        flags.append(FLAG_STALE)
    return WorkloadCapacity(
        cluster=sample["cluster"],
        namespace=sample["namespace"],
        kind=sample["kind"],
        name=sample["name"],
        model=sample["model"],
        version=sample["version"],
        owner=sample["owner"],
        registered=sample["registered"],
        replicas=Replicas(desired=desired, ready=ready),
        restarts=sample["restarts"],
        requests=requests,
        limits=limits,
        usage=usage,
        idle_gpus=idle,
        last_seen=sample["seen_at"],
        stale=stale,
        flags=flags,
    )


# --- groups ---------------------------------------------------------------------------------


class CapacityRow(TypedDict):
    """One row of ``GET /api/v1/capacity`` (see ``dashboard/schemas/capacity.json``)."""

    key: str | None  # the model, owner, ``cluster/namespace`` or cluster; None when unknown
    deployments: int
    orphans: int  # of them, never admitted to the inventory
    replicas: Replicas
    restarts: int | None
    requests: ResourceAmounts
    limits: ResourceAmounts
    usage: UsageAmounts | None  # summed over the deployments metrics.k8s.io reported
    usage_reported: int  # how many deployments that is
    idle_gpus: int
    last_seen: datetime
    stale: bool  # some deployment's state is older than one scan interval
    flags: list[str]


def group_key(w: WorkloadCapacity, group_by: GroupBy) -> str | None:
    if group_by == "model":
        return w["model"]
    if group_by == "owner":
        return w["owner"] or None
    if group_by == "namespace":
        return f"{w['cluster']}/{w['namespace']}"
    return w["cluster"]


def rows(workloads: Iterable[WorkloadCapacity], group_by: GroupBy) -> list[CapacityRow]:
    """``workloads`` summed per group, most GPUs first, then most CPU, then by key."""
    groups: dict[str | None, list[WorkloadCapacity]] = {}
    for w in workloads:
        groups.setdefault(group_key(w, group_by), []).append(w)
    out = [_row(key, members) for key, members in groups.items()]
    out.sort(key=lambda r: (-gpu_count(r["requests"]), -r["requests"]["cpu"], r["key"] or "~"))
    return out


def _row(key: str | None, members: list[WorkloadCapacity]) -> CapacityRow:
    requests = zero()
    limits = zero()
    usage: UsageAmounts | None = None
    reported = 0
    restarts: int | None = None
    desired = idle = 0
    ready: int | None = None
    flags: list[str] = []
    for w in members:
        requests = add(requests, w["requests"])
        limits = add(limits, w["limits"])
        desired += w["replicas"]["desired"]
        if w["replicas"]["ready"] is not None:
            ready = (ready or 0) + w["replicas"]["ready"]
        idle += w["idle_gpus"]
        if w["restarts"] is not None:
            restarts = (restarts or 0) + w["restarts"]
        if w["usage"] is not None:
            reported += 1
            usage = UsageAmounts(
                cpu=round((usage["cpu"] if usage else 0.0) + w["usage"]["cpu"], 6),
                memory=(usage["memory"] if usage else 0) + w["usage"]["memory"],
            )
        flags += [f for f in w["flags"] if f not in flags]
    return CapacityRow(
        key=key,
        deployments=len(members),
        orphans=sum(1 for w in members if not w["registered"]),
        replicas=Replicas(desired=desired, ready=ready),
        restarts=restarts,
        requests=requests,
        limits=limits,
        usage=usage,
        usage_reported=reported,
        idle_gpus=idle,
        last_seen=max(w["last_seen"] for w in members),
        stale=any(w["stale"] for w in members),
        flags=flags,
    )


class Totals(TypedDict):
    deployments: int
    orphans: int
    requests: ResourceAmounts
    limits: ResourceAmounts
    usage: UsageAmounts | None
    idle_gpus: int
    orphan_requests: ResourceAmounts  # what the orphans hold


def totals(workloads: Iterable[WorkloadCapacity]) -> Totals:
    listed = list(workloads)
    everything = _row(None, listed) if listed else None
    orphan_requests = zero()
    for w in listed:
        if not w["registered"]:
            orphan_requests = add(orphan_requests, w["requests"])
    return Totals(
        deployments=len(listed),
        orphans=sum(1 for w in listed if not w["registered"]),
        requests=everything["requests"] if everything else zero(),
        limits=everything["limits"] if everything else zero(),
        usage=everything["usage"] if everything else None,
        idle_gpus=everything["idle_gpus"] if everything else 0,
        orphan_requests=orphan_requests,
    )


# --- across scans ---------------------------------------------------------------------------


class TrendPoint(TypedDict):
    scan_id: int
    seen_at: datetime
    deployments: int
    gpus: int  # requested over desired replicas
    cpu: float  # cores requested
    memory: int  # bytes requested
    cpu_used: float | None
    memory_used: int | None


def trend(samples: Iterable[CapacitySampleRecord]) -> list[TrendPoint]:
    """One point per scan (oldest first): what the model workloads it saw requested and used."""
    points: dict[int, TrendPoint] = {}
    for s in samples:
        desired = desired_replicas(s)
        p = points.get(s["scan_id"])
        if p is None:
            p = points[s["scan_id"]] = TrendPoint(
                scan_id=s["scan_id"],
                seen_at=s["seen_at"],
                deployments=0,
                gpus=0,
                cpu=0.0,
                memory=0,
                cpu_used=None,
                memory_used=None,
            )
        p["deployments"] += 1
        p["gpus"] += desired * gpu_count(s["requests"])
        p["cpu"] = round(p["cpu"] + desired * s["requests"]["cpu"], 6)
        p["memory"] += desired * s["requests"]["memory"]
        p["seen_at"] = min(p["seen_at"], s["seen_at"])
        if s["usage"] is not None:
            p["cpu_used"] = round((p["cpu_used"] or 0.0) + s["usage"]["cpu"], 6)
            p["memory_used"] = (p["memory_used"] or 0) + s["usage"]["memory"]
    return [points[k] for k in sorted(points)]


# --- display --------------------------------------------------------------------------------


def format_cores(value: float) -> str:
    """``0.25`` -> ``250m``, ``2.0`` -> ``2``, ``1.5`` -> ``1.5``."""
    if value and value < 1:
        return f"{round(value * 1000)}m"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def format_bytes(value: int) -> str:
    """Binary units: ``1073741824`` -> ``1 GiB``, ``1610612736`` -> ``1.5 GiB``."""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            text = f"{amount:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        amount /= 1024
    return f"{value} B"  # pragma: no cover
