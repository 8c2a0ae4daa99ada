"""The overview's trends: admission decisions per day (allowed / warned / denied), findings
open at each of the recent audit scans, and models first admitted per week. Server-rendered
as small SVG charts (``macros.html``); no script runs in the browser."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import TypedDict

from modelgate.inventory import audit, queries
from modelgate.inventory.db import Database
from modelgate.inventory.records import ModelRecord

DECISION_DAYS = 14
SCAN_POINTS = 20
WEEKS = 12


class Point(TypedDict):
    label: str  # x axis: a day, a scan, a week
    title: str  # the tooltip / accessible text
    values: dict[str, int]  # series -> value


class Series(TypedDict):
    title: str
    series: list[str]  # stacked from the bottom
    points: list[Point]
    total: int


def decisions_per_day(db: Database, now: datetime, days: int = DECISION_DAYS) -> Series:
    today = now.astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    rows = queries.decisions_per_day(db, since, now)
    points = [
        Point(
            label=r["day"].strftime("%d %b"),
            title=(
                f"{r['day'].isoformat()}: {r['allowed']} allowed, {r['warned']} warned, "
                f"{r['denied']} denied"
            ),
            values={"allowed": r["allowed"], "warned": r["warned"], "denied": r["denied"]},
        )
        for r in rows
    ]
    return Series(
        title=f"Admission decisions per day, last {days} days (UTC)",
        series=["allowed", "warned", "denied"],
        points=points,
        total=sum(sum(p["values"].values()) for p in points),
    )


def findings_over_scans(db: Database, scans: int = SCAN_POINTS) -> Series:
    """Findings each recent scan saw (all were open then), oldest scan first."""
    rows = [s for s in audit.list_scans(db, limit=scans) if s["status"] != "running"]
    points: list[Point] = []
    for s in reversed(rows):
        by_type = s["summary"].get("findings") or {}
        count = sum(int(v) for v in by_type.values() if isinstance(v, int))
        when = (s["finished_at"] or s["started_at"]).astimezone(UTC)
        points.append(
            Point(
                label=f"#{s['id']}",
                title=f"scan #{s['id']} ({when:%Y-%m-%d %H:%M} UTC, {s['status']}): "
                f"{count} open finding(s)",
                values={"open findings": count},
            )
        )
    return Series(
        title=f"Open findings at each of the last {len(points)} scans"
        if len(points) != 1
        else "Open findings at the last scan",
        series=["open findings"],
        points=points,
        total=sum(p["values"]["open findings"] for p in points),
    )


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def first_admission(model: ModelRecord) -> datetime | None:
    """When a deployment of the model was first admitted; None for a model only registered
    (through the API, or by a denied admission waiting for review)."""
    times = [
        d["first_admitted"]
        for v in model["versions"]
        for d in v["deployments"]
        if d["first_admitted"] is not None
    ]
    return min(times) if times else None


def models_per_week(models: Iterable[ModelRecord], now: datetime, weeks: int = WEEKS) -> Series:
    """Models first recorded (admitted) per ISO week (Monday to Sunday, UTC)."""
    this_week = week_start(now.astimezone(UTC).date())
    starts = [this_week - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    counts = Counter(
        week_start(first.astimezone(UTC).date())
        for first in (first_admission(m) for m in models)
        if first is not None
    )
    points = [
        Point(
            label=start.strftime("%d %b"),
            title=f"week of {start.isoformat()}: {counts.get(start, 0)} model(s) first admitted",
            values={"models": counts.get(start, 0)},
        )
        for start in starts
    ]
    return Series(
        title=f"Models first admitted per week, last {weeks} weeks",
        series=["models"],
        points=points,
        total=sum(p["values"]["models"] for p in points),
    )
