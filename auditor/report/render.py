"""PDF/A-3b rendering with Jinja2 + WeasyPrint (the only module that imports weasyprint).

The HTML template and print stylesheet, the fonts and every asset ship inside the package;
a URL fetcher refuses anything that is not a file inside the package, so rendering never
touches the network. The JSON export is embedded as an associated file (PDF/A-3)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jinja2
import weasyprint
from markupsafe import Markup
from weasyprint.urls import URLFetcher

from auditor.report import charts
from auditor.report.export import EXPORT_FILENAME, ExportDocument, export_bytes, sha256_hex
from modelgate.compliance import FINDING_TYPES, certification_state, present_fields
from modelgate.inventory.parse import parse_metadata
from modelgate.inventory.records import accountable_owner, deployment_id
from modelgate.readiness import empty_log
from policies.config import PolicyConfig

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES = PACKAGE_DIR / "templates"
PDF_VARIANT = "pdf/a-3b"
MAX_FINDING_ROWS = 500  # per type in the PDF; the export always has every finding

log = logging.getLogger(__name__)


class RenderError(Exception):
    """The report could not be rendered or written."""


class RefusedURL(ValueError):
    """A resource outside the package was requested while rendering."""


class PackageOnlyFetcher(URLFetcher):  # type: ignore[misc]
    """Serves ``file:`` URLs inside the report package only; everything else is refused (and
    remembered in :attr:`refused`)."""

    def __init__(self, root: Path = PACKAGE_DIR) -> None:
        super().__init__(allowed_protocols={"file"}, allow_redirects=False, timeout=1)
        self.root = root.resolve()
        self.refused: list[str] = []

    def fetch(self, url: str, headers: Any = None) -> Any:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            self.refused.append(url)
            raise RefusedURL(f"refusing to fetch {url}: reports use packaged assets only")
        path = Path(unquote(parsed.path)).resolve()
        if path != self.root and self.root not in path.parents:
            self.refused.append(url)
            raise RefusedURL(f"refusing to read {path}: outside the report package")
        return super().fetch(url, headers)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["human"] = _human
    env.filters["person"] = _person
    env.filters["percent"] = _percent
    return env


def _person(value: Any) -> Markup:
    """An owner or approver: it may wrap between words, never inside one, so an e-mail
    address (or a team name) is not broken mid-word in a narrow column."""
    words = ("" if value is None else str(value)).split()
    return Markup(" ").join(Markup('<span class="nobreak">{}</span>').format(w) for w in words)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{round(100 * value)} %"


VERDICT_CLASSES = {"ready": "ready", "at risk": "at-risk", "not ready": "not-ready"}
CHECK_ORDER = {"fail": 0, "warn": 1, "ok": 2}


def integrity_lines(integrity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One sentence per log for the cover: intact up to entry N, the latest checkpoint and
    its key, or what is wrong."""
    if integrity.get("error"):
        return [{"ok": False, "text": f"not verified: {integrity['error']}"}]
    lines: list[dict[str, Any]] = []
    for log in integrity["logs"]:
        cp = log.get("latest_checkpoint")
        signed = (
            f"checkpoint of entry {cp['seq']} signed at {_human(cp['signed_at'])} "
            f"(key {cp['key_fingerprint']})"
            if cp
            else "no signed checkpoint yet"
        )
        if log["intact"] and empty_log(log):  # type: ignore[arg-type]  # a LogReport as JSON
            text = f"{log['log']} log empty (nothing recorded yet): nothing to check"
        elif log["intact"]:
            text = (
                f"{log['log']} log intact up to entry {log['last_seq'] or 0} "
                f"({log['entries']} entries verified); {signed}"
            )
        else:
            first = log["problems"][0] if log["problems"] else None
            where = f"; first at entry {first['seq']}: {first['message']}" if first else ""
            text = f"{log['log']} log BROKEN: {log['problems_total']} problem(s){where}; {signed}"
        lines.append({"ok": bool(log["intact"]), "text": text, "problems": log["problems"]})
    return lines


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def cert_state(expires: str | None, today: date, warning_days: int) -> str:
    """The state (:func:`modelgate.compliance.certification_state`) of an exported expiry."""
    return certification_state(_day(expires), today, warning_days).state


def _human(ts: str | None) -> str:
    if not ts:
        return ""
    try:
        return datetime.fromisoformat(ts).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return ts


def _short_digest(digest: str) -> str:
    return digest[: len("sha256:") + 12] if digest.startswith("sha256:") else digest[:19]


def _pair(requests: Mapping[str, Any], limits: Mapping[str, Any], name: str) -> str:
    return f"{requests.get(name, '—')} / {limits.get(name, '—')}"


def runtime_rows(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per deployment of any version: what the last scan saw running (replicas,
    images with their digests, GPUs, CPU/memory requests and limits, usage)."""
    rows: list[dict[str, Any]] = []
    for version in model["versions"]:
        for d in version["deployments"]:
            res: Mapping[str, Any] = d.get("resources") or {}
            statuses = [s for s in res.get("images") or [] if isinstance(s, Mapping)]
            images = [
                f"{s.get('image') or '?'} ({_short_digest(str(s['digest']))}…)"
                if s.get("digest")
                else str(s.get("image") or "")
                for s in statuses
            ] or list(d.get("images") or [])
            requests = res.get("requests") or {}
            limits = res.get("limits") or {}
            usage = res.get("usage") or {}

            rows.append(
                {
                    "where": deployment_id(d),
                    "version": version["version"],
                    "status": d.get("status") or "admitted",
                    "replicas": (
                        "—"
                        if d.get("replicas") is None
                        else f"{'?' if d.get('ready_replicas') is None else d['ready_replicas']}"
                        f"/{d['replicas']}"
                    ),
                    "images": images,
                    "gpus": res.get("gpus", 0) if res else "—",
                    "cpu": _pair(requests, limits, "cpu") if res else "—",
                    "memory": _pair(requests, limits, "memory") if res else "—",
                    "usage": ", ".join(f"{k} {v}" for k, v in sorted(usage.items())),
                    "last_seen": _human(d.get("last_seen")) or "never scanned",
                }
            )
    return rows


def build_context(doc: ExportDocument, digest: str, size: int) -> dict[str, Any]:
    """Everything the template shows, derived from the export document only."""
    generated = datetime.fromisoformat(doc["generated_at"])
    today = generated.date()
    policy = doc["policy"]
    warning_days = policy["certification_warning_days"]
    severity_order = PolicyConfig(severities=tuple(policy["severities"]))
    finding_severity = dict(policy["finding_severities"])
    scan = dict(doc["scan"])
    scan["started_at"] = _human(doc["scan"]["started_at"])
    scan["finished_at"] = _human(doc["scan"]["finished_at"])

    models: list[dict[str, Any]] = []
    tier_rows: dict[str, list[dict[str, Any]]] = {"high": [], "limited": [], "minimal": []}
    compliance: dict[str, int] = {}
    completeness_fields = [
        *policy["required_fields"],
        *(f for f in ("certifications",) if policy["certified_tiers"]),
        *policy["recommended_fields"],
    ]
    complete_counts = dict.fromkeys(completeness_fields, 0)
    for m in doc["models"]:
        if not m["versions"]:
            continue
        latest = m["versions"][0]  # newest first
        certs = [
            {**c, "state": cert_state(c["expires"], today, warning_days)}
            for c in latest["certifications"]
        ]
        models.append({**m, "latest": latest, "certifications": certs, "runtime": runtime_rows(m)})
        tier = latest["risk_tier"] if latest["risk_tier"] in tier_rows else "limited"
        tier_rows[tier].append(
            {
                "name": m["name"],
                "version": latest["version"],
                "owner": accountable_owner(latest["owner"], m["owner"]),
                "compliance_status": latest["compliance_status"],
                "deployments": sum(1 for v in m["versions"] for d in v["deployments"] if d["live"]),
                "certifications": certs,
            }
        )
        status = latest["compliance_status"] or "unknown"
        compliance[status] = compliance.get(status, 0) + 1
        present = present_fields(parse_metadata(latest["metadata"]))
        for name in completeness_fields:
            if present.get(name, bool(latest["metadata"].get(name, "").strip())):
                complete_counts[name] += 1

    by_type: dict[str, list[Mapping[str, Any]]] = {t: [] for t in FINDING_TYPES}
    for f in doc["findings"]:
        by_type.setdefault(f["type"], []).append(f)
    finding_types: list[dict[str, Any]] = [
        {
            "type": t,
            "severity": finding_severity.get(t, "info"),
            "count": len(rows),
            "rows": rows[:MAX_FINDING_ROWS],
        }
        for t, rows in by_type.items()
    ]
    severities: dict[str, int] = {}
    for f in doc["findings"]:
        severities[f["severity"]] = severities.get(f["severity"], 0) + 1
    summary = doc["scan"]["summary"]
    n_models = len(models)
    chart_svgs = {
        "tiers": charts.bar_chart(
            "Models by risk tier", [(t, len(rows)) for t, rows in tier_rows.items()]
        ),
        "compliance": charts.stacked_bar(
            "Models by compliance status", sorted(compliance.items()) or [("none", 0)]
        ),
        "findings": charts.bar_chart(
            "Findings by type",
            [(t["type"], t["count"]) for t in finding_types],
            colors={
                t: charts.SEVERITY_COLORS.get(s, charts.SEVERITY_COLORS["info"])
                for t, s in finding_severity.items()
            },
        ),
        "completeness": charts.bar_chart(
            "Documentation completeness (% of models)",
            [
                (name, round(100.0 * n / n_models, 1) if n_models else 0.0)
                for name, n in complete_counts.items()
            ],
            unit=" %",
            maximum=100,
        ),
    }
    decisions: dict[str, Any] = dict(doc["decisions"])
    decisions["period_start"] = _human(decisions.get("period_start"))
    decisions["period_end"] = _human(decisions.get("period_end"))
    sources = doc["scan"]["sources"]
    verdict = doc["readiness"]
    checks = sorted(verdict["checks"], key=lambda c: CHECK_ORDER.get(c["status"], 3))
    coverage = doc["coverage"]
    items = [{**item, "code": n} for n, item in enumerate(coverage["items"], 1)]
    return {
        "verdict": {
            "status": verdict["status"],
            "css": VERDICT_CLASSES.get(verdict["status"], "not-ready"),
            "checks": checks,
        },
        "integrity": integrity_lines(doc["log_integrity"]),
        "log_key": doc["log_integrity"],
        "summary": doc["summary"],
        "scope": doc["scope"],
        "changes": doc["changes"],
        "coverage": {**coverage, "items": items},
        "policy": policy,
        "scan": scan,
        "sources": sources,
        "clusters": doc["scan"]["clusters"],
        "generated_at": _human(doc["generated_at"]),
        "generated_iso": generated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "export_name": EXPORT_FILENAME,
        "export_digest": digest,
        "export_size": size,
        "models": models,
        "recorded_exemptions": doc.get("recorded_exemptions", []),
        "tiers": list(tier_rows.items()),
        "finding_types": finding_types,
        "findings_total": len(doc["findings"]),
        "resolved": doc["resolved"][:MAX_FINDING_ROWS],
        "resolved_total": len(doc["resolved"]),
        "severities": sorted(
            severities.items(),
            key=lambda kv: (
                -severity_order.severity_rank(kv[0]) if kv[0] in severity_order.severities else 1
            ),
        ),
        "exemptions": doc["exemptions"],
        "decisions": decisions,
        "charts": {k: Markup(v) for k, v in chart_svgs.items()},
        "kpi": {
            "models": n_models,
            "live_deployments": doc["inventory"]["live_deployments"],
            "workloads": summary.get("workloads", 0),
            "discovered_models": summary.get("models", 0),
            "open_findings": len(doc["findings"]),
            "unreachable": sum(1 for s in sources if s.get("status") != "ok"),
        },
    }


def render_html(doc: ExportDocument, digest: str, size: int) -> str:
    return _environment().get_template("report.html").render(**build_context(doc, digest, size))


def render_pdf(
    doc: ExportDocument,
    target: Path,
    *,
    data: bytes | None = None,
    progress: Callable[[str], None] | None = None,
    fetcher: PackageOnlyFetcher | None = None,
) -> str:
    """Render ``doc`` as PDF/A-3b into ``target`` with the export embedded; returns the
    SHA-256 of the embedded export bytes."""
    data = export_bytes(doc) if data is None else data
    digest = sha256_hex(data)
    fetcher = fetcher or PackageOnlyFetcher()
    if progress:
        progress("template")
    html = render_html(doc, digest, len(data))
    try:
        if progress:
            progress("layout")
        document = weasyprint.HTML(
            string=html, base_url=str(TEMPLATES) + "/", url_fetcher=fetcher
        ).render()
        if progress:
            progress("pdf")
        attachment = weasyprint.Attachment(
            file_obj=io.BytesIO(data),
            name=EXPORT_FILENAME,
            description="modelgate audit export (JSON) — the data behind this report",
            relationship="Data",
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        document.write_pdf(
            str(target),
            pdf_variant=PDF_VARIANT,
            attachments=[attachment],
            custom_metadata=False,
        )
    except OSError as e:
        raise RenderError(f"cannot write the report {target}: {e}") from e
    return digest
