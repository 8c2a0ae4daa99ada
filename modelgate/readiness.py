"""Audit readiness: the one implementation of the checks the dashboard shows and the report's
verdict is made of.

Readiness is a list of checks, each ``ok``, ``warn`` or ``fail`` with its reason:

- recent scan: fails with no scan, or when the last one finished more than 7 days ago;
  warns while it runs or when it failed;
- sources reachable: fails when a source of the scan was unreachable;
- high-severity findings: fails on open findings of severity high or critical;
- undocumented orphans: fails on open ``orphan`` findings (running, never admitted),
  warns when no scan has looked for them;
- certifications: fails when a deployed model version holds an expired certification,
  warns when one expires within the warning window (30 days by default);
- documentation: fails when a deployed version lacks a required field, warns when it lacks
  a recommended one (model card, metrics, training run, source);
- log integrity (when a verification of the tamper-evident logs — the decision log and the
  approval log — is given, as the report does): fails when a log does not verify, warns
  when one holds entries but no signed checkpoint yet; an empty log (no entry, no
  checkpoint: nothing recorded, so nothing to sign) is "nothing to check yet", not a warning
  (entries deleted behind a recorded head or a checkpoint do not verify: those fail).

The overall status is ``ready`` (every check ok), ``at risk`` (warnings only) or ``not
ready`` (any failure). :func:`readiness` takes the inputs; :func:`assess` gathers them from
the inventory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict

from modelgate.compliance import certification_state, documentation_gaps
from modelgate.inventory import audit, queries
from modelgate.inventory.chain import LogReport
from modelgate.inventory.records import FindingRecord, ScanRecord, VersionRecord, jsonable
from policies.config import PolicyConfig

SCAN_MAX_AGE = timedelta(days=7)


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


def age_text(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def scan_info(scan: ScanRecord, now: datetime) -> dict[str, Any]:
    """What the checks (and the dashboard) say about a scan: id, status, times, age, sources
    and the unreachable ones, as JSON-ready data."""
    finished = scan["finished_at"] or scan["started_at"]
    unreachable = [s for s in scan["sources"] if s.get("status") != "ok"]
    return {
        "id": scan["id"],
        "status": scan["status"],
        "started_at": scan["started_at"].isoformat(),
        "finished_at": scan["finished_at"].isoformat() if scan["finished_at"] else None,
        "age": age_text(now - finished),
        "age_seconds": int((now - finished).total_seconds()),
        "sources": jsonable(scan["sources"]),
        "unreachable": jsonable(unreachable),
    }


def high_severities(config: PolicyConfig) -> tuple[str, ...]:
    """``high`` and every severity above it in the policy data's order."""
    if "high" not in config.severities:
        return config.severities[-1:]
    return config.severities[config.severity_rank("high") :]


def empty_log(report: LogReport) -> bool:
    """Nothing recorded and nothing signed: no entry to vouch for, none missing (entries
    deleted behind the head or a checkpoint make the log not intact)."""
    return report["entries"] == 0 and report["latest_checkpoint"] is None


def _log_check(reports: Sequence[LogReport]) -> Check:
    broken = [r for r in reports if not r["intact"]]
    if broken:
        parts = []
        for r in broken:
            first = r["problems"][0] if r["problems"] else None
            where = f": first at entry {first['seq']} ({first['kind']})" if first else ""
            parts.append(
                f"the {r['log']} log does not verify, {r['problems_total']} problem(s){where}"
            )
        return Check(name="log integrity", status="fail", reason="; ".join(parts))
    recorded = [r for r in reports if not empty_log(r)]
    empty = [r["log"] for r in reports if empty_log(r)]
    nothing = (
        f"the {' and '.join(empty)} log{'s are' if len(empty) > 1 else ' is'} empty: "
        "nothing to check yet"
        if empty
        else ""
    )
    if not recorded:
        return Check(name="log integrity", status="ok", reason=nothing)
    summary = ", ".join(f"{r['log']} intact up to entry {r['last_seq'] or 0}" for r in recorded)
    unsigned = [r["log"] for r in recorded if r["latest_checkpoint"] is None]
    if unsigned:
        return Check(
            name="log integrity",
            status="warn",
            reason=f"{summary}; no signed checkpoint of the {', '.join(unsigned)} log: run "
            "`modelgate log checkpoint`" + (f"; {nothing}" if nothing else ""),
        )
    signed = "with signed checkpoints" if len(recorded) > 1 else "with a signed checkpoint"
    return Check(
        name="log integrity",
        status="ok",
        reason=f"{summary}, {signed}" + (f"; {nothing}" if nothing else ""),
    )


def readiness(
    *,
    scan_info: Mapping[str, Any] | None,
    scan_finished: datetime | None,
    now: datetime,
    open_findings: list[FindingRecord],
    certs: list[CertificationState],
    docs: list[VersionDocumentation],
    config: PolicyConfig,
    log_integrity: Sequence[LogReport] | None = None,
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
    if log_integrity is not None:
        checks.append(_log_check(log_integrity))
    return Readiness(status=verdict(checks), checks=checks)


def verdict(checks: Iterable[Check]) -> str:
    """``not ready`` on any failure, ``at risk`` on warnings only, else ``ready``."""
    statuses = {c["status"] for c in checks}
    return "not ready" if "fail" in statuses else "at risk" if "warn" in statuses else "ready"


def assess(
    db: Any,
    now: datetime,
    config: PolicyConfig,
    *,
    scan_id: int | None = None,
    log_integrity: Sequence[LogReport] | None = None,
) -> Readiness:
    """Readiness from the inventory: of the scan ``scan_id`` (its findings still open), or of
    the latest scan (every open finding, as the dashboard shows it)."""
    today: date = now.astimezone(UTC).date()
    scan = audit.get_scan(db, scan_id) if scan_id is not None else audit.latest_scan(db)
    versions = [v for m in queries.list_models(db) for v in m["versions"]]
    if scan is not None and scan_id is not None:
        findings = [f for f in audit.scan_findings_of(db, scan["id"]) if f["status"] == "open"]
    else:
        findings = audit.findings(db, status="open")
    return readiness(
        scan_info=scan_info(scan, now) if scan is not None else None,
        scan_finished=(scan["finished_at"] or scan["started_at"]) if scan else None,
        now=now,
        open_findings=findings,
        certs=certification_rows(versions, today, config.certification_warning_days),
        docs=[version_documentation(v, config) for v in versions if live_deployments(v)],
        config=config,
        log_integrity=log_integrity,
    )
