"""Model health as the dashboard shows it: per deployment, desired vs ready replicas, restarts
(when the source reports pods), the images the last scan saw running against the admitted
ones, when it was last seen and whether that is older than one scan interval (stale).

Runtime facts come from what the auditor wrote onto the inventory's deployments
(:class:`~modelgate.inventory.records.DeploymentRecord` ``resources``); staleness is
:func:`modelgate.capacity.is_stale`, liveness :func:`modelgate.compliance.is_live`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypedDict

from modelgate.capacity import is_stale
from modelgate.compliance import RUNNING
from modelgate.inventory.records import DeploymentRecord, ModelRecord


class DeploymentHealth(TypedDict):
    cluster: str
    namespace: str
    kind: str
    name: str
    version: str | None
    status: str  # admitted (not scanned since) / running / not-running
    live: bool
    admitted_images: list[str]
    running_images: list[str] | None  # what the last scan saw; None before any scan
    images_drift: bool  # the scan saw other images than were admitted
    desired: int | None
    ready: int | None
    restarts: int | None
    not_ready: bool  # seen running with fewer ready replicas than desired (when reported)
    last_seen: datetime | None
    stale: bool  # seen, but longer ago than one scan interval


def deployment_health(d: DeploymentRecord, now: datetime, interval: timedelta) -> DeploymentHealth:
    resources: dict[str, Any] = d["resources"] or {}
    running = resources.get("running_images")
    running_images = [str(i) for i in running] if isinstance(running, list) else None
    restarts = resources.get("restarts")
    scanned = d["status"] == RUNNING
    # a source that reports no readiness (a manifests snapshot without status) proves nothing
    not_ready = (
        scanned
        and d["live"]
        and d["replicas"] is not None
        and d["ready_replicas"] is not None
        and d["ready_replicas"] < d["replicas"]
    )
    return DeploymentHealth(
        cluster=d["cluster"],
        namespace=d["namespace"],
        kind=d["kind"],
        name=d["name"],
        version=d["version"],
        status=d["status"] or "admitted",
        live=d["live"],
        admitted_images=list(d["images"]),
        running_images=running_images,
        images_drift=running_images is not None
        and bool(d["images"])
        and sorted(set(running_images)) != sorted(set(d["images"])),
        desired=d["replicas"],
        ready=d["ready_replicas"],
        restarts=restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else None,
        not_ready=bool(not_ready),
        last_seen=d["last_seen"],
        stale=d["last_seen"] is not None and d["live"] and is_stale(d["last_seen"], now, interval),
    )


class UnhealthyModel(TypedDict):
    model: str
    owner: str
    deployments: list[DeploymentHealth]  # the live ones that are not ready


def not_ready_models(
    models: Iterable[ModelRecord], now: datetime, interval: timedelta
) -> list[UnhealthyModel]:
    """Models with a live deployment the last scan saw with fewer ready replicas than desired."""
    out: list[UnhealthyModel] = []
    for m in models:
        bad = [
            h
            for v in m["versions"]
            for d in v["deployments"]
            if (h := deployment_health(d, now, interval))["not_ready"]
        ]
        if bad:
            out.append(UnhealthyModel(model=m["name"], owner=m["owner"], deployments=bad))
    return out
