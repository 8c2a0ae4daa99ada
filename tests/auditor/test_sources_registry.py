"""The discovery seam: a new source kind registers itself and is usable from the CLI
(``--source KIND:k=v``) without touching the scanner; a source failing midway is reported as
unreachable, keeps what it saw, and never turns the unseen rest into ``retired`` findings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.discovery import (
    DiscoveredWorkload,
    DiscoverySource,
    SourceConfigError,
    SourceUnreachable,
    create_sources,
    parse_source_spec,
    register_source,
)
from auditor.discovery.runtime import runtime_from_object
from auditor.reconcile import Reconciler
from modelgate.cli import main
from modelgate.inventory import audit
from modelgate.inventory.db import Database
from modelgate.workload import extract_workload
from policies.engines import PolicyEngine
from tests.fixtures.inventory import admit, deployment, metadata, write_snapshot


class StaticSource:
    """A test source (our own seam): serves fixed objects, optionally failing after N."""

    kind = "static"

    def __init__(self, cluster: str, objects: list[dict[str, Any]], fail_after: int | None) -> None:
        self.cluster = cluster
        self.name = f"static:{cluster}"
        self.notes: list[str] = []
        self.skipped_kinds: set[str] = set()
        self.objects = objects
        self.fail_after = fail_after

    def discover(self) -> Iterator[DiscoveredWorkload]:
        for i, obj in enumerate(self.objects):
            if self.fail_after is not None and i >= self.fail_after:
                raise SourceUnreachable(f"{self.name}: connection reset after {i} objects")
            if obj.get("kind") == "Crash":
                raise RuntimeError("plugin bug")
            workload = extract_workload(obj)
            yield DiscoveredWorkload(
                cluster=self.cluster,
                source=self.name,
                obj=obj,
                workload=workload,
                runtime=runtime_from_object(obj, workload),
            )


OBJECTS = [
    deployment("lab-model", "lab", annotations=metadata(model_name="lab-model")),
    deployment("lab-other", "lab", annotations=metadata(model_name="lab-other")),
]


def _factory(options: Mapping[str, Any]) -> list[DiscoverySource]:
    fail = options.get("fail_after")
    return [StaticSource(str(options.get("cluster", "lab")), OBJECTS, int(fail) if fail else None)]


register_source("static", _factory, replace=True)


def test_registered_kind_is_usable_from_the_cli(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(
        main,
        ["audit", "--source", "static:cluster=lab", "--export", str(tmp_path / "e.json")],
    )
    assert result.exit_code == 0, result.output
    assert "static:lab: ok (2 workloads, 2 models)" in result.output

    unknown = CliRunner().invoke(main, ["audit", "--source", "vertex:project=p"])
    assert unknown.exit_code == 2 and "unknown source kind 'vertex'" in unknown.output


def test_source_failing_midway_is_unreachable_and_retires_nothing(
    sqlite_db: Database, engine: PolicyEngine
) -> None:
    admit(sqlite_db, "lab", OBJECTS[1])  # admitted, but the source dies before reaching it
    sources = create_sources("static", {"cluster": "lab", "fail_after": "1"})
    result = Reconciler(sqlite_db, engine).scan(sources)
    assert result.sources[0].status == "unreachable"
    assert "connection reset after 1 objects" in (result.sources[0].error or "")
    found = {(f["name"], f["type"]) for f in audit.scan_findings_of(sqlite_db, result.scan_id)}
    assert found == {("lab-model", "orphan")}

    # a complete scan later retires nothing either (it is running) and resolves nothing wrongly
    second = Reconciler(sqlite_db, engine).scan(create_sources("static", {"cluster": "lab"}))
    assert {(f["name"], f["type"]) for f in audit.scan_findings_of(sqlite_db, second.scan_id)} == {
        ("lab-model", "orphan")
    }


def test_source_spec_parsing() -> None:
    assert parse_source_spec("vertex:project=p, region=europe-west4") == (
        "vertex",
        {"project": "p", "region": "europe-west4"},
    )
    assert parse_source_spec("static") == ("static", {})
    with pytest.raises(SourceConfigError, match="not key=value"):
        parse_source_spec("vertex:project")
    with pytest.raises(SourceConfigError, match="expected KIND"):
        parse_source_spec(":x=1")


def test_a_crashing_source_fails_alone_and_duplicates_are_ignored(
    sqlite_db: Database, engine: PolicyEngine
) -> None:
    crashing = StaticSource("lab", [OBJECTS[0], {"kind": "Crash"}], None)
    duplicated = StaticSource("lab2", [OBJECTS[0], OBJECTS[1], OBJECTS[0]], None)
    result = Reconciler(sqlite_db, engine).scan([crashing, duplicated])

    assert [(s.cluster, s.status) for s in result.sources] == [("lab", "failed"), ("lab2", "ok")]
    assert result.sources[0].error == "RuntimeError: plugin bug"
    assert any("duplicate Deployment lab/lab-model" in n for n in result.sources[1].notes)
    assert result.sources[1].workloads == 2
    found = sorted(
        (f["cluster"], f["name"], f["type"])
        for f in audit.scan_findings_of(sqlite_db, result.scan_id)
    )
    assert found == [
        ("lab", "lab-model", "orphan"),
        ("lab2", "lab-model", "orphan"),
        ("lab2", "lab-other", "orphan"),
    ]


def test_two_sources_for_one_cluster_are_refused(
    tmp_path: Path,
    sqlite_db: Database,
    sqlite_url: str,
    engine: PolicyEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two partial views of one cluster would report each other's workloads as retired."""
    admit(sqlite_db, "lab", OBJECTS[0])
    monkeypatch.setenv("MODELGATE_DATABASE_URL", sqlite_url)
    snap = write_snapshot(tmp_path / "snapshots" / "lab", [OBJECTS[0]])
    result = CliRunner().invoke(
        main, ["audit", "--manifests", str(snap), "--source", "static:cluster=lab"]
    )
    assert result.exit_code == 2
    assert "several sources scan the same cluster ('lab': manifests:lab, static:lab)" in (
        result.output
    )
    with pytest.raises(SourceConfigError, match="same cluster"):
        Reconciler(sqlite_db, engine).scan(
            [StaticSource("lab", OBJECTS[:1], None), StaticSource("lab", OBJECTS[1:], None)]
        )
    assert audit.latest_scan(sqlite_db) is None  # nothing recorded, nothing retired
