"""What the dashboard shows, computed from the inventory's plain-dict queries.

Nothing here imports SQLAlchemy: sessions come from :meth:`Database.read` and are handed to
:mod:`modelgate.inventory.queries`; audit data comes from :mod:`modelgate.inventory.audit`.

Audit readiness is a list of checks, each ``ok``, ``warn`` or ``fail`` with its reason:

- recent scan: fails with no scan, or when the last one finished more than 7 days ago;
  warns while it runs or when it failed;
- sources reachable: fails when a source of the latest scan was unreachable;
- high-severity findings: fails on open findings of severity high or critical;
- undocumented orphans: fails on open ``orphan`` findings (running, never admitted),
  warns when no scan has looked for them;
- certifications: fails when a deployed model version holds an expired certification,
  warns when one expires within 30 days;
- documentation: fails when a deployed version lacks a required field, warns when it lacks
  a recommended one (model card, metrics, training run, source).

The overall status is ``ready`` (every check ok), ``at risk`` (warnings only) or ``not
ready`` (any failure).
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
    documentation_gaps,
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
    VersionRecord,
    jsonable,
    model_summary,
)
from policies.config import PolicyConfig

__all__ = ["FINDING_TYPES", "jsonable", "overview", "readiness"]

SCAN_MAX_AGE = timedelta(days=7)
#: the default scan interval (MODELGATE_SCAN_INTERVAL_SECONDS): older runtime state is stale
SCAN_INTERVAL = timedelta(days=1)


class Check(TypedDict):
    name: str
    status: str  # ok / warn / fail
    reason: str


class Readiness(TypedDict):
    status: str  # ready / at risk / not ready
    checks: list[Check]


class CertificationState(TypedDict):
    model: str
    version: str
    name: str
    expires: str | None
    days_left: int | None
    state: str  # expired / expiring / valid / unknown
    live: bool


class VersionDocumentation(TypedDict):
    model: str
    version: str
    owner: str
    risk_tier: str
    live_deployments: int
    missing_required: list[str]  # includes model-card and certifications for certified tiers
    missing_recommended: list[str]


def live_deployments(v: VersionRecord) -> int:
    return sum(1 for d in v["deployments"] if d["live"])


def version_documentation(v: VersionRecord, config: PolicyConfig) -> VersionDocumentation:
    gaps = documentation_gaps(v["metadata"], config)
    return VersionDocumentation(
        model=v["model"],
        version=v["version"],
        owner=v["owner"],
        risk_tier=v["risk_tier"],
        live_deployments=live_deployments(v),
        missing_required=list(gaps.missing_required),
        missing_recommended=list(gaps.missing_recommended),
    )


def certification_rows(
    versions: Iterable[VersionRecord], today: Any, warning_days: int
) -> list[CertificationState]:
    """Every certification of these versions with its state, soonest expiry first."""
    rows: list[CertificationState] = []
    for v in versions:
        for c in v["certifications"]:
            state = certification_state(c["expires"], today, warning_days)
            rows.append(
                CertificationState(
                    model=c["model"],
                    version=c["version"],
                    name=c["name"],
                    expires=c["expires"].isoformat() if c["expires"] else c["expires_raw"],
                    days_left=state.days_left,
                    state=state.state,
                    live=live_deployments(v) > 0,
                )
            )
    rows.sort(key=lambda r: (r["days_left"] is None, r["days_left"] or 0, r["model"], r["name"]))
    return rows


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


def age_text(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


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
        finished = scan["finished_at"] or scan["started_at"]
        unreachable = [s for s in scan["sources"] if s.get("status") != "ok"]
        scan_info = {
            "id": scan["id"],
            "status": scan["status"],
            "started_at": scan["started_at"].isoformat(),
            "finished_at": scan["finished_at"].isoformat() if scan["finished_at"] else None,
            "age": age_text(now - finished),
            "age_seconds": int((now - finished).total_seconds()),
            "sources": jsonable(scan["sources"]),
            "unreachable": jsonable(unreachable),
        }
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


def high_severities(config: PolicyConfig) -> tuple[str, ...]:
    """``high`` and every severity above it in the policy data's order."""
    if "high" not in config.severities:
        return config.severities[-1:]
    return config.severities[config.severity_rank("high") :]


def readiness(
    *,
    scan_info: Mapping[str, Any] | None,
    scan_finished: datetime | None,
    now: datetime,
    open_findings: list[FindingRecord],
    certs: list[CertificationState],
    docs: list[VersionDocumentation],
    config: PolicyConfig,
) -> Readiness:
    """The audit-readiness checks (see the module docstring) and the overall status."""
    checks: list[Check] = []
    if scan_info is None or scan_finished is None:
        checks.append(
            Check(
                name="recent scan",
                status="fail",
                reason="no audit scan recorded: run `modelgate audit`",
            )
        )
    elif scan_info["status"] == "running":
        checks.append(
            Check(
                name="recent scan",
                status="warn",
                reason=f"scan #{scan_info['id']} is still running (started {scan_info['age']} ago)",
            )
        )
    elif now - scan_finished > SCAN_MAX_AGE:
        checks.append(
            Check(
                name="recent scan",
                status="fail",
                reason=f"the last scan (#{scan_info['id']}) finished {scan_info['age']} ago, "
                f"more than {SCAN_MAX_AGE.days} days",
            )
        )
    elif scan_info["status"] != "completed":
        checks.append(
            Check(
                name="recent scan",
                status="warn",
                reason=f"the last scan (#{scan_info['id']}) {scan_info['status']} "
                f"{scan_info['age']} ago",
            )
        )
    else:
        checks.append(
            Check(
                name="recent scan",
                status="ok",
                reason=f"scan #{scan_info['id']} completed {scan_info['age']} ago",
            )
        )

    if scan_info is not None:
        unreachable = scan_info["unreachable"]
        if unreachable:
            names = ", ".join(str(s.get("name")) for s in unreachable)
            checks.append(
                Check(
                    name="sources reachable",
                    status="fail",
                    reason=f"{len(unreachable)} source(s) unreachable in the last scan: {names}",
                )
            )
        else:
            checks.append(
                Check(
                    name="sources reachable",
                    status="ok",
                    reason=f"all {len(scan_info['sources'])} source(s) answered",
                )
            )

    warning_days = config.certification_warning_days
    serious = high_severities(config)
    high = [f for f in open_findings if f["severity"] in serious]
    checks.append(
        Check(
            name="high-severity findings",
            status="fail" if high else "ok",
            reason=(
                f"{len(high)} open finding(s) of severity high or critical"
                if high
                else "no open high-severity finding"
            ),
        )
    )
    orphans = [f for f in open_findings if f["type"] == "orphan"]
    if orphans:
        checks.append(
            Check(
                name="undocumented orphans",
                status="fail",
                reason=f"{len(orphans)} running model(s) never admitted to the inventory: "
                + ", ".join(f"{f['cluster']}/{f['namespace']}/{f['name']}" for f in orphans[:5])
                + (" …" if len(orphans) > 5 else ""),
            )
        )
    elif scan_info is None:  # without a scan, "no orphan" means nobody looked
        checks.append(
            Check(
                name="undocumented orphans",
                status="warn",
                reason="unknown: no audit scan has looked for running models the inventory "
                "never admitted",
            )
        )
    else:
        checks.append(
            Check(
                name="undocumented orphans",
                status="ok",
                reason="every running model found by the last scan is in the inventory",
            )
        )
    live_certs = [c for c in certs if c["live"]]
    expired = [c for c in live_certs if c["state"] == "expired"]
    expiring = [c for c in live_certs if c["state"] == "expiring"]
    if expired:
        checks.append(
            Check(
                name="certifications",
                status="fail",
                reason=f"{len(expired)} expired certification(s) on deployed versions: "
                + ", ".join(f"{c['model']}@{c['version']} {c['name']}" for c in expired[:5]),
            )
        )
    elif expiring:
        checks.append(
            Check(
                name="certifications",
                status="warn",
                reason=f"{len(expiring)} certification(s) on deployed versions expire within "
                f"{warning_days} days",
            )
        )
    else:
        checks.append(
            Check(
                name="certifications",
                status="ok",
                reason="no certification of a deployed version expired or expiring",
            )
        )
    lacking = [d for d in docs if d["missing_required"]]
    partial = [d for d in docs if d["missing_recommended"] and not d["missing_required"]]
    if lacking:
        checks.append(
            Check(
                name="documentation",
                status="fail",
                reason=f"{len(lacking)} deployed version(s) lack required metadata: "
                + ", ".join(
                    f"{d['model']}@{d['version']} ({', '.join(d['missing_required'])})"
                    for d in lacking[:5]
                ),
            )
        )
    elif partial:
        checks.append(
            Check(
                name="documentation",
                status="warn",
                reason=f"{len(partial)} deployed version(s) lack recommended metadata "
                "(model card, metrics, training run or source)",
            )
        )
    else:
        checks.append(
            Check(
                name="documentation",
                status="ok",
                reason=(
                    f"all {len(docs)} deployed version(s) fully documented"
                    if docs
                    else "no deployed model version to document"
                ),
            )
        )
    statuses = {c["status"] for c in checks}
    status = "not ready" if "fail" in statuses else "at risk" if "warn" in statuses else "ready"
    return Readiness(status=status, checks=checks)


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
        rows = [f for f in rows if f["model"] and owners.get(f["model"]) == owner]
    rows = _worst_first(rows, config)
    start = (page - 1) * FINDINGS_PAGE_SIZE
    shown = [
        {**f, "model_known": f["model"] in owners, "owner": owners.get(f["model"] or "")}
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
            "owners": sorted(set(owners.values()) - {""}),
        },
    }
