"""The audit export: one JSON document (``scan``, ``models``, ``findings``, ...) whose
canonical bytes are written with ``--export``, embedded in the PDF and hashed (SHA-256) for the
report's integrity section; plus a CSV rendering for spreadsheets.

Besides the data, the document holds the report's conclusions, each computed once here from
the shared implementations: ``readiness`` (the verdict and its checks,
:mod:`modelgate.readiness`), ``log_integrity`` (the verification of the tamper-evident logs,
:mod:`modelgate.inventory.chain`), ``scope`` (sources, clusters, enforcement, the bundle and
its rules, the approval source, the time window), ``summary`` (top risks, worst first),
``changes`` (since the previous completed scan) and ``coverage`` (the evidence coverage,
:mod:`modelgate.evidence`)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypedDict, cast

from modelgate import approvals, evidence, readiness
from modelgate.compliance import is_overdue, is_recorded, worst_first
from modelgate.inventory import audit, chain, queries, signoff
from modelgate.inventory.db import Database, InventoryError
from modelgate.inventory.records import (
    FindingRecord,
    ScanRecord,
    accountable_owner,
    deployment_id,
    finding_owner,
    jsonable,
)
from policies.config import PolicyConfig
from policies.rules import Rule

EXPORT_FORMAT = "modelgate.audit/v1"
EXPORT_FILENAME = "modelgate-audit.json"


class ExportError(Exception):
    """The export cannot be built (unknown scan, ...)."""


#: a finding in the export: :class:`modelgate.inventory.records.FindingRecord` as JSON (no id),
#: plus ``overdue`` (open and past its due date when the export was made)
ExportFinding = dict[str, Any]

TOP_RISKS = 10


#: the scan in the export: :class:`modelgate.inventory.records.ScanRecord` as JSON, plus
#: ``clusters`` (every cluster its sources covered)
ExportScan = dict[str, Any]


class Exemption(TypedDict):
    model: str
    version: str
    owner: str
    reason: str | None
    deployments: list[str]


class ExportPolicy(TypedDict):
    """The policy data the report was judged by (from the bundle's data file)."""

    bundle_digest: str
    certification_warning_days: int
    severities: list[str]  # lowest first
    finding_severities: dict[str, str]
    required_fields: list[str]
    recommended_fields: list[str]
    certified_tiers: list[str]
    remediation_days: dict[str, int]
    tier_required_fields: dict[str, list[str]]
    namespace_owner_label: str


class Method(TypedDict):
    """How the scan judged: the rules of the bundle in force and the approval source."""

    rules: list[dict[str, str]]  # package, title, description
    rules_digest: str  # the digest of the bundle the rules were read from
    approval_source: str  # MODELGATE_APPROVAL_SOURCE


class LogIntegrity(TypedDict):
    """The verification of the tamper-evident logs when the export was made."""

    intact: bool
    #: chain.LogReport of each log, as JSON; empty when verification could not run
    logs: list[dict[str, Any]]
    error: str | None  # why verification could not run
    trusted_keys: list[str] | None  # fingerprints checkpoints had to be signed with
    #: the key the report names: the trusted one, else the latest checkpoint's
    key_fingerprint: str | None
    public_key: str | None  # raw Ed25519 public key, base64


class ExportDocument(TypedDict):
    format: str
    generated_at: str
    scan: ExportScan
    policy: ExportPolicy
    #: models, versions and live deployments (modelgate.compliance.is_live) now
    inventory: dict[str, int]
    #: every model of the inventory: :class:`modelgate.inventory.records.ModelRecord` as JSON
    #: (versions newest first, with datasets, training run, certifications, deployments and
    #: lineage) plus ``history``, its most recent admission decisions
    models: list[dict[str, Any]]
    findings: list[ExportFinding]
    #: findings of earlier scans this scan resolved (not seen again in a scanned cluster)
    resolved: list[ExportFinding]
    exemptions: list[Exemption]
    decisions: dict[str, Any]  # queries.DecisionSummary as JSON
    readiness: dict[str, Any]  # modelgate.readiness.Readiness: status (verdict), checks
    log_integrity: LogIntegrity
    scope: dict[str, Any]
    summary: dict[str, Any]  # top_risks (worst first), by_severity, overdue
    changes: dict[str, Any]
    coverage: dict[str, Any]  # modelgate.evidence.Coverage
    #: exemptions recorded through the API (ExemptionRecord as JSON, with who granted them)
    recorded_exemptions: list[dict[str, Any]]


def _finding(
    f: FindingRecord, today: date | None = None, model_owners: Mapping[str, str] | None = None
) -> ExportFinding:
    """The record as JSON, without its database id (exports are compared across databases),
    with ``overdue`` as of ``today`` and, with ``model_owners``, the owner who must remediate
    it (:func:`modelgate.inventory.records.finding_owner`)."""
    finding: ExportFinding = {k: v for k, v in jsonable(f).items() if k != "id"}
    if model_owners is not None:
        finding["owner"] = finding_owner(f, model_owners)
    finding["overdue"] = today is not None and is_overdue(f["due"], f["status"], today)
    return finding


def exemptions_of(models: list[dict[str, Any]]) -> list[Exemption]:
    out: list[Exemption] = []
    for m in models:
        for v in m["versions"]:
            if v["compliance_status"] == "exempt":
                out.append(
                    Exemption(
                        model=m["name"],
                        version=v["version"],
                        owner=accountable_owner(v["owner"], m["owner"]) or "",
                        reason=v["exempt_reason"],
                        deployments=[
                            deployment_id(d) for d in v["deployments"] if is_recorded(d["status"])
                        ],
                    )
                )
    return out


def export_policy(config: PolicyConfig, bundle_digest: str) -> ExportPolicy:
    return ExportPolicy(
        bundle_digest=bundle_digest,
        certification_warning_days=config.certification_warning_days,
        severities=list(config.severities),
        finding_severities=dict(config.finding_severities),
        required_fields=list(config.required_fields),
        recommended_fields=list(config.recommended_fields),
        certified_tiers=list(config.certified_tiers),
        remediation_days=dict(config.remediation_days),
        tier_required_fields={k: list(v) for k, v in config.tier_required_fields.items()},
        namespace_owner_label=config.namespace_owner_label,
    )


def log_integrity(
    db: Database,
    *,
    trusted: list[str] | None = None,
    public_key: str | None = None,
) -> LogIntegrity:
    """Verify every tamper-evident log (``modelgate log verify``) for the report. A failure to
    verify (the database went away) is reported as such, never as intact."""
    try:
        reports = chain.verify(db, trusted=trusted)
    except InventoryError as e:
        return LogIntegrity(
            intact=False,
            logs=[],
            error=str(e),
            trusted_keys=trusted,
            key_fingerprint=trusted[0] if trusted else None,
            public_key=public_key,
        )
    latest = [r["latest_checkpoint"] for r in reports if r["latest_checkpoint"] is not None]
    fingerprint = trusted[0] if trusted else (latest[-1]["key_fingerprint"] if latest else None)
    if public_key is None and latest and latest[-1]["key_fingerprint"] == fingerprint:
        public_key = latest[-1]["public_key"]
    return LogIntegrity(
        intact=all(r["intact"] for r in reports),
        logs=jsonable(reports),
        error=None,
        trusted_keys=trusted,
        key_fingerprint=fingerprint,
        public_key=public_key,
    )


def _severity_rank(config: PolicyConfig) -> dict[str, int]:
    return {s: i for i, s in enumerate(worst_first(config.severities, config))}


def ranked(findings: list[ExportFinding], config: PolicyConfig) -> list[ExportFinding]:
    """Worst first: by severity (policy order), overdue before not, earliest due, oldest."""
    rank = _severity_rank(config)
    return sorted(
        findings,
        key=lambda f: (
            rank.get(f["severity"], len(rank)),
            not f.get("overdue"),
            f.get("due") or "9999-12-31",
            f["first_seen"],
            f["cluster"],
            f["namespace"],
            f["name"],
        ),
    )


def summary_of(findings: list[ExportFinding], config: PolicyConfig) -> dict[str, Any]:
    by_severity: dict[str, int] = {}
    for f in findings:
        by_severity[f["severity"]] = by_severity.get(f["severity"], 0) + 1
    open_ = [f for f in findings if f["status"] == "open"]
    return {
        "top_risks": ranked(open_, config)[:TOP_RISKS],
        "by_severity": {s: by_severity[s] for s in worst_first(by_severity, config)},
        "open": len(open_),
        "overdue": sum(1 for f in open_ if f["overdue"]),
    }


def scope_of(
    scan: ScanRecord,
    previous: ScanRecord | None,
    decisions: dict[str, Any],
    method: Method | None,
) -> dict[str, Any]:
    """What the scan covered and how it judged: sources and clusters (unreachable ones
    named), the enforcement of the namespaces it saw models in (``off`` ones are excluded
    from admission, ``warn`` ones not enforced), the bundle and its rules, the approval
    source and the time window."""
    enforcement: dict[str, list[str]] = {}
    for source in scan["sources"]:
        for mode, namespaces in (source.get("enforcement") or {}).items():
            enforcement.setdefault(mode, []).extend(
                f"{source.get('cluster')}/{ns}" for ns in namespaces
            )
    return {
        "sources": [
            {k: s.get(k) for k in ("name", "kind", "cluster", "status", "error", "workloads")}
            for s in scan["sources"]
        ],
        "clusters": sorted({str(s.get("cluster")) for s in scan["sources"]}),
        "unreachable": [s.get("name") for s in scan["sources"] if s.get("status") != "ok"],
        "enforcement": {m: sorted(set(ns)) for m, ns in sorted(enforcement.items())},
        "excluded_namespaces": sorted(set(enforcement.get("off", []))),
        "bundle_digest": scan["bundle_digest"],
        "engine": scan["engine"],
        "rules": list(method["rules"]) if method else [],
        "rules_digest": method["rules_digest"] if method else None,
        "approval_source": method["approval_source"] if method else None,
        "window": {
            "scan_started": jsonable(scan["started_at"]),
            "scan_finished": jsonable(scan["finished_at"]),
            "decisions_from": decisions.get("period_start"),
            "decisions_until": decisions.get("period_end"),
            "previous_scan": previous["id"] if previous else None,
            "since": jsonable(previous["finished_at"]) if previous else None,
        },
    }


def _running(scan: ScanRecord) -> dict[str, dict[str, set[str]]]:
    """cluster -> model -> versions seen running, for the sources that answered."""
    out: dict[str, dict[str, set[str]]] = {}
    for s in scan["sources"]:
        if s.get("status") == "ok" and isinstance(s.get("models_running"), dict):
            cluster = out.setdefault(str(s.get("cluster")), {})
            for model, versions in s["models_running"].items():
                cluster.setdefault(str(model), set()).update(str(v) for v in versions)
    return out


def changes_since(
    db: Database, scan: ScanRecord, previous: ScanRecord | None, today: date
) -> dict[str, Any]:
    """Findings new, resolved and still open since ``previous``; models added, retired and
    re-versioned, comparing the clusters both scans covered."""
    if previous is None:
        return {"previous_scan": None}
    now = {audit.fingerprint(f): f for f in audit.scan_findings_of(db, scan["id"])}
    before = {audit.fingerprint(f) for f in audit.scan_findings_of(db, previous["id"])}
    this_run, prev_run = _running(scan), _running(previous)
    compared = sorted(set(this_run) & set(prev_run))
    added: list[dict[str, Any]] = []
    retired: list[dict[str, Any]] = []
    reversioned: list[dict[str, Any]] = []
    for cluster in compared:
        a, b = this_run[cluster], prev_run[cluster]
        added += [
            {"cluster": cluster, "model": m, "versions": sorted(a[m])}
            for m in sorted(set(a) - set(b))
        ]
        retired += [
            {"cluster": cluster, "model": m, "versions": sorted(b[m])}
            for m in sorted(set(b) - set(a))
        ]
        reversioned += [
            {"cluster": cluster, "model": m, "from": sorted(b[m]), "to": sorted(a[m])}
            for m in sorted(set(a) & set(b))
            if a[m] != b[m]
        ]
    return {
        "previous_scan": {
            "id": previous["id"],
            "started_at": jsonable(previous["started_at"]),
            "finished_at": jsonable(previous["finished_at"]),
        },
        "new": [_finding(f, today) for k, f in now.items() if k not in before],
        "still_open": [
            _finding(f, today) for k, f in now.items() if k in before and f["status"] == "open"
        ],
        "resolved": [_finding(f, today) for f in audit.findings_resolved_by(db, scan["id"])],
        "models": {"added": added, "retired": retired, "reversioned": reversioned},
        "compared_clusters": compared,
        "not_compared": sorted(
            (set(this_run) | set(prev_run) | {str(s.get("cluster")) for s in scan["sources"]})
            - set(compared)
        ),
    }


def method_of(rules: list[Rule], rules_digest: str, approval_source: str) -> Method:
    return Method(
        rules=[
            {"package": r.package, "title": r.title, "description": r.description} for r in rules
        ],
        rules_digest=rules_digest,
        approval_source=approval_source,
    )


def build_export(
    db: Database,
    scan_id: int,
    *,
    config: PolicyConfig | None = None,
    generated_at: datetime | None = None,
    method: Method | None = None,
    trusted_keys: list[str] | None = None,
    public_key: str | None = None,
    sign_offs: Mapping[tuple[str, str], evidence.SignOff] | None = None,
) -> ExportDocument:
    """The export of scan ``scan_id`` (its findings) with the inventory as it is now, judged
    by the policy data ``config`` (the bundle's), with its conclusions. ``method`` names the
    rules and approval source in force; ``trusted_keys`` / ``public_key`` the key log
    checkpoints must be signed with; ``sign_offs`` the recorded approvals (model, version)."""
    config = config or PolicyConfig()
    generated = (generated_at or datetime.now(UTC)).astimezone(UTC)
    today = generated.date()
    scan = audit.get_scan(db, scan_id)
    if scan is None:
        raise ExportError(f"no scan with id {scan_id}")
    models = report_models(db)
    recorded_exemptions, recorded = attach_sign_off(models, db, config, today)
    if sign_offs is None:
        sign_offs = recorded
    owners = {m["name"]: m["owner"] for m in models}
    findings = [_finding(f, today, owners) for f in audit.scan_findings_of(db, scan_id)]
    clusters = sorted({str(s.get("cluster")) for s in scan["sources"]}) or list(
        scan["summary"].get("clusters", [])
    )
    decisions = jsonable(queries.decision_summary(db, until=scan["finished_at"]))
    integrity = log_integrity(db, trusted=trusted_keys, public_key=public_key)
    previous = audit.previous_scan(db, scan_id)
    verdict = readiness.assess(
        db,
        generated,
        config,
        scan_id=scan_id,
        log_integrity=cast(list[chain.LogReport], integrity["logs"])
        if integrity["error"] is None
        else None,
    )
    if integrity["error"] is not None:
        verdict["checks"].append(
            readiness.Check(
                name="log integrity",
                status="fail",
                reason=f"the logs could not be verified: {integrity['error']}",
            )
        )
        verdict["status"] = readiness.verdict(verdict["checks"])
    return ExportDocument(
        format=EXPORT_FORMAT,
        generated_at=generated.isoformat(),
        scan={**jsonable(scan), "clusters": clusters},
        policy=export_policy(config, scan["bundle_digest"]),
        inventory=_inventory_counts(db),
        models=models,
        findings=findings,
        resolved=[_finding(f, today, owners) for f in audit.findings_resolved_by(db, scan_id)],
        exemptions=exemptions_of(models),
        decisions=decisions,
        readiness=dict(verdict),
        log_integrity=integrity,
        scope=scope_of(scan, previous, decisions, method),
        summary=summary_of(findings, config),
        changes=changes_since(db, scan, previous, today),
        recorded_exemptions=recorded_exemptions,
        coverage=dict(
            evidence.coverage(models, config, log_intact=integrity["intact"], sign_offs=sign_offs)
        ),
    )


def _inventory_counts(db: Database) -> dict[str, int]:
    counts = queries.inventory_counts(db)
    return {
        "models": counts["models"],
        "versions": counts["versions"],
        "live_deployments": counts["live_deployments"],
    }


def attach_sign_off(
    models: list[dict[str, Any]], db: Database, config: PolicyConfig, today: date
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], evidence.SignOff]]:
    """Give each model its recorded sign-off (``approvals``: every version's approval history
    with who, when, evidence, expiry and status, newest first; ``sign_off``: version -> state);
    return every recorded exemption (with who granted it) and, per (model, version), the
    newest current approval (the accountable approver and sign-off date of the evidence)."""
    by_model: dict[str, list[signoff.VersionSignOff]] = {}
    for v in signoff.sign_offs(db, today=today, config=config):
        by_model.setdefault(v.model, []).append(v)
    exemptions: list[dict[str, Any]] = []
    signed: dict[tuple[str, str], evidence.SignOff] = {}
    for m in models:
        versions = by_model.get(m["name"], [])
        history = sorted(
            (a for v in versions for a in v.approvals),
            key=lambda a: (a["created"], a["id"]),
            reverse=True,
        )
        m["approvals"] = jsonable(history)
        m["sign_off"] = {
            v.version: {"state": v.state.state, "reason": v.state.reason} for v in versions
        }
        exemptions.extend(jsonable(e) for v in versions for e in v.exemptions)
        for v in versions:
            current = approvals.current_approvals(v.approvals, today)
            if current:
                newest = max(current, key=lambda a: (a["created"], a["id"]))
                signed[(v.model, v.version)] = evidence.SignOff(
                    approver=newest["approver"],
                    date=newest["created"].astimezone(UTC).date().isoformat(),
                )
    return exemptions, signed


def report_models(db: Database, history_limit: int = 20) -> list[dict[str, Any]]:
    """Every model of the inventory as JSON, each with its recent decisions (``history``)."""
    return [
        jsonable({**m, "history": queries.decisions(db, model=m["name"], limit=history_limit)})
        for m in queries.list_models(db)
    ]


def export_bytes(doc: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, UTF-8, trailing newline): what is written, embedded
    and hashed."""
    return (
        json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=2, default=str) + "\n"
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FINDING_COLUMNS = (
    "type",
    "severity",
    "status",
    "owner",
    "due",
    "overdue",
    "cluster",
    "namespace",
    "kind",
    "name",
    "model",
    "version",
    "message",
    "first_seen",
    "last_seen",
    "resolved_at",
)
MODEL_COLUMNS = (
    "model",
    "version",
    "owner",
    "risk_tier",
    "compliance_status",
    "training_date",
    "training_run",
    "datasets",
    "model_card",
    "certifications",
    "deployments",
    "first_admitted",
    "last_admitted",
)
SOURCE_COLUMNS = ("name", "kind", "cluster", "status", "error", "workloads", "models", "notes")


def write_csv(doc: ExportDocument, directory: Path) -> list[Path]:
    """findings.csv, models.csv and sources.csv in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    def write(name: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        path = directory / name
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
        paths.append(path)

    write("findings.csv", FINDING_COLUMNS, [dict(f) for f in doc["findings"]])
    model_rows: list[dict[str, Any]] = []
    for m in doc["models"]:
        for v in m["versions"]:
            model_rows.append(
                {
                    "model": m["name"],
                    "version": v["version"],
                    "owner": v["owner"],
                    "risk_tier": v["risk_tier"],
                    "compliance_status": v["compliance_status"],
                    "training_date": v["training_date_raw"] or v["training_date"],
                    "training_run": (v["training_run"] or {}).get("run_ref"),
                    "datasets": " ".join(v["datasets"]),
                    "model_card": v["model_card"],
                    "certifications": "; ".join(
                        f"{c['name']} (expires {c['expires'] or c['expires_raw'] or '?'})"
                        for c in v["certifications"]
                    ),
                    "deployments": " ".join(
                        deployment_id(d) for d in v["deployments"] if is_recorded(d["status"])
                    ),
                    "first_admitted": v["first_admitted"],
                    "last_admitted": v["last_admitted"],
                }
            )
    write("models.csv", MODEL_COLUMNS, model_rows)
    write(
        "sources.csv",
        SOURCE_COLUMNS,
        [{**s, "notes": " | ".join(s.get("notes") or [])} for s in doc["scan"]["sources"]],
    )
    return paths
