"""The audit export: one JSON document (``scan``, ``models``, ``findings``, ...) whose
canonical bytes are written with ``--export``, embedded in the PDF and hashed (SHA-256) for the
report's integrity section; plus a CSV rendering for spreadsheets."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypedDict

from modelgate.compliance import is_recorded
from modelgate.inventory import audit, queries, signoff
from modelgate.inventory.db import Database
from modelgate.inventory.records import FindingRecord, deployment_id, jsonable
from policies.config import PolicyConfig

EXPORT_FORMAT = "modelgate.audit/v1"
EXPORT_FILENAME = "modelgate-audit.json"


class ExportError(Exception):
    """The export cannot be built (unknown scan, ...)."""


#: a finding in the export: :class:`modelgate.inventory.records.FindingRecord` as JSON (no id)
ExportFinding = dict[str, Any]


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


class ExportDocument(TypedDict):
    format: str
    generated_at: str
    scan: ExportScan
    policy: ExportPolicy
    #: every model of the inventory: :class:`modelgate.inventory.records.ModelRecord` as JSON
    #: (versions newest first, with datasets, training run, certifications, deployments and
    #: lineage) plus ``history``, its most recent admission decisions
    models: list[dict[str, Any]]
    findings: list[ExportFinding]
    #: findings of earlier scans this scan resolved (not seen again in a scanned cluster)
    resolved: list[ExportFinding]
    exemptions: list[Exemption]
    decisions: dict[str, Any]  # queries.DecisionSummary as JSON
    #: exemptions recorded through the API (ExemptionRecord as JSON, with who granted them)
    recorded_exemptions: list[dict[str, Any]]


def _finding(f: FindingRecord) -> ExportFinding:
    """The record as JSON, without its database id (exports are compared across databases)."""
    finding: ExportFinding = {k: v for k, v in jsonable(f).items() if k != "id"}
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
                        owner=v["owner"] or m["owner"],
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
    )


def build_export(
    db: Database,
    scan_id: int,
    *,
    config: PolicyConfig | None = None,
    generated_at: datetime | None = None,
) -> ExportDocument:
    """The export of scan ``scan_id`` (its findings) with the inventory as it is now, judged
    by the policy data ``config`` (the bundle's)."""
    scan = audit.get_scan(db, scan_id)
    if scan is None:
        raise ExportError(f"no scan with id {scan_id}")
    models = report_models(db)
    config = config or PolicyConfig()
    today = (generated_at or datetime.now(UTC)).astimezone(UTC).date()
    recorded_exemptions = attach_sign_off(models, db, config, today)
    findings = [_finding(f) for f in audit.scan_findings_of(db, scan_id)]
    clusters = sorted({str(s.get("cluster")) for s in scan["sources"]}) or list(
        scan["summary"].get("clusters", [])
    )
    return ExportDocument(
        format=EXPORT_FORMAT,
        generated_at=(generated_at or datetime.now(UTC)).astimezone(UTC).isoformat(),
        scan={**jsonable(scan), "clusters": clusters},
        policy=export_policy(config, scan["bundle_digest"]),
        models=models,
        findings=findings,
        resolved=[_finding(f) for f in audit.findings_resolved_by(db, scan_id)],
        exemptions=exemptions_of(models),
        decisions=jsonable(queries.decision_summary(db, until=scan["finished_at"])),
        recorded_exemptions=recorded_exemptions,
    )


def attach_sign_off(
    models: list[dict[str, Any]], db: Database, config: PolicyConfig, today: date
) -> list[dict[str, Any]]:
    """Give each model its recorded sign-off (``approvals``: every version's approval history
    with who, when, evidence, expiry and status, newest first; ``sign_off``: version -> state)
    and return every recorded exemption (with who granted it)."""
    by_model: dict[str, list[signoff.VersionSignOff]] = {}
    for v in signoff.sign_offs(db, today=today, config=config):
        by_model.setdefault(v.model, []).append(v)
    exemptions: list[dict[str, Any]] = []
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
    return exemptions


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


def write_export(doc: Mapping[str, Any], path: Path) -> str:
    """Write the export; returns its SHA-256."""
    data = export_bytes(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha256_hex(data)


FINDING_COLUMNS = (
    "type",
    "severity",
    "status",
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
