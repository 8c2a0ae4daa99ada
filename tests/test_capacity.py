"""Quantities (modelgate.quantity) and the capacity rules (modelgate.capacity) on plain
records: Kubernetes quantity parsing, request defaulting, totals over desired replicas, idle
GPUs, over-requested memory, staleness, grouping and the trend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from modelgate import capacity
from modelgate.inventory.records import CapacitySampleRecord, ResourceAmounts, UsageAmounts
from modelgate.quantity import bytes_of, cores, format_quantity, is_gpu_resource, parse_quantity

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("4Gi", Decimal(4 * 2**30)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1G", Decimal(10**9)),
        ("2k", Decimal(2000)),
        ("250000n", Decimal("0.00025")),
        ("1e3", Decimal(1000)),
        (2, Decimal(2)),
        (0.25, Decimal("0.25")),
    ],
)
def test_kubernetes_quantities_are_parsed(raw: object, expected: Decimal) -> None:
    assert parse_quantity(raw) == expected


@pytest.mark.parametrize("raw", ["", "lots", "4GB", "1..2", None, True, "5 Mi i"])
def test_malformed_quantities_are_none(raw: object) -> None:
    assert parse_quantity(raw) is None


def test_units_and_formatting() -> None:
    assert cores("250m") == 0.25 and bytes_of("1Gi") == 2**30
    assert format_quantity("cpu", Decimal("0.5")) == "500m"
    assert format_quantity("memory", Decimal(3 * 2**30)) == "3Gi"
    assert capacity.format_cores(0.25) == "250m" and capacity.format_cores(2.0) == "2"
    assert capacity.format_bytes(1536 * 2**20) == "1.5 GiB"
    assert is_gpu_resource("nvidia.com/gpu") and is_gpu_resource("example.com/gpu")
    assert not is_gpu_resource("ephemeral-storage")


def test_requests_default_to_limits_as_kubernetes_does() -> None:
    requests, limits = capacity.pod_amounts(
        {
            "requests": {"cpu": "250m"},
            "limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
        }
    )
    assert requests == {"cpu": 0.25, "memory": 2 * 2**30, "gpu": {"nvidia.com/gpu": 1}}
    assert limits == {"cpu": 1.0, "memory": 2 * 2**30, "gpu": {"nvidia.com/gpu": 1}}
    assert capacity.pod_amounts(None) == (capacity.zero(), capacity.zero())


def _sample(
    name: str,
    *,
    replicas: int | None = 2,
    ready: int | None = 2,
    cpu: float = 1.0,
    memory: int = 2**30,
    gpus: int = 0,
    usage: UsageAmounts | None = None,
    registered: bool = True,
    seen: datetime = NOW,
    scan_id: int = 1,
    owner: str = "team@example.com",
    namespace: str = "ml",
) -> CapacitySampleRecord:
    gpu = {"nvidia.com/gpu": gpus} if gpus else {}
    return CapacitySampleRecord(
        id=1,
        scan_id=scan_id,
        seen_at=seen,
        cluster="prod",
        namespace=namespace,
        kind="Deployment",
        name=name,
        model=name + "-model",
        version="1",
        owner=owner,
        registered=registered,
        replicas=replicas,
        ready_replicas=ready,
        restarts=None,
        requests=ResourceAmounts(cpu=cpu, memory=memory, gpu=gpu),
        limits=ResourceAmounts(cpu=cpu * 2, memory=memory * 2, gpu=dict(gpu)),
        usage=usage,
    )


def test_totals_are_over_desired_replicas_and_idle_gpus_are_flagged() -> None:
    w = capacity.workload_capacity(_sample("llm", replicas=3, ready=1, gpus=2), NOW, DAY)
    assert w["requests"]["gpu"] == {"nvidia.com/gpu": 6}
    assert w["requests"]["cpu"] == 3.0
    assert w["idle_gpus"] == 4  # two replicas not ready, 2 GPUs each
    assert w["flags"] == ["not-ready", "idle-gpu"]


def test_a_gpu_workload_that_barely_computes_is_idle() -> None:
    busy = capacity.workload_capacity(
        _sample("busy", gpus=1, usage=UsageAmounts(cpu=0.5, memory=2**29)), NOW, DAY
    )
    idle = capacity.workload_capacity(
        _sample("idle", gpus=1, usage=UsageAmounts(cpu=0.05, memory=2**30)), NOW, DAY
    )
    assert busy["idle_gpus"] == 0 and idle["idle_gpus"] == 2  # 0.05 of 2 cores < 5 %
    assert "over-requested-memory" in busy["flags"]  # 512 MiB used of 2 GiB requested
    assert "over-requested-memory" not in idle["flags"]  # 1 GiB of 2 GiB: half is not less


def test_unknown_replicas_count_as_one_and_unknown_readiness_proves_nothing() -> None:
    w = capacity.workload_capacity(_sample("x", replicas=None, ready=None, gpus=1), NOW, DAY)
    assert w["replicas"] == {"desired": 1, "ready": None}
    assert (w["idle_gpus"], w["flags"]) == (0, [])


def test_state_older_than_one_scan_interval_is_stale() -> None:
    assert capacity.is_stale(NOW - DAY - timedelta(seconds=1), NOW, DAY)
    assert not capacity.is_stale(NOW - DAY, NOW, DAY)
    assert capacity.is_stale(None, NOW, DAY)
    old = capacity.workload_capacity(_sample("old", seen=NOW - 2 * DAY), NOW, DAY)
    assert old["stale"] and "stale" in old["flags"]


def test_rows_group_and_sum_and_put_the_most_gpus_first() -> None:
    workloads = [
        capacity.workload_capacity(s, NOW, DAY)
        for s in (
            _sample("a", gpus=1, owner="x@example.com"),
            _sample("b", gpus=0, owner="x@example.com", usage=UsageAmounts(cpu=1.0, memory=2**30)),
            _sample("c", gpus=4, owner="y@example.com", registered=False, namespace="lab"),
        )
    ]
    rows = capacity.rows(workloads, "owner")
    assert [r["key"] for r in rows] == ["y@example.com", "x@example.com"]
    x = rows[1]
    assert (x["deployments"], x["requests"]["gpu"], x["usage_reported"]) == (
        2,
        {"nvidia.com/gpu": 2},
        1,
    )
    assert x["usage"] == {"cpu": 1.0, "memory": 2**30}
    assert rows[0]["orphans"] == 1
    totals = capacity.totals(workloads)
    assert totals["orphan_requests"]["gpu"] == {"nvidia.com/gpu": 8}
    ns = capacity.rows(workloads, "namespace")
    assert {r["key"] for r in ns} == {"prod/ml", "prod/lab"}


def test_trend_has_one_point_per_scan() -> None:
    points = capacity.trend(
        [
            _sample("a", gpus=1, scan_id=1),
            _sample("a", gpus=2, scan_id=2),
            _sample("b", gpus=1, scan_id=2, usage=UsageAmounts(cpu=0.5, memory=10)),
        ]
    )
    assert [(p["scan_id"], p["gpus"], p["deployments"]) for p in points] == [(1, 2, 1), (2, 6, 2)]
    assert points[1]["cpu_used"] == 0.5 and points[0]["cpu_used"] is None


@pytest.mark.parametrize("bad", ["", "models", "Owner ", "x"])
def test_group_by_is_checked(bad: str) -> None:
    if bad == "":
        assert capacity.parse_group_by(bad) == "model"
        return
    if bad.strip().lower() == "owner":
        assert capacity.parse_group_by(bad) == "owner"
        return
    with pytest.raises(capacity.GroupByError, match="group_by must be one of"):
        capacity.parse_group_by(bad)
