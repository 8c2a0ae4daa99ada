"""A manifests snapshot reconciled against a seeded inventory: every finding type, runtime
metadata written back, and findings tracked across scans (first/last seen, resolution)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.discovery import SourceConfigError, create_sources
from auditor.reconcile import Reconciler
from modelgate.inventory import audit, queries
from modelgate.inventory.db import Database
from modelgate.inventory.records import FindingRecord, jsonable
from policies.config import PolicyConfig
from policies.engines import EvaluationError, PolicyEngine, PolicyResult
from tests.fixtures.inventory import (
    admit,
    certs,
    deployment,
    in_days,
    metadata,
    namespace,
    write_snapshot,
)


def _snapshot_objects() -> list[dict[str, object]]:
    return [
        namespace("ml", {"team": "risk", "modelgate.dev/owner": "risk-platform"}),
        # admitted with 1.0.0, now running 1.1.0 with a new image -> drift
        deployment(
            "fraud",
            image="registry.example.com/fraud:1.1.0",
            annotations=metadata(model_version="1.1.0"),
            gpus=1,
        ),
        # never admitted, compliant -> orphan only
        deployment(
            "churn",
            image="registry.example.com/churn:2.0",
            annotations=metadata(model_name="churn-predictor", model_version="2.0"),
        ),
        # never admitted, owner missing -> one orphan (violations and missing fields in it)
        deployment(
            "shadow",
            image="vllm/vllm-openai:v0.6.3",
            annotations=metadata(model_name="shadow-llm", owner=None),
        ),
        # admitted, unchanged, certification expiring in 10 days -> expiring-certification
        deployment(
            "scorer",
            image="registry.example.com/scorer:3.2",
            annotations=metadata(
                model_name="credit-scorer",
                model_version="3.2",
                certifications=certs(("ISO-42001", in_days(10))),
            ),
        ),
        # not a model -> nothing
        deployment("web", image="nginx:1.27", model=False),
    ]


def _seed(db: Database) -> None:
    admit(
        db,
        "prod",
        deployment("fraud", image="registry.example.com/fraud:1.0.0", annotations=metadata()),
    )
    admit(
        db,
        "prod",
        deployment(
            "scorer",
            image="registry.example.com/scorer:3.2",
            annotations=metadata(
                model_name="credit-scorer",
                model_version="3.2",
                certifications=certs(("ISO-42001", in_days(10))),
            ),
        ),
    )
    # admitted once, no longer in the snapshot -> retired
    admit(
        db,
        "prod",
        deployment(
            "legacy",
            image="registry.example.com/legacy:0.9",
            annotations=metadata(model_name="legacy-ranker", model_version="0.9"),
        ),
    )
    # another cluster that this scan does not cover: never retired by it
    admit(
        db,
        "staging",
        deployment("fraud", annotations=metadata()),
    )


def _by_key(findings: list[FindingRecord]) -> dict[tuple[str, str], FindingRecord]:
    return {(f["name"], f["type"]): f for f in findings}


def test_snapshot_scan_finds_every_finding_type(
    tmp_path: Path, db: Database, engine: PolicyEngine
) -> None:
    _seed(db)
    snap = write_snapshot(tmp_path / "prod", _snapshot_objects(), per_file=3)
    sources = create_sources("manifests", {"paths": [snap]})
    assert [s.cluster for s in sources] == ["prod"]

    result = Reconciler(db, engine).scan(sources)

    assert result.workloads == 5  # the Namespace is not a workload
    assert result.models == 4
    found = _by_key(audit.scan_findings_of(db, result.scan_id))
    assert set(found) == {
        ("fraud", "drift"),
        ("churn", "orphan"),
        ("shadow", "orphan"),
        ("scorer", "expiring-certification"),
        ("legacy", "retired"),
    }
    drift = found[("fraud", "drift")]
    assert "registry.example.com/fraud:1.1.0" in drift["message"]
    assert "1.1.0 running, 1.0.0 admitted" in drift["message"]
    assert drift["cluster"] == "prod" and drift["namespace"] == "ml"
    assert drift["model"] == "fraud-detector"
    shadow = found[("shadow", "orphan")]
    assert shadow["details"]["missing"] == ["owner"]
    assert any("modelgate.dev/owner" in v for v in shadow["details"]["violations"])
    assert shadow["details"]["images"] == ["vllm/vllm-openai:v0.6.3"]
    assert "was never admitted" in shadow["message"] and "missing owner" in shadow["message"]
    assert found[("churn", "orphan")]["details"]["violations"] == []
    assert found[("legacy", "retired")]["model"] == "legacy-ranker"
    assert found[("legacy", "retired")]["severity"] == "low"
    assert "ISO-42001" in found[("scorer", "expiring-certification")]["message"]
    assert result.counts == {
        "orphan": 2,
        "drift": 1,
        "expiring-certification": 1,
        "retired": 1,
    }  # one finding per problem: nothing counted twice
    assert result.severities == {"high": 2, "medium": 2, "low": 1}
    # the accountable owner: the model's, else the namespace's owner label for orphans
    assert drift["owner"] == "risk-ml@example.com"
    assert found[("churn", "orphan")]["owner"] == "risk-ml@example.com"  # its own annotation
    assert shadow["owner"] == "risk-platform"  # no owner annotation: the namespace's label
    assert found[("legacy", "retired")]["owner"] == "risk-ml@example.com"  # the inventory's
    # due: first seen + the remediation window of the severity (policy data)
    windows = PolicyConfig().remediation_days
    for f in found.values():
        assert f["due"] == f["first_seen"].date() + timedelta(days=windows[f["severity"]])
    assert shadow["due"] == shadow["first_seen"].date() + timedelta(days=30)
    assert result.worst_severity_at_least("high", PolicyConfig())
    assert result.bundle_digest and result.bundle_digest == engine.bundle_digest

    scan = audit.get_scan(db, result.scan_id)
    assert scan is not None and scan["status"] == "completed"
    assert scan["sources"][0]["status"] == "ok"
    assert scan["summary"]["findings"]["orphan"] == 2


def test_runtime_metadata_updates_inventory_deployments(
    tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    _seed(sqlite_db)
    snap = write_snapshot(tmp_path / "prod", _snapshot_objects())
    Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))

    deployments = queries.deployments_by_key(sqlite_db, "prod")
    assert deployments[("ml", "Deployment", "fraud")]["status"] == "running"
    assert deployments[("ml", "Deployment", "legacy")]["status"] == "not-running"
    models = {m["name"]: m for m in jsonable(queries.list_models(sqlite_db))}
    dep = models["fraud-detector"]["versions"][0]["deployments"][0]
    assert dep["replicas"] == 2
    assert dep["resources"] is not None
    assert dep["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert dep["resources"]["gpus"] == 1
    assert dep["last_seen"] is not None


def test_findings_persist_and_resolve_across_scans(
    tmp_path: Path, db: Database, engine: PolicyEngine
) -> None:
    _seed(db)
    clock = [datetime.now(UTC).replace(microsecond=654321)]  # stored to the microsecond
    snap = write_snapshot(tmp_path / "prod", _snapshot_objects())
    reconciler = Reconciler(db, engine, now=lambda: clock[0])
    first = reconciler.scan(create_sources("manifests", {"paths": [snap]}))

    # the orphan "churn" is removed; "fraud" is fixed back to its admitted image and version
    objects = [
        o
        for o in _snapshot_objects()
        if o["metadata"]["name"] not in ("churn", "fraud")  # type: ignore[index]
    ]
    objects.append(
        deployment("fraud", image="registry.example.com/fraud:1.0.0", annotations=metadata())
    )
    for p in snap.glob("*.yaml"):
        p.unlink()
    write_snapshot(snap, objects)
    clock[0] = clock[0] + timedelta(hours=6)
    second = reconciler.scan(create_sources("manifests", {"paths": [snap]}))

    assert second.resolved == 2
    everything = _by_key(audit.findings(db))
    assert everything[("churn", "orphan")]["status"] == "resolved"
    assert everything[("churn", "orphan")]["resolved_at"] == clock[0]
    assert everything[("fraud", "drift")]["status"] == "resolved"
    shadow = everything[("shadow", "orphan")]
    assert shadow["status"] == "open"
    assert shadow["first_seen"] == first.started_at
    assert shadow["last_seen"] == second.started_at
    assert {f["name"] for f in audit.scan_findings_of(db, second.scan_id)} == {
        "shadow",
        "scorer",
        "legacy",
    }
    # the earlier scan still lists what it saw
    assert ("churn", "orphan") in _by_key(audit.scan_findings_of(db, first.scan_id))
    # and the second scan knows which findings it resolved (the export's "resolved")
    assert set(_by_key(audit.findings_resolved_by(db, second.scan_id))) == {
        ("churn", "orphan"),
        ("fraud", "drift"),
    }
    assert audit.findings_resolved_by(db, first.scan_id) == []

    # the orphan comes back: the same finding reopens, first_seen kept
    write_snapshot(snap / "again", [_snapshot_objects()[2]])
    clock[0] = clock[0] + timedelta(hours=6)
    reconciler.scan(create_sources("manifests", {"paths": [snap]}))
    churn = _by_key(audit.findings(db))[("churn", "orphan")]
    assert churn["status"] == "open" and churn["resolved_at"] is None
    assert churn["first_seen"] == first.started_at
    assert set(_by_key(audit.findings_resolved_by(db, second.scan_id))) == {("fraud", "drift")}


def test_unreadable_file_is_a_note_not_a_failure(
    tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    snap = write_snapshot(tmp_path / "edge", [deployment("churn", annotations=metadata())])
    (snap / "broken.yaml").write_text("kind: Deployment\nmetadata: [unclosed\n", encoding="utf-8")
    (snap / "list.json").write_text(
        '{"kind": "List", "items": [' + __import__("json").dumps(deployment("x2")) + "]}",
        encoding="utf-8",
    )
    result = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    assert result.sources[0].status == "ok"
    assert any("broken.yaml" in n for n in result.sources[0].notes)
    names = {f["name"] for f in audit.scan_findings_of(sqlite_db, result.scan_id)}
    assert names == {"churn", "x2"}


def test_missing_manifests_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="not a directory"):
        create_sources("manifests", {"paths": [tmp_path / "nope"]})
    with pytest.raises(SourceConfigError, match="unknown source kind"):
        create_sources("vertex", {})


class _FailingFor:
    """The real engine, except that it fails for one workload name (our own seam)."""

    def __init__(self, inner: PolicyEngine, name: str) -> None:
        self.inner = inner
        self.fail_name = name
        self.name = inner.name

    @property
    def bundle_digest(self) -> str:
        return self.inner.bundle_digest

    def ready(self) -> bool:
        return True

    def evaluate(self, policy_input: Mapping[str, Any]) -> PolicyResult:
        if policy_input["workload"]["name"] == self.fail_name:
            raise EvaluationError("rego-cpp evaluation failed: boom")
        return self.inner.evaluate(policy_input)

    def reload_if_changed(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_evaluation_failure_is_a_note_and_the_scan_goes_on(
    tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    snap = write_snapshot(
        tmp_path / "c1", [deployment("first", annotations=metadata()), deployment("second")]
    )
    result = Reconciler(sqlite_db, _FailingFor(engine, "first")).scan(
        create_sources("manifests", {"paths": [snap]})
    )
    assert result.sources[0].status == "ok"
    assert any(
        "policy evaluation failed for Deployment ml/first" in n for n in result.sources[0].notes
    )
    assert {f["name"] for f in audit.scan_findings_of(sqlite_db, result.scan_id)} == {"second"}


def test_a_workload_that_cannot_be_evaluated_keeps_its_open_findings(
    tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    """An evaluation failure proves nothing: the workload's findings of earlier scans are
    neither resolved nor counted as seen again."""
    snap = write_snapshot(
        tmp_path / "c1", [deployment("first", annotations=metadata()), deployment("second")]
    )
    first = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    assert ("first", "orphan") in _by_key(audit.scan_findings_of(sqlite_db, first.scan_id))

    second = Reconciler(sqlite_db, _FailingFor(engine, "first")).scan(
        create_sources("manifests", {"paths": [snap]})
    )
    assert second.resolved == 0
    orphan = _by_key(audit.findings(sqlite_db))[("first", "orphan")]
    assert orphan["status"] == "open"
    assert orphan["last_seen"] == first.started_at
    assert {f["name"] for f in audit.scan_findings_of(sqlite_db, second.scan_id)} == {"second"}

    # a later scan that can evaluate it again and finds it fixed resolves it as usual
    for path in snap.glob("*.yaml"):
        path.unlink()
    write_snapshot(snap, [deployment("second")])
    third = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    assert third.resolved == 1
    assert _by_key(audit.findings(sqlite_db))[("first", "orphan")]["status"] == "resolved"


def test_an_incomplete_snapshot_retires_and_resolves_nothing(
    tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    """A file that cannot be read may hold admitted workloads: the scan reports what it could
    read but proves nothing about the rest; an empty export directory is unreachable."""
    kept = deployment("kept", annotations=metadata(model_name="kept"))
    lost = deployment("lost", annotations=metadata(model_name="lost"))
    admit(sqlite_db, "edge", kept)
    admit(sqlite_db, "edge", lost)
    snap = write_snapshot(tmp_path / "edge", [kept, deployment("rogue")])
    (snap / "zz-broken.yaml").write_text(
        "kind: [unclosed\n---\n" + yaml.safe_dump(lost), encoding="utf-8"
    )
    result = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    assert result.sources[0].status == "ok"
    assert any("the snapshot is incomplete" in n for n in result.sources[0].notes)
    found = _by_key(audit.scan_findings_of(sqlite_db, result.scan_id))
    assert ("rogue", "orphan") in found
    assert not any(kind == "retired" for _, kind in found)

    for path in snap.iterdir():
        path.unlink()
    empty = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    assert empty.sources[0].status == "unreachable"
    assert "no manifest files (*.yaml, *.yml, *.json) below" in (empty.sources[0].error or "")
    assert empty.resolved == 0
    assert _by_key(audit.findings(sqlite_db))[("rogue", "orphan")]["status"] == "open"


def test_an_expired_certification_the_policy_denies_is_one_violation(
    tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    """A high-tier model admitted while certified, now past its only certification: the
    violation names it, and no second (expiring-certification) finding counts it again. A
    certification merely expiring soon stays its own finding."""
    high = {
        "risk_tier": "high",
        "model_card": "https://models.example.com/card",
    }
    lapsed = deployment(
        "lapsed",
        annotations=metadata(
            model_name="lapsed", certifications=certs(("SR-11-7", in_days(-3))), **high
        ),
    )
    soon = deployment(
        "soon",
        annotations=metadata(
            model_name="soon", certifications=certs(("SR-11-7", in_days(5))), **high
        ),
    )
    admit(sqlite_db, "prod", lapsed)
    admit(sqlite_db, "prod", soon)
    snap = write_snapshot(tmp_path / "prod", [lapsed, soon])
    result = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    found = _by_key(audit.scan_findings_of(sqlite_db, result.scan_id))
    assert set(found) == {("lapsed", "violation"), ("soon", "expiring-certification")}
    violation = found[("lapsed", "violation")]
    assert "no unexpired certification" in violation["message"]
    assert violation["details"]["certifications"] == [
        f"certification 'SR-11-7' expired on {in_days(-3)}"
    ]
    assert result.counts == {"violation": 1, "expiring-certification": 1}


class _Lenient(_FailingFor):
    """The real engine with every violation dropped: a bundle that does not deny missing
    fields (our own seam)."""

    def evaluate(self, policy_input: Mapping[str, Any]) -> PolicyResult:
        result = self.inner.evaluate(policy_input)
        return PolicyResult(
            is_model=result.is_model,
            warn=result.warn,
            enforcement=result.enforcement,
            bundle_digest=result.bundle_digest,
        )


def test_missing_metadata_is_only_for_fields_the_policy_does_not_deny(
    tmp_path: Path, sqlite_db: Database, engine: PolicyEngine
) -> None:
    sparse = deployment("sparse", annotations=metadata(model_name="sparse", training_data=None))
    admit(sqlite_db, "prod", sparse)
    snap = write_snapshot(tmp_path / "prod", [sparse])
    strict = Reconciler(sqlite_db, engine).scan(create_sources("manifests", {"paths": [snap]}))
    found = _by_key(audit.scan_findings_of(sqlite_db, strict.scan_id))
    assert set(found) == {("sparse", "violation")}
    assert found[("sparse", "violation")]["details"]["missing"] == ["training-data"]
    lenient = Reconciler(sqlite_db, _Lenient(engine, "")).scan(
        create_sources("manifests", {"paths": [snap]})
    )
    found = _by_key(audit.scan_findings_of(sqlite_db, lenient.scan_id))
    assert set(found) == {("sparse", "missing-metadata")}
    assert found[("sparse", "missing-metadata")]["details"]["missing"] == ["training-data"]
    assert found[("sparse", "missing-metadata")]["owner"] == "risk-ml@example.com"
