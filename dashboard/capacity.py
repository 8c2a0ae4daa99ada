"""Resources and capacity: the ``/capacity`` page and ``GET /api/v1/capacity``.

A blueprint of its own (registered by :func:`dashboard.app.create_app`), so it sits beside
the authenticated ``/api/v1`` blueprint without touching it. The figures are
:mod:`modelgate.capacity`'s over the capacity samples of the latest complete scan of each
cluster (:func:`modelgate.inventory.capacity.current_samples`); the response shape is the
JSON schema ``dashboard/schemas/capacity.json`` (:func:`response_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from werkzeug.exceptions import BadRequest

from modelgate import capacity
from modelgate.inventory import capacity as inventory_capacity
from modelgate.inventory import queries
from modelgate.inventory.db import Database
from modelgate.inventory.records import jsonable

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "capacity.json"


@cache
def response_schema() -> dict[str, Any]:
    """The JSON schema of ``GET /api/v1/capacity`` (for the OpenAPI document and tests)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def capacity_view(
    db: Database, now: datetime, interval: timedelta, group_by: capacity.GroupBy
) -> dict[str, Any]:
    """What the page and the API show (JSON-ready)."""
    samples = inventory_capacity.current_samples(db)
    owners = queries.model_owners(db) if any(not s["owner"] for s in samples) else {}
    for s in samples:
        if not s["owner"] and s["registered"] and s["model"]:
            s["owner"] = owners.get(s["model"], "")
    workloads = [capacity.workload_capacity(s, now, interval) for s in samples]
    view = {
        "group_by": group_by,
        "generated_at": now,
        "scan_interval_seconds": int(interval.total_seconds()),
        "rows": capacity.rows(workloads, group_by),
        "totals": capacity.totals(workloads),
        "trend": capacity.trend(inventory_capacity.recent_samples(db)),
    }
    out: dict[str, Any] = jsonable(view)
    out["_workloads"] = jsonable(workloads)
    return out


def _group_by_arg() -> capacity.GroupBy:
    try:
        return capacity.parse_group_by(request.args.get("group_by"))
    except capacity.GroupByError as e:
        raise BadRequest(str(e)) from e


def blueprint(db: Database, now: Callable[[], datetime], interval: timedelta) -> Blueprint:
    """The capacity routes over ``db``."""
    bp = Blueprint("capacity", __name__)

    @bp.get("/capacity")
    def capacity_page() -> str:
        view = capacity_view(db, now(), interval, _group_by_arg())
        workloads = view.pop("_workloads")
        return render_template(
            "capacity.html",
            c=view,
            workloads=workloads,
            group_bys=capacity.GROUP_BY,
            nav="capacity",
        )

    @bp.get("/api/v1/capacity")
    def capacity_api() -> Response:
        view = capacity_view(db, now(), interval, _group_by_arg())
        view.pop("_workloads")
        return jsonify(view)

    return bp
