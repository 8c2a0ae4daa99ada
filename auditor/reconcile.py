"""Reconciliation: every discovered workload is evaluated by the policy engine (mode
``audit``) and matched against the inventory by (cluster, namespace, kind, name).

Finding types (:data:`modelgate.compliance.FINDING_TYPES`; their severities are policy data,
``finding_severities`` in the bundle's data file, shipped as below):

=========================  ========  ==================================================
type                       severity  meaning
=========================  ========  ==================================================
``orphan``                 high      a running model the inventory never admitted
``violation``              high      the model fails the policy now
``drift``                  medium    running images or version differ from the admitted
``unapproved``             high      running, without a current recorded approval
                                     (``approval_source="inventory"``)
``expiring-approval``      medium    the approval it runs under expires soon
``expiring-certification`` medium    a certification expires soon (or has expired)
``missing-metadata``       medium    required metadata absent: queued for manual review
``retired``                low       in the inventory, not found by a successful scan
=========================  ========  ==================================================

One finding per problem: a running model the inventory never admitted is one ``orphan``
finding whose details list its policy violations, missing fields and certification issues;
an admitted model that fails the policy is one ``violation`` finding (its details list the
missing fields, and the expired certifications the violations are about);
``missing-metadata`` is only for required fields the policy does not deny. Counts therefore
never count a problem twice.

Every finding names its accountable ``owner`` — the model's owner (the workload's ``owner``
annotation, else the admitted version's), or for orphans without one the Namespace label
``namespace_owner_label`` of the policy data (``modelgate.dev/owner``) — and is due
``remediation_days[severity]`` days after it was first seen (policy data).

Findings are written in batches while the scan runs, so memory does not grow with the
number of workloads; runtime metadata is written onto the inventory's deployments. Each
source's report records the enforcement mode of the namespaces it saw models in and the
models (and versions) it found running, which the report's scope and its comparison with
the previous scan use.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from auditor.discovery.base import (
    DiscoveredWorkload,
    DiscoverySource,
    SourceUnreachable,
    check_unique_clusters,
)
from modelgate import approvals as signoff_rules
from modelgate.capacity import pod_amounts, usage_amounts
from modelgate.compliance import (
    FINDING_TYPES,
    certification_issues,
    certification_state,
    documentation_gaps,
    is_recorded,
)
from modelgate.inventory import audit, queries, signoff
from modelgate.inventory import capacity as inventory_capacity
from modelgate.inventory.db import Database, InventoryError
from modelgate.inventory.parse import parse_certifications
from modelgate.inventory.records import CapacitySampleInput, DeploymentRecord, FindingInput
from modelgate.policy_input import build_input, synthesize_request
from policies.config import PolicyConfig
from policies.engines.base import PolicyEngine, PolicyError, PolicyResult

log = logging.getLogger(__name__)

__all__ = ["FINDING_TYPES", "Reconciler", "ScanResult", "SourceReport"]

BATCH = 500


@dataclass
class SourceReport:
    name: str
    kind: str
    cluster: str
    status: str = "ok"  # ok / unreachable
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    workloads: int = 0
    models: int = 0
    #: enforcement mode -> namespaces where model workloads were seen
    enforcement: dict[str, set[str]] = field(default_factory=dict)
    #: model name -> versions seen running
    models_running: dict[str, set[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "cluster": self.cluster,
            "status": self.status,
            "error": self.error,
            "notes": list(self.notes),
            "workloads": self.workloads,
            "models": self.models,
            "enforcement": {m: sorted(ns) for m, ns in sorted(self.enforcement.items())},
            "models_running": {m: sorted(v) for m, v in sorted(self.models_running.items())},
        }


@dataclass
class ScanResult:
    scan_id: int
    started_at: datetime
    finished_at: datetime
    bundle_digest: str
    sources: list[SourceReport]
    counts: dict[str, int]  # findings by type (this scan)
    severities: dict[str, int]
    workloads: int
    models: int
    resolved: int

    @property
    def unreachable(self) -> list[SourceReport]:
        return [s for s in self.sources if s.status != "ok"]

    def worst_severity_at_least(self, threshold: str, config: PolicyConfig) -> bool:
        """Whether a finding of ``threshold`` or worse (in ``config``'s order) was seen."""
        limit = config.severity_rank(threshold)
        return any(
            n and sev in config.severities and config.severity_rank(sev) >= limit
            for sev, n in self.severities.items()
        )


ProgressCallback = Callable[[str, int], None]  # (event, amount): "workload"/"source"


class Reconciler:
    """Runs a scan over sources and records it."""

    def __init__(
        self,
        db: Database,
        engine: PolicyEngine,
        *,
        policy_data: PolicyConfig | None = None,
        now: Callable[[], datetime] | None = None,
        progress: ProgressCallback | None = None,
        batch_size: int = BATCH,
        approval_source: str = "annotation",
    ) -> None:
        self.db = db
        self.engine = engine
        #: ``inventory``: sign-off is judged from the recorded approvals (``unapproved`` and
        #: ``expiring-approval`` findings), the rest of the policy as at admission
        self.approval_source = approval_source
        self._sign_offs: dict[tuple[str, str], signoff.SignOffInput] = {}
        self.policy_data = policy_data or PolicyConfig()
        self._now = now or (lambda: datetime.now(UTC))
        self.progress = progress
        self.batch_size = batch_size
        #: per cluster, the workloads of the running scan whose evaluation failed
        self._unevaluated: dict[str, set[tuple[str, str, str]]] = {}

    # ------------------------------------------------------------------ public

    def scan(
        self, sources: Sequence[DiscoverySource], options: Mapping[str, Any] | None = None
    ) -> ScanResult:
        """Scan ``sources`` (at most one per cluster: :class:`SourceConfigError` otherwise)."""
        check_unique_clusters(sources)
        started = self._now()
        scan_id = audit.start_scan(
            self.db,
            bundle_digest=self.engine.bundle_digest,
            engine=self.engine.name,
            options=dict(options or {}),
            started_at=started,
        )
        reports: list[SourceReport] = []
        counts: Counter[str] = Counter()
        severities: Counter[str] = Counter()
        scanned: dict[str, set[str]] = {}
        self._unevaluated = {}
        if self.approval_source == "inventory":
            self._sign_offs = signoff.sign_off_inputs(self.db)
        workloads = models = 0
        status = "completed"
        try:
            for source in sources:
                report = self._scan_source(scan_id, source, started, counts, severities)
                reports.append(report)
                workloads += report.workloads
                models += report.models
                if report.status == "ok":
                    skipped = set(source.skipped_kinds)
                    scanned.setdefault(source.cluster, set()).update(skipped)
                if self.progress:
                    self.progress("source", 1)
        except BaseException:
            status = "failed"
            raise
        finally:
            finished = self._now()
            summary = {
                "workloads": workloads,
                "models": models,
                "findings": dict(counts),
                "severities": dict(severities),
                "clusters": sorted({s.cluster for s in sources}),
                "unreachable": [r.name for r in reports if r.status != "ok"],
            }
            resolved = audit.finish_scan(
                self.db,
                scan_id,
                sources=[r.as_dict() for r in reports],
                summary=summary,
                scanned_clusters=scanned if status == "completed" else {},
                status=status,
                finished_at=finished,
                unevaluated=self._unevaluated,
            )
        return ScanResult(
            scan_id=scan_id,
            started_at=started,
            finished_at=finished,
            bundle_digest=self.engine.bundle_digest,
            sources=reports,
            counts=dict(counts),
            severities=dict(severities),
            workloads=workloads,
            models=models,
            resolved=resolved,
        )

    # ------------------------------------------------------------------ per source

    def _scan_source(
        self,
        scan_id: int,
        source: DiscoverySource,
        seen_at: datetime,
        counts: Counter[str],
        severities: Counter[str],
    ) -> SourceReport:
        report = SourceReport(name=source.name, kind=source.kind, cluster=source.cluster)
        admitted = queries.deployments_by_key(self.db, source.cluster)
        seen: set[tuple[str, str, str]] = set()
        pending: list[FindingInput] = []
        runtime: list[audit.RuntimeUpdate] = []
        samples: list[CapacitySampleInput] = []

        def flush() -> None:
            if pending:
                audit.record_findings(
                    self.db,
                    scan_id,
                    pending,
                    seen_at,
                    remediation_days=self.policy_data.remediation_days,
                )
                for f in pending:
                    counts[f["type"]] += 1
                    severities[f["severity"]] += 1
                pending.clear()
            if runtime:
                audit.update_runtime(self.db, runtime, seen_at)
                runtime.clear()
            if samples:
                inventory_capacity.record_samples(self.db, scan_id, samples, seen_at)
                samples.clear()

        try:
            for found in source.discover():
                key = (found.workload["namespace"], found.workload["kind"], found.workload["name"])
                if key in seen:
                    report.notes.append(
                        f"duplicate {key[1]} {key[0]}/{key[2]} in {source.name}: "
                        "the later copy was ignored"
                    )
                    continue
                seen.add(key)
                report.workloads += 1
                entry = admitted.get(key)
                if entry is not None and is_recorded(entry["status"]):
                    runtime.append(_runtime_update(found))
                new = self._workload_findings(found, entry, report)
                if new is not None:
                    report.models += 1
                    pending.extend(new)
                    registered = entry is not None and is_recorded(entry["status"])
                    samples.append(_capacity_sample(found, entry, registered))
                if (
                    len(pending) >= self.batch_size
                    or len(runtime) >= self.batch_size
                    or len(samples) >= self.batch_size
                ):
                    flush()
                if self.progress:
                    self.progress("workload", 1)
        except SourceUnreachable as e:
            report.status = "unreachable"
            report.error = str(e)
            log.warning("source %s unreachable: %s", source.name, e)
        except InventoryError:
            raise  # the database, not the source: the scan cannot go on
        except Exception as e:  # a source's own bug or an unexpected client error
            report.status = "failed"
            report.error = f"{type(e).__name__}: {e}"
            log.exception("source %s failed", source.name)
        else:
            # kinds a source could not list (e.g. forbidden) cannot prove anything retired
            skipped: set[str] = set(source.skipped_kinds)
            gone = [
                entry
                for key, entry in admitted.items()
                if key not in seen and is_recorded(entry["status"]) and entry["kind"] not in skipped
            ]
            for entry in gone:
                pending.append(
                    self._finding(
                        "retired", _admitted_identity(entry), _retired(entry), owner=entry["owner"]
                    )
                )
            audit.mark_not_running(self.db, [e["id"] for e in gone])
        finally:
            report.notes = [*source.notes, *report.notes]
        flush()
        return report

    def _evaluate(self, found: DiscoveredWorkload) -> PolicyResult:
        request = synthesize_request(found.obj, found.workload)
        registry = None
        if self.approval_source == "inventory":
            md = found.workload["metadata"]
            registry = signoff_rules.assumed_signed_off(
                found.cluster, str(md.get("model-name") or ""), str(md.get("model-version") or "")
            )
        policy_input = build_input(
            request=request,
            workload=found.workload,
            mode="audit",
            namespace_labels=found.namespace_labels,
            now=self._now(),
            registry=registry,
        )
        return self.engine.evaluate(policy_input)

    def _workload_findings(
        self,
        found: DiscoveredWorkload,
        entry: DeploymentRecord | None,
        report: SourceReport,
    ) -> list[FindingInput] | None:
        """Findings for one workload; ``None`` when it is not a model workload."""
        w = found.workload
        try:
            result = self._evaluate(found)
        except PolicyError as e:
            report.notes.append(
                f"policy evaluation failed for {w['kind']} {w['namespace']}/{w['name']}: {e}"
            )
            # not judged: its findings of earlier scans stay open (neither seen nor resolved)
            self._unevaluated.setdefault(found.cluster, set()).add(
                (w["namespace"], w["kind"], w["name"])
            )
            return None
        if not result.is_model:
            return None
        md = w["metadata"]
        identity = {
            "cluster": found.cluster,
            "namespace": w["namespace"],
            "kind": w["kind"],
            "name": w["name"],
            "model": md.get("model-name") or (entry["model"] if entry else None),
            "version": md.get("model-version") or (entry["version"] if entry else None),
        }
        report.enforcement.setdefault(result.enforcement or "unknown", set()).add(w["namespace"])
        if identity["model"]:
            versions = report.models_running.setdefault(str(identity["model"]), set())
            if identity["version"]:
                versions.add(str(identity["version"]))
        admitted = entry is not None and is_recorded(entry["status"])
        owner = (md.get("owner") or "").strip() or (entry["owner"] if admitted and entry else None)
        violations = sorted(result.violations or result.deny)
        missing = list(documentation_gaps(md, self.policy_data).missing_required)
        certificates = self._certification_issues(md)
        if not admitted:  # one finding: everything wrong with it is in its details
            namespace_owner = found.namespace_labels.get(self.policy_data.namespace_owner_label)
            problems = []
            if violations:
                problems.append(f"{len(violations)} policy violation(s)")
            if missing:
                problems.append("missing " + ", ".join(missing))
            if certificates:
                problems.append("; ".join(m for _, m in certificates))
            return [
                self._finding(
                    "orphan",
                    identity,
                    f"running model {identity['model'] or w['name']!s} was never admitted "
                    f"(not in the inventory for cluster {found.cluster})"
                    + (": " + "; ".join(problems) if problems else ""),
                    {
                        "images": list(w["images"]),
                        "violations": violations,
                        "missing": missing,
                        "certifications": [m for _, m in certificates],
                        "enforcement": result.enforcement,
                    },
                    owner=owner or (namespace_owner or "").strip() or None,
                )
            ]
        out: list[FindingInput] = []
        # expired certifications a violation is about belong to that violation
        about_certs = any("/certifications" in v for v in violations)
        absorbed = [m for state, m in certificates if about_certs and state == "expired"]
        if violations:
            out.append(
                self._finding(
                    "violation",
                    identity,
                    "; ".join(violations),
                    {
                        "violations": violations,
                        "enforcement": result.enforcement,
                        "missing": missing,
                        "certifications": absorbed,
                    },
                    owner=owner,
                )
            )
        out.extend(self._sign_off_findings(found, identity, owner))
        if missing and not violations:  # required fields the policy does not deny (a custom bundle)
            out.append(
                self._finding(
                    "missing-metadata",
                    identity,
                    "queued for manual review: missing " + ", ".join(missing),
                    {"missing": missing},
                    owner=owner,
                )
            )
        if entry is not None:
            drift = _drift(found, entry)
            if drift:
                out.append(
                    self._finding(
                        "drift", identity, "; ".join(drift), {"changes": drift}, owner=owner
                    )
                )
        rest = [m for _, m in certificates if m not in absorbed]
        if rest:
            out.append(
                self._finding("expiring-certification", identity, "; ".join(rest), {}, owner=owner)
            )
        return out

    def _certification_issues(self, md: Mapping[str, str]) -> list[tuple[str, str]]:
        """(state, message) of each expired or expiring certification of the metadata."""
        today = self._now().date()
        warning_days = self.policy_data.certification_warning_days
        out: list[tuple[str, str]] = []
        for c in parse_certifications(md.get("certifications")):
            (message,) = certification_issues([(c.name, c.expires)], today, warning_days) or ("",)
            if message:
                out.append((certification_state(c.expires, today, warning_days).state, message))
        return out

    def _sign_off_findings(
        self, found: DiscoveredWorkload, identity: Mapping[str, Any], owner: str | None
    ) -> list[FindingInput]:
        """``unapproved`` / ``expiring-approval`` (with the inventory as approval source)."""
        if self.approval_source != "inventory":
            return []
        md = found.workload["metadata"]
        model = str(md.get("model-name") or "").strip()
        version = str(md.get("model-version") or "").strip()
        if not model or not version:
            return []  # missing-metadata reports it
        records = self._sign_offs.get((model, version))
        tier = str(md.get("risk-tier") or "").strip().lower() or self.policy_data.default_risk_tier
        today = self._now().date()
        state = signoff_rules.sign_off(
            model=model,
            version=version,
            risk_tier=tier,
            approvals=records.approvals if records else [],
            exemptions=records.exemptions if records else [],
            today=today,
            config=self.policy_data,
            cluster=found.cluster,
            namespace=found.workload["namespace"],
        )
        if not state.admitted:
            return [
                self._finding(
                    "unapproved",
                    identity,
                    f"running without a current approval: {state.reason}",
                    {"state": state.state, "approvers": list(state.approvers)},
                    owner=owner,
                )
            ]
        expiring = signoff_rules.expiring_approvals(
            state,
            records.approvals if records else [],
            today,
            self.policy_data.certification_warning_days,
        )
        if not expiring:
            return []
        what = "; ".join(
            f"the approval by {a['approver']} expires on {a['expires']}" for a in expiring
        )
        return [
            self._finding(
                "expiring-approval",
                identity,
                what,
                {"approvals": [{"id": a["id"], "expires": str(a["expires"])} for a in expiring]},
                owner=owner,
            )
        ]

    def _finding(
        self,
        type_: str,
        identity: Mapping[str, Any],
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        owner: str | None = None,
    ) -> FindingInput:
        return FindingInput(
            type=type_,
            severity=self.policy_data.severity_of(type_),
            cluster=str(identity["cluster"]),
            namespace=str(identity["namespace"]),
            kind=str(identity["kind"]),
            name=str(identity["name"]),
            model=identity.get("model"),
            version=identity.get("version"),
            message=message,
            details=dict(details or {}),
            owner=owner,
        )


def _admitted_identity(entry: DeploymentRecord) -> dict[str, Any]:
    return {
        "cluster": entry["cluster"],
        "namespace": entry["namespace"],
        "kind": entry["kind"],
        "name": entry["name"],
        "model": entry["model"],
        "version": entry["version"],
    }


def _retired(entry: DeploymentRecord) -> str:
    when = entry["last_admitted"].date().isoformat() if entry["last_admitted"] else "unknown"
    return (
        f"{entry['kind']} {entry['namespace']}/{entry['name']} "
        f"(model {entry['model'] or '?'} {entry['version'] or ''}, last admitted {when}) "
        "is in the inventory but no longer running"
    ).replace("  ", " ")


def _drift(found: DiscoveredWorkload, entry: DeploymentRecord) -> list[str]:
    changes: list[str] = []
    running = sorted(set(found.workload["images"]))
    admitted = sorted(set(entry["images"]))
    if admitted and running != admitted:
        added = [i for i in running if i not in admitted]
        removed = [i for i in admitted if i not in running]
        parts = []
        if added:
            parts.append("running " + ", ".join(added))
        if removed:
            parts.append("admitted " + ", ".join(removed))
        changes.append("images differ from admission: " + "; ".join(parts))
    version = found.workload["metadata"].get("model-version")
    if entry["version"] and version and version != entry["version"]:
        changes.append(f"model version {version} running, {entry['version']} admitted")
    name = found.workload["metadata"].get("model-name")
    if entry["model"] and name and name != entry["model"]:
        changes.append(f"model {name} running, {entry['model']} admitted")
    return changes


def _capacity_sample(
    found: DiscoveredWorkload, entry: DeploymentRecord | None, registered: bool
) -> CapacitySampleInput:
    """What the scan saw this model workload hold (a capacity sample, orphans included)."""
    rt = found.runtime
    md = found.workload["metadata"]
    requests, limits = pod_amounts(rt["resources"])
    return CapacitySampleInput(
        cluster=found.cluster,
        namespace=found.workload["namespace"],
        kind=found.workload["kind"],
        name=found.workload["name"],
        model=md.get("model-name") or (entry["model"] if entry else None),
        version=md.get("model-version") or (entry["version"] if entry else None),
        owner=md.get("owner") or "",
        registered=registered,
        replicas=rt["desired_replicas"],
        ready_replicas=rt["ready_replicas"],
        restarts=rt["restarts"],
        requests=requests,
        limits=limits,
        usage=usage_amounts(rt["usage"]),
    )


def _runtime_update(found: DiscoveredWorkload) -> audit.RuntimeUpdate:
    rt = found.runtime
    resources: dict[str, Any] = {
        **rt["resources"],
        "gpus": rt["gpus"],
        "images": [dict(s) for s in rt["image_statuses"]],
        # what the scan saw the workload run (the admitted images are the deployment's own)
        "running_images": list(found.workload["images"]),
        "restarts": rt["restarts"],
    }
    if rt["usage"] is not None:
        resources["usage"] = dict(rt["usage"])
    if rt["created"]:
        resources["created"] = rt["created"]
    return audit.RuntimeUpdate(
        cluster=found.cluster,
        namespace=found.workload["namespace"],
        kind=found.workload["kind"],
        name=found.workload["name"],
        replicas=rt["desired_replicas"],
        ready_replicas=rt["ready_replicas"],
        resources=resources,
    )
