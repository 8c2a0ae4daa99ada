"""``modelgate audit`` and ``modelgate report``.

Exit codes: 0 success; 1 findings at or above ``--fail-on``; 2 bad input (options, paths,
unknown context or scan); 3 operational failure (database, policy bundle, report writing) or,
for a single scan, every source unreachable. An unreachable cluster or account among reachable
ones is reported in the scan and the report, never fatal.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from auditor.discovery import (
    DiscoverySource,
    SourceConfigError,
    check_unique_clusters,
    create_sources,
    parse_source_spec,
)
from auditor.reconcile import FINDING_TYPES, Reconciler, ScanResult
from modelgate.settings import Settings, SettingsError
from policies.config import PolicyConfig

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def wait_between_scans(seconds: float) -> None:
    """Sleep until the next scan of ``--interval`` (its own name: the tests replace it
    without replacing every ``time.sleep`` of the process)."""
    time.sleep(seconds)


def parse_interval(text: str) -> float:
    """``"6h"`` -> 21600.0 seconds (units s, m, h, d; plain numbers are seconds)."""
    m = _DURATION.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter(
            f"{text!r} is not a duration like 30m, 6h or 1d", param_hint="--interval"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _out_path(template: str | None, scan_id: int, when: datetime) -> Path | None:
    """Output path with ``{scan_id}`` and ``{timestamp}`` placeholders filled in."""
    if not template:
        return None
    try:
        return Path(template.format(scan_id=scan_id, timestamp=when.strftime("%Y%m%dT%H%M%SZ")))
    except (KeyError, IndexError, ValueError) as e:
        _fail(f"bad placeholder in output path {template!r}: {e}", EXIT_USAGE)


class _Progress:
    """A tqdm counter on stderr (only when enabled, i.e. on a terminal by default)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __call__(self, event: str, amount: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(desc="scanning", unit=" workloads", file=sys.stderr, leave=False)
        if event == "workload":
            self._bar.update(amount)

    @contextmanager
    def stage(self, label: str) -> Iterator[Callable[[str], None]]:
        bar: Any = None
        if self.enabled:
            from tqdm import tqdm

            bar = tqdm(total=3, desc=label, file=sys.stderr, leave=False)

        def step(name: str) -> None:
            if bar is not None:
                bar.set_postfix_str(name)
                bar.update(1)

        try:
            yield step
        finally:
            if bar is not None:
                bar.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _open_database(settings: Settings) -> Any:
    from modelgate.inventory.db import Database, InventoryError

    try:
        return Database(settings.database_url)
    except InventoryError as e:
        _fail(str(e), EXIT_USAGE)


def _engine(settings: Settings) -> Any:
    from modelgate.engine import engine_for
    from policies.engines import PolicyError

    try:
        engine = engine_for(settings)
    except PolicyError as e:
        _fail(f"the policy bundle in {settings.policy_dir} cannot be used: {e}", EXIT_FAILURE)
    if not engine.ready():
        _fail(f"the policy bundle in {settings.policy_dir} could not be loaded", EXIT_FAILURE)
    return engine


def report_inputs(settings: Settings) -> dict[str, Any]:
    """What a report states about its method and checks its logs with: the rules of the
    bundle in force, the approval source, and the key log checkpoints must be signed with
    (MODELGATE_LOG_PUBLIC_KEY_FILE, else the signing key's public half)."""
    from auditor.report.export import method_of
    from modelgate.inventory import chain
    from policies.bundle import load_bundle
    from policies.engines import BundleError
    from policies.rules import bundle_rules

    try:
        bundle = load_bundle(settings.policy_dir)
    except BundleError as e:
        _fail(f"the policy bundle in {settings.policy_dir} cannot be read: {e}", EXIT_FAILURE)
    key_path = settings.log_public_key_file or settings.log_signing_key_file
    trusted: list[str] | None = None
    public_key: str | None = None
    if key_path is not None:
        try:
            key = chain.load_public_key(key_path)
        except chain.ChainError as e:
            _fail(str(e), EXIT_USAGE)
        trusted = [chain.fingerprint(key)]
        public_key = chain.public_key_text(key)
    return {
        "method": method_of(bundle_rules(bundle), bundle.digest, settings.approval_source),
        "trusted_keys": trusted,
        "public_key": public_key,
    }


def write_outputs(
    db: Any,
    scan_id: int,
    *,
    config: PolicyConfig,
    report: Path | None,
    export: Path | None,
    csv_dir: Path | None,
    progress: _Progress,
    inputs: dict[str, Any] | None = None,
) -> None:
    """Export / CSV / PDF for one scan, printing where each went."""
    from auditor.report.export import ExportError, build_export, export_bytes, sha256_hex
    from auditor.report.export import write_csv as write_csv_files

    if not (report or export or csv_dir):
        return
    try:
        doc = build_export(db, scan_id, config=config, **(inputs or {}))
    except ExportError as e:
        _fail(str(e), EXIT_USAGE)
    data = export_bytes(doc)
    digest = sha256_hex(data)
    try:
        if export:
            export.parent.mkdir(parents=True, exist_ok=True)
            export.write_bytes(data)
            click.echo(f"export: {export} (sha256 {digest})")
        if csv_dir:
            files = write_csv_files(doc, csv_dir)
            click.echo(f"csv: {', '.join(str(p) for p in files)}")
    except OSError as e:
        _fail(f"cannot write the export: {e}", EXIT_FAILURE)
    if report:
        from auditor.report.render import RenderError, render_pdf

        try:
            with progress.stage("rendering report") as step:
                render_pdf(doc, report, data=data, progress=step)
        except RenderError as e:
            _fail(str(e), EXIT_FAILURE)
        click.echo(f"report: {report} (PDF/A-3b, export sha256 {digest})")


def _write_outputs_or_fail(db: Any, scan_id: int, **kwargs: Any) -> None:
    from modelgate.inventory.db import InventoryError

    try:
        write_outputs(db, scan_id, **kwargs)
    except InventoryError as e:
        _fail(str(e), EXIT_FAILURE)


def summarize(result: ScanResult) -> str:
    counts = ", ".join(f"{t} {result.counts.get(t, 0)}" for t in FINDING_TYPES)
    lines = [
        f"scan #{result.scan_id}: {result.workloads} workloads, {result.models} models, "
        f"{len(result.sources)} sources; findings: {counts}; resolved {result.resolved}"
    ]
    for s in result.sources:
        state = "ok" if s.status == "ok" else f"{s.status.upper()}: {s.error}"
        lines.append(f"  {s.name}: {state} ({s.workloads} workloads, {s.models} models)")
        lines.extend(f"    note: {n}" for n in s.notes[:20])
    return "\n".join(lines)


def _reload_policies(engine: Any, reconciler: Reconciler, settings: Settings) -> None:
    """Between the scans of ``--interval``: pick up an edited policy bundle (a bundle that
    does not load is reported and the previous one keeps evaluating)."""
    from policies.engines import PolicyError

    try:
        if engine.reload_if_changed():
            click.echo(f"policy bundle reloaded (digest {engine.bundle_digest})", err=True)
    except PolicyError as e:
        click.echo(
            f"Error: the policy bundle in {settings.policy_dir} does not load, "
            f"the previous one is kept: {e}",
            err=True,
        )
    reconciler.policy_data = PolicyConfig.load(settings.policy_dir)


def format_scans(scans: list[Any]) -> str:
    """The ``report --list`` table: one line per recorded scan."""
    if not scans:
        return "no scan recorded yet"
    lines = [f"{'ID':>5}  {'STARTED (UTC)':<16}  {'STATUS':<9}  FINDINGS  CLUSTERS"]
    for scan in scans:
        summary = scan["summary"] or {}
        findings = sum(int(n) for n in (summary.get("findings") or {}).values())
        unreachable = set(summary.get("unreachable") or [])
        clusters = ", ".join(
            f"{s.get('cluster')} ({s.get('status')})"
            if s.get("name") in unreachable
            else str(s.get("cluster"))
            for s in scan["sources"]
        )
        started = scan["started_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"{scan['id']:>5}  {started:<16}  {scan['status']:<9}  {findings:>8}  {clusters or '-'}"
        )
    return "\n".join(lines)


@click.command("audit")
@click.option(
    "--context",
    "contexts",
    multiple=True,
    metavar="NAME",
    help="Kubeconfig context to scan (repeatable); its name is the cluster name.",
)
@click.option("--all-contexts", is_flag=True, help="Scan every context of the kubeconfig.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).",
)
@click.option(
    "--in-cluster",
    is_flag=True,
    help="Use the pod's service account (cluster name: MODELGATE_CLUSTER_NAME).",
)
@click.option(
    "--manifests",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Offline snapshot directory (repeatable); the directory name is the cluster name.",
)
@click.option(
    "--sagemaker-region",
    "sagemaker_regions",
    multiple=True,
    metavar="REGION",
    help="Scan AWS SageMaker endpoints in REGION (repeatable).",
)
@click.option(
    "--sagemaker-endpoint-url",
    metavar="URL",
    help="SageMaker API endpoint override (e.g. a test server).",
)
@click.option(
    "--report",
    "report_path",
    metavar="PATH.pdf",
    help="Write the PDF/A-3b report ({scan_id}, {timestamp} placeholders allowed).",
)
@click.option(
    "--export",
    "export_path",
    metavar="PATH.json",
    help="Write the JSON export (scan, models, findings, ...; same placeholders).",
)
@click.option(
    "--csv",
    "csv_dir",
    metavar="DIR",
    help="Write findings.csv, models.csv and sources.csv into DIR (same placeholders).",
)
@click.option(
    "--source",
    "extra_sources",
    multiple=True,
    metavar="KIND[:k=v,...]",
    help="Any registered discovery source (plugins included), e.g. vertex:project=p,region=r.",
)
@click.option(
    "--fail-on",
    type=click.Choice(PolicyConfig().severities),
    help="Exit 1 when findings of this severity or worse exist.",
)
@click.option(
    "--interval",
    metavar="DURATION",
    help="Rescan forever, every DURATION (e.g. 30m, 6h, 1d); an edited policy bundle is "
    "picked up between scans and a failed later scan does not stop the loop.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 5000),
    default=250,
    show_default=True,
    help="Kubernetes list page size.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
def audit_command(
    contexts: tuple[str, ...],
    all_contexts: bool,
    kubeconfig: str | None,
    in_cluster: bool,
    manifests: tuple[str, ...],
    sagemaker_regions: tuple[str, ...],
    sagemaker_endpoint_url: str | None,
    report_path: str | None,
    export_path: str | None,
    csv_dir: str | None,
    extra_sources: tuple[str, ...],
    fail_on: str | None,
    interval: str | None,
    page_size: int,
    progress: bool | None,
) -> None:
    """Discover model workloads, reconcile them with the inventory, record findings and write
    reports.

    Each workload is evaluated by the policy bundle (mode "audit") and matched against the
    inventory by (cluster, namespace, kind, name). Finding types: orphan, violation, drift,
    retired, expiring-certification, missing-metadata, and with MODELGATE_APPROVAL_SOURCE=
    inventory (the default) unapproved (running without a current recorded approval) and
    expiring-approval. An unreachable cluster or account is
    reported in the summary, the export and the report; the rest of the scan goes on.

    \b
    Exit codes:
      0  scan done (and no finding at or above --fail-on)
      1  findings of the --fail-on severity or worse exist
      2  bad input (options, paths, unknown context)
      3  database, policy bundle or report failure, or every source unreachable
         (a single scan; the scan is still recorded and reported)
    """
    period = parse_interval(interval) if interval else None
    if period is not None and fail_on:
        _fail("--fail-on gates one scan; it cannot be combined with --interval", EXIT_USAGE)
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        _fail(str(e), EXIT_USAGE)
    options: dict[str, Any] = {
        "contexts": list(contexts),
        "all_contexts": all_contexts,
        "kubeconfig": kubeconfig,
        "in_cluster": in_cluster,
        "manifests": list(manifests),
        "sagemaker_regions": list(sagemaker_regions),
        "sources": list(extra_sources),
    }
    if not (
        contexts
        or all_contexts
        or kubeconfig
        or in_cluster
        or manifests
        or sagemaker_regions
        or extra_sources
    ):
        _fail(
            "nothing to scan: pass --context, --all-contexts, --kubeconfig, --in-cluster, "
            "--manifests, --sagemaker-region or --source",
            EXIT_USAGE,
        )
    if sagemaker_endpoint_url and not sagemaker_regions:
        _fail("--sagemaker-endpoint-url needs --sagemaker-region", EXIT_USAGE)

    def make_sources() -> list[DiscoverySource]:
        sources: list[DiscoverySource] = []
        try:
            if manifests:
                sources += create_sources("manifests", {"paths": list(manifests)})
            if contexts or all_contexts or kubeconfig or in_cluster:
                sources += create_sources(
                    "kubernetes",
                    {
                        "contexts": list(contexts),
                        "all_contexts": all_contexts,
                        "kubeconfig": kubeconfig,
                        "in_cluster": in_cluster,
                        "cluster_name": settings.cluster_name,
                        "page_size": page_size,
                    },
                )
            if sagemaker_regions:
                sources += create_sources(
                    "sagemaker",
                    {"regions": list(sagemaker_regions), "endpoint_url": sagemaker_endpoint_url},
                )
            for spec in extra_sources:
                kind, source_options = parse_source_spec(spec)
                sources += create_sources(kind, source_options)
            check_unique_clusters(sources)
        except SourceConfigError as e:
            _fail(str(e), EXIT_USAGE)
        return sources

    make_sources()  # validate the options before touching the database
    db = _open_database(settings)
    engine = _engine(settings)
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(show)
    reconciler = Reconciler(
        db,
        engine,
        policy_data=PolicyConfig.load(settings.policy_dir),
        progress=bar,
        approval_source=settings.approval_source,
    )
    from modelgate.inventory.db import InventoryError

    def run_once() -> ScanResult:
        try:
            result = reconciler.scan(make_sources(), options)
        except InventoryError as e:
            _fail(str(e), EXIT_FAILURE)
        finally:
            bar.close()
        click.echo(summarize(result))
        when = result.started_at
        _write_outputs_or_fail(
            db,
            result.scan_id,
            config=reconciler.policy_data,
            report=_out_path(report_path, result.scan_id, when),
            export=_out_path(export_path, result.scan_id, when),
            csv_dir=_out_path(csv_dir, result.scan_id, when),
            progress=bar,
            inputs=report_inputs(settings) if (report_path or export_path or csv_dir) else None,
        )
        return result

    try:
        result = run_once()  # the first scan fails fast (schema missing, bad bundle, ...)
        while period is not None:
            click.echo(f"next scan in {interval} ({period:.0f} s)", err=True)
            wait_between_scans(period)
            _reload_policies(engine, reconciler, settings)
            try:
                run_once()
            except SystemExit as e:  # a later scan's failure (database down...): keep looping
                if e.code not in (EXIT_USAGE, EXIT_FAILURE):
                    raise
                click.echo("the scan failed; the loop goes on", err=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        engine.close()
        db.dispose()
    if period is None and result.sources and all(s.status != "ok" for s in result.sources):
        click.echo(
            "Error: every source was unreachable: the scan saw nothing "
            "(its report and export say so)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    if fail_on and result.worst_severity_at_least(fail_on, reconciler.policy_data):
        click.echo(f"findings of severity {fail_on} or worse exist", err=True)
        sys.exit(EXIT_FINDINGS)


@click.command("report")
@click.option("--scan", "scan_id", type=int, help="Scan id (default: the latest scan).")
@click.option(
    "--report",
    "report_path",
    metavar="PATH.pdf",
    help="Write the PDF/A-3b report ({scan_id}, {timestamp} placeholders allowed).",
)
@click.option("--export", "export_path", metavar="PATH.json", help="Write the JSON export.")
@click.option(
    "--csv", "csv_dir", metavar="DIR", help="Write findings.csv, models.csv, sources.csv into DIR."
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr.")
@click.option(
    "--list",
    "list_scans",
    is_flag=True,
    help="List the recorded scans (newest first) instead of writing anything.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10000),
    default=20,
    show_default=True,
    help="How many scans --list shows.",
)
def report_command(
    scan_id: int | None,
    report_path: str | None,
    export_path: str | None,
    csv_dir: str | None,
    progress: bool | None,
    list_scans: bool,
    limit: int,
) -> None:
    """Render the report (and exports) of an earlier scan.

    The findings are those the scan saw, with their status as it is now (a finding resolved
    by a later scan shows as resolved); the inventory is the current one.

    \b
    Exit codes: 0 written, 2 bad input or unknown scan, 3 database or report failure.
    """
    from modelgate.inventory import audit
    from modelgate.inventory.db import InventoryError

    if list_scans and (report_path or export_path or csv_dir or scan_id is not None):
        _fail("--list cannot be combined with --scan, --report, --export or --csv", EXIT_USAGE)
    if not (list_scans or report_path or export_path or csv_dir):
        _fail("nothing to write: pass --report, --export or --csv (or --list)", EXIT_USAGE)
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        _fail(str(e), EXIT_USAGE)
    db = _open_database(settings)
    try:
        if list_scans:
            try:
                scans = audit.list_scans(db, limit=limit)
            except InventoryError as e:
                _fail(str(e), EXIT_FAILURE)
            click.echo(format_scans(scans))
            return
        try:
            scan = audit.get_scan(db, scan_id) if scan_id is not None else audit.latest_scan(db)
        except InventoryError as e:
            _fail(str(e), EXIT_FAILURE)
        if scan is None:
            _fail(
                f"no scan with id {scan_id}" if scan_id is not None else "no scan recorded yet",
                EXIT_USAGE,
            )
        show = sys.stderr.isatty() if progress is None else progress
        now = datetime.now(UTC)
        _write_outputs_or_fail(
            db,
            scan["id"],
            config=PolicyConfig.load(settings.policy_dir),
            report=_out_path(report_path, scan["id"], now),
            export=_out_path(export_path, scan["id"], now),
            csv_dir=_out_path(csv_dir, scan["id"], now),
            progress=_Progress(show),
            inputs=report_inputs(settings),
        )
    finally:
        db.dispose()
