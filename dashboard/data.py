"""What the dashboard shows, computed from the inventory's plain-dict queries.

Nothing here imports SQLAlchemy: sessions come from :meth:`Database.read` and are handed to
:mod:`modelgate.inventory.queries`; audit data comes from :mod:`modelgate.inventory.audit`.

Audit readiness (the checks and the verdict) is :mod:`modelgate.readiness`, shared with the
audit report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from dashboard import health, trends
from modelgate import capacity
from modelgate.compliance import (
    FINDING_TYPES,
    certification_state,
    is_recorded,
    worst_first,
)
from modelgate.inventory import audit, queries
from modelgate.inventory import capacity as inventory_capacity
from modelgate.inventory.db import Database
from modelgate.inventory.records import (
    DecisionRecord,
    FindingRecord,
    ModelRecord,
    ModelSummary,
    finding_owner,
    jsonable,
    model_summary,
)
from modelgate.readiness import (
    certification_rows,
    live_deployments,
    readiness,
    version_documentation,
)
from modelgate.readiness import scan_info as readiness_scan_info
from policies.config import PolicyConfig

__all__ = ["FINDING_TYPES", "jsonable", "overview", "readiness"]

#: the default scan interval (MODELGATE_SCAN_INTERVAL_SECONDS): older runtime state is stale
SCAN_INTERVAL = timedelta(days=1)


class Bar(TypedDict):
    label: str
    count: int


def risk_tiers_highest_first(config: PolicyConfig) -> tuple[str, ...]:
    """The bundle lists tiers from lowest to highest risk; the dashboard shows high first."""
    return tuple(reversed(config.risk_tiers))


def bars(counts: Mapping[str, int], order: Iterable[str]) -> list[Bar]:
    """One bar per label of ``order``, then any other label with a count, by name."""
    known = list(order)
    rows = [Bar(label=k, count=int(counts.get(k, 0))) for k in known]
    rows += [Bar(label=k, count=int(v)) for k, v in sorted(counts.items()) if k not in known and v]
    return rows


def _percent_floor(part: int, whole: int) -> int:
    """``part`` of ``whole`` in whole percent, rounded down: 99.6 % complete is not 100 %."""
    return (100 * part) // whole


def overview(
    db: Database,
    now: datetime,
    config: PolicyConfig | None = None,
    interval: timedelta = SCAN_INTERVAL,
) -> dict[str, Any]:
    """Everything the overview page and ``/api/overview`` show; ``config`` is the policy
    bundle's data (required fields, certification warning window, tiers, statuses),
    ``interval`` the scan interval (older runtime state is stale)."""
    config = config or PolicyConfig()
    today = now.astimezone(UTC).date()
    counts = queries.inventory_counts(db)
    records = queries.list_models(db)
    models = [model_summary(m) for m in records]
    versions = [v for m in records for v in m["versions"]]
    docs = [version_documentation(v, config) for v in versions if live_deployments(v)]
    scan = audit.latest_scan(db)
    open_findings = audit.findings(db, status="open")

    by_tier = Counter(m["risk_tier"] for m in models if m["risk_tier"])
    by_status = Counter(m["compliance_status"] for m in models if m["compliance_status"])

    complete = [d for d in docs if not d["missing_required"] and not d["missing_recommended"]]
    required_complete = [d for d in docs if not d["missing_required"]]
    documentation = {
        "live_versions": len(docs),
        # every required field (the admission contract): the headline figure
        "required_complete": len(required_complete),
        "required_percent": (_percent_floor(len(required_complete), len(docs)) if docs else None),
        # required and recommended fields alike
        "complete": len(complete),
        "percent": round(100 * len(complete) / len(docs)) if docs else None,
        "missing_required": sum(1 for d in docs if d["missing_required"]),
        "missing_recommended": sum(1 for d in docs if d["missing_recommended"]),
        "field_gaps": bars(
            Counter(f for d in docs for f in d["missing_required"] + d["missing_recommended"]),
            [*config.required_fields, "certifications", *config.recommended_fields],
        ),
        "gaps": [d for d in docs if d["missing_required"] or d["missing_recommended"]],
    }

    cert_rows = certification_rows(versions, today, config.certification_warning_days)
    attention = [c for c in cert_rows if c["state"] in ("expired", "expiring")]

    scan_info: dict[str, Any] | None = None
    latest_by_type: list[Bar] = []
    if scan is not None:
        scan_info = readiness_scan_info(scan, now)
        seen = audit.scan_findings_of(db, scan["id"])
        latest_by_type = bars(
            Counter(f["type"] for f in seen if f["status"] == "open"), FINDING_TYPES
        )

    workloads = [
        capacity.workload_capacity(sample, now, interval)
        for sample in inventory_capacity.current_samples(db)
    ]
    capacity_totals = capacity.totals(workloads)
    return {
        "generated_at": now.isoformat(),
        "counts": counts,
        "not_ready": jsonable(health.not_ready_models(records, now, interval)),
        "capacity": jsonable(
            {
                **capacity_totals,
                "gpus": capacity.gpu_count(capacity_totals["requests"]),
                "orphan_gpus": capacity.gpu_count(capacity_totals["orphan_requests"]),
                "stale": sum(1 for w in workloads if w["stale"]),
            }
        ),
        "trends": {
            "decisions": trends.decisions_per_day(db, now),
            "findings": trends.findings_over_scans(db),
            "models": trends.models_per_week(records, now),
        },
        "by_tier": bars(by_tier, risk_tiers_highest_first(config)),
        "by_status": bars(by_status, config.compliance_statuses),
        "documentation": documentation,
        "certifications": {
            # the bundle's window (data.modelgate.config), which the states above follow
            "warning_days": config.certification_warning_days,
            "expired": sum(1 for c in cert_rows if c["state"] == "expired"),
            "expiring": sum(1 for c in cert_rows if c["state"] == "expiring"),
            "attention": attention,
        },
        "scan": scan_info,
        "open_findings_latest_scan": latest_by_type,
        "open_findings": len(open_findings),
        "readiness": readiness(
            scan_info=scan_info,
            scan_finished=(scan["finished_at"] or scan["started_at"]) if scan else None,
            now=now,
            open_findings=open_findings,
            certs=cert_rows,
            docs=docs,
            config=config,
        ),
    }


def _live_places(m: ModelRecord) -> set[tuple[str, str]]:
    return {
        (d["cluster"], d["namespace"]) for v in m["versions"] for d in v["deployments"] if d["live"]
    }


def model_list(
    db: Database,
    *,
    search: str | None,
    risk_tier: str | None,
    compliance_status: str | None,
    cluster: str | None = None,
    namespace: str | None = None,
    owner: str | None = None,
) -> list[dict[str, Any]]:
    """Models whose name, owner or a training dataset contains ``search``, of a risk tier and
    compliance status (latest version), with a live deployment in ``cluster`` / ``namespace``,
    owned by ``owner`` (summaries, as JSON-ready data)."""
    found = queries.list_models(
        db, search=search, risk_tier=risk_tier, compliance_status=compliance_status
    )
    if search:
        names = {m["name"] for m in found}
        by_dataset = queries.list_models(
            db, dataset=search, risk_tier=risk_tier, compliance_status=compliance_status
        )
        found = sorted(
            found + [m for m in by_dataset if m["name"] not in names], key=lambda m: m["name"]
        )
    summaries: list[ModelSummary] = []
    for m in found:
        places = _live_places(m)
        if cluster and all(c != cluster for c, _ in places):
            continue
        if namespace and all(n != namespace for _, n in places):
            continue
        summary = model_summary(m)
        if owner and summary["owner"] != owner:
            continue
        summaries.append(summary)
    rows: list[dict[str, Any]] = jsonable(summaries)
    return rows


class FilterOptions(TypedDict):
    clusters: list[str]
    namespaces: list[str]
    owners: list[str]


def model_filter_options(db: Database) -> FilterOptions:
    """The clusters and namespaces models run in (live), and the owners, for the filters."""
    records = queries.list_models(db)
    places = {p for m in records for p in _live_places(m)}
    return FilterOptions(
        clusters=sorted({c for c, _ in places}),
        namespaces=sorted({n for _, n in places}),
        owners=sorted({model_summary(m)["owner"] for m in records} - {""}),
    )


def model_detail(
    db: Database,
    name: str,
    now: datetime,
    config: PolicyConfig | None = None,
    interval: timedelta = SCAN_INTERVAL,
) -> dict[str, Any] | None:
    """One model as its page shows it: versions with certification states, the deployments
    the inventory holds (not deleted) with their health, the model's audit findings (open
    first; per version too), lineage, recent decisions."""
    config = config or PolicyConfig()
    today = now.astimezone(UTC).date()
    record = queries.get_model(db, name)
    if record is None:
        return None
    found = _worst_first(audit.findings(db, model=name), config)
    versions = []
    for v in record["versions"]:
        certs = []
        for c in v["certifications"]:
            state = certification_state(c["expires"], today, config.certification_warning_days)
            certs.append(
                {
                    **c,
                    "state": state.state,
                    "days_left": state.days_left,
                    "valid_for": validity_text(state.state, state.days_left),
                }
            )
        deployed = [
            health.deployment_health(d, now, interval)
            for d in v["deployments"]
            if is_recorded(d["status"])
        ]
        versions.append(
            {
                **v,
                "certifications": certs,
                "deployments": deployed,
                "findings": [f for f in found if f["version"] == v["version"]],
                "documentation": version_documentation(v, config),
            }
        )
    decisions = [decision_view(d) for d in queries.decisions(db, model=name, limit=20)]
    out: dict[str, Any] = jsonable(
        {
            **record,
            "versions": versions,
            "findings": found,
            "open_findings": sum(1 for f in found if f["status"] == "open"),
            "decisions": decisions,
        }
    )
    return out


def validity_text(state: str, days_left: int | None) -> str:
    """The words after a certification's state badge: "expired 5 days ago", "expiring in 10
    days" / "expiring today", "valid for about 3 months" / "valid for over 73 years"."""
    if days_left is None:
        return "no readable expiry date"
    if days_left < 0:
        return f"{_days(-days_left)} ago"
    if days_left == 0:
        return "today"
    if state != "valid":
        return f"in {_days(days_left)}"
    if days_left <= 60:
        return f"for {_days(days_left)}"
    if days_left < 730:
        return f"for about {round(days_left / 30.44)} months"
    return f"for over {days_left // 365} years"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def decision_view(d: DecisionRecord) -> dict[str, Any]:
    """A decision as the log shows it: each message once. In warn mode the violations are
    also returned as warnings; they are shown once, as violations not enforced, and
    ``advisories`` keeps only the warnings that are not violations."""
    violations = list(d["violations"])
    return {
        **d,
        "enforced": not d["allowed"] or not violations,
        "advisories": [w for w in d["warnings"] if w not in violations],
    }


PAGE_SIZE = 50


def decision_page(
    db: Database,
    *,
    allowed: bool | None,
    namespace: str | None,
    page: int,
    model: str | None = None,
) -> dict[str, Any]:
    total = queries.count_decisions(db, allowed=allowed, namespace=namespace, model=model)
    rows = queries.decisions(
        db,
        allowed=allowed,
        namespace=namespace,
        model=model,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    known = queries.existing_models(db, (r["model"] or "" for r in rows))
    return {
        "decisions": jsonable(
            [{**decision_view(r), "model_known": r["model"] in known} for r in rows]
        ),
        "total": total,
        "page": page,
        "pages": pages,
        "page_size": PAGE_SIZE,
        "namespaces": queries.decision_namespaces(db),
    }


FINDINGS_PAGE_SIZE = 100


def _worst_first(rows: list[FindingRecord], config: PolicyConfig) -> list[FindingRecord]:
    """Open before resolved, worst severity first (stable within)."""
    order = {s: i for i, s in enumerate(worst_first(config.severities, config))}
    return sorted(rows, key=lambda f: (f["status"] != "open", order.get(f["severity"], len(order))))


def finding_list(
    db: Database,
    *,
    status: str | None,
    type_: str | None,
    page: int = 1,
    config: PolicyConfig | None = None,
    cluster: str | None = None,
    namespace: str | None = None,
    severity: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """Findings, open before resolved and worst severity first, one page of them; filtered by
    status, type, cluster, namespace, severity and the owner of their model (as the inventory
    records it: an orphan's model has no owner there). A finding's model is linked only when
    the inventory holds that model."""
    config = config or PolicyConfig()
    rows = audit.findings(
        db, status=status, type=type_, cluster=cluster, namespace=namespace, severity=severity
    )
    owners = queries.model_owners(db)
    if owner:
        rows = [f for f in rows if finding_owner(f, owners) == owner]
    rows = _worst_first(rows, config)
    start = (page - 1) * FINDINGS_PAGE_SIZE
    shown = [
        {**f, "model_known": f["model"] in owners, "owner": finding_owner(f, owners)}
        for f in rows[start : start + FINDINGS_PAGE_SIZE]
    ]
    everything = audit.findings(db)
    return {
        "findings": jsonable(shown),
        "total": len(rows),
        "page": page,
        "pages": max(1, (len(rows) + FINDINGS_PAGE_SIZE - 1) // FINDINGS_PAGE_SIZE),
        "page_size": FINDINGS_PAGE_SIZE,
        "options": {
            "clusters": sorted({f["cluster"] for f in everything}),
            "namespaces": sorted({f["namespace"] for f in everything if f["namespace"]}),
            "severities": list(reversed(config.severities)),
            "owners": sorted(
                (set(owners.values()) | {finding_owner(f, owners) or "" for f in everything}) - {""}
            ),
        },
    }
