"""What the dashboard shows, computed from the inventory's plain-dict queries.

Nothing here imports SQLAlchemy: sessions come from :meth:`Database.read` and are handed to
:mod:`modelgate.inventory.queries`; audit data comes from :mod:`modelgate.inventory.audit`.

Audit readiness (the checks and the verdict) is :mod:`modelgate.readiness`, shared with the
audit report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from modelgate.compliance import (
    FINDING_TYPES,
    certification_state,
    is_recorded,
    worst_first,
)
from modelgate.inventory import audit, queries
from modelgate.inventory.db import Database
from modelgate.inventory.records import (
    ModelSummary,
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


def overview(db: Database, now: datetime, config: PolicyConfig | None = None) -> dict[str, Any]:
    """Everything the overview page shows; ``config`` is the policy bundle's data (required
    fields, certification warning window, tiers, statuses)."""
    config = config or PolicyConfig()
    """Everything the overview page and ``/api/overview`` show."""
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
    documentation = {
        "live_versions": len(docs),
        "complete": len(complete),
        "percent": round(100 * len(complete) / len(docs)) if docs else None,
        "missing_required": sum(1 for d in docs if d["missing_required"]),
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

    return {
        "generated_at": now.isoformat(),
        "counts": counts,
        "by_tier": bars(by_tier, risk_tiers_highest_first(config)),
        "by_status": bars(by_status, config.compliance_statuses),
        "documentation": documentation,
        "certifications": {
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


def model_list(
    db: Database,
    *,
    search: str | None,
    risk_tier: str | None,
    compliance_status: str | None,
) -> list[dict[str, Any]]:
    """Models whose name, owner or a training dataset contains ``search`` (summaries, as
    JSON-ready data)."""
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
    summaries: list[ModelSummary] = [model_summary(m) for m in found]
    rows: list[dict[str, Any]] = jsonable(summaries)
    return rows


def model_detail(
    db: Database, name: str, now: datetime, config: PolicyConfig | None = None
) -> dict[str, Any] | None:
    """One model as its page shows it: versions with certification states and the
    deployments the inventory holds (not deleted), lineage, recent decisions."""
    config = config or PolicyConfig()
    today = now.astimezone(UTC).date()
    record = queries.get_model(db, name)
    if record is None:
        return None
    versions = []
    for v in record["versions"]:
        certs = []
        for c in v["certifications"]:
            state = certification_state(c["expires"], today, config.certification_warning_days)
            certs.append({**c, "state": state.state, "days_left": state.days_left})
        deployed = [d for d in v["deployments"] if is_recorded(d["status"])]
        versions.append({**v, "certifications": certs, "deployments": deployed})
    decisions = queries.decisions(db, model=name, limit=20)
    out: dict[str, Any] = jsonable({**record, "versions": versions, "decisions": decisions})
    return out


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
    return {
        "decisions": jsonable(rows),
        "total": total,
        "page": page,
        "pages": pages,
        "page_size": PAGE_SIZE,
        "namespaces": queries.decision_namespaces(db),
    }


FINDINGS_PAGE_SIZE = 100


def finding_list(
    db: Database,
    *,
    status: str | None,
    type_: str | None,
    page: int = 1,
    config: PolicyConfig | None = None,
) -> dict[str, Any]:
    """Findings, open before resolved and worst severity first, one page of them."""
    config = config or PolicyConfig()
    rows = audit.findings(db, status=status, type=type_)
    order = {s: i for i, s in enumerate(worst_first(config.severities, config))}
    rows.sort(key=lambda f: (f["status"] != "open", order.get(f["severity"], len(order))))
    start = (page - 1) * FINDINGS_PAGE_SIZE
    return {
        "findings": jsonable(rows[start : start + FINDINGS_PAGE_SIZE]),
        "total": len(rows),
        "page": page,
        "pages": max(1, (len(rows) + FINDINGS_PAGE_SIZE - 1) // FINDINGS_PAGE_SIZE),
        "page_size": FINDINGS_PAGE_SIZE,
    }
