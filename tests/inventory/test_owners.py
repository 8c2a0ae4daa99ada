"""One rule for who answers for a version and who remediates a finding, used by the
inventory's records, the dashboard and the audit export alike."""

from __future__ import annotations

from datetime import UTC, datetime

from auditor.report.export import build_export
from dashboard.data import finding_list
from modelgate.inventory import audit, queries
from modelgate.inventory.db import Database
from modelgate.inventory.records import FindingInput, accountable_owner, finding_owner
from tests.dashboard.conftest import seed_inventory


def _finding(model: str | None, owner: str | None, name: str) -> FindingInput:
    return FindingInput(
        type="drift",
        severity="high",
        cluster="prod",
        namespace="ml",
        kind="Deployment",
        name=name,
        model=model,
        version=None,
        message="images differ",
        details={},
        owner=owner,
    )


def test_a_versions_owner_else_its_models() -> None:
    assert accountable_owner("a@example.com", "b@example.com") == "a@example.com"
    assert accountable_owner("", "b@example.com") == "b@example.com"
    assert accountable_owner(None, "") is None


def test_a_finding_without_a_recorded_owner_goes_to_its_models_owner_everywhere(
    sqlite_db: Database,
) -> None:
    seed_inventory(sqlite_db)
    owners = queries.model_owners(sqlite_db)
    assert owners["credit-scorer"] == "credit-team@example.com"
    scan = audit.start_scan(sqlite_db)
    audit.record_findings(
        sqlite_db,
        scan,
        [
            _finding("credit-scorer", None, "scorer-copy"),  # model known, no owner recorded
            _finding("credit-scorer", "ops@example.com", "scorer-b"),  # recorded owner wins
            _finding(None, None, "orphan"),  # nobody: stays without an owner
        ],
        datetime.now(UTC),
    )
    audit.finish_scan(sqlite_db, scan, sources=[], summary={}, scanned_clusters=["prod"])
    expected = {"scorer-copy": "credit-team@example.com", "scorer-b": "ops@example.com"}
    expected["orphan"] = None  # type: ignore[assignment]

    exported = {f["name"]: f["owner"] for f in build_export(sqlite_db, scan)["findings"]}
    shown = {
        f["name"]: f["owner"] for f in finding_list(sqlite_db, status=None, type_=None)["findings"]
    }
    assert exported == expected
    assert shown == expected
    for f in audit.scan_findings_of(sqlite_db, scan):
        assert finding_owner(f, owners) == expected[f["name"]]
