"""Read queries the dashboard uses, on SQLite and PostgreSQL, over data written by the real
Recorder: counts, documentation gaps of live versions, decision pagination and counts, and
findings by type."""

from __future__ import annotations

from datetime import UTC, datetime

from modelgate.compliance import DocumentationGaps, documentation_gaps
from modelgate.inventory import audit, queries
from modelgate.inventory.db import Database
from modelgate.inventory.recorder import Recorder
from modelgate.inventory.records import jsonable
from policies.config import PolicyConfig
from tests.fixtures.inventory import EventFactory


def _record(db: Database, *events: object) -> None:
    recorder = Recorder(database=db)
    for event in events:
        recorder.record(event)  # type: ignore[arg-type]


def _live_gaps(db: Database) -> dict[tuple[str, str], DocumentationGaps]:
    """The documentation gaps of every version with a live deployment (as the dashboard and
    the reports count them)."""
    config = PolicyConfig()
    return {
        (v["model"], v["version"]): documentation_gaps(v["metadata"], config)
        for m in queries.list_models(db)
        for v in m["versions"]
        if any(d["live"] for d in v["deployments"])
    }


def test_counts_and_documentation_gaps_of_live_versions(
    db: Database, make_event: EventFactory
) -> None:
    _record(
        db,
        make_event(),  # fraud-detector 1.2.0, high tier, fully documented
        make_event(
            model="churn",
            version="2.0",
            name="churn-api",
            namespace="growth",
            risk_tier="limited",
            model_card=None,
            certifications=None,
            metrics=None,
            source=None,
        ),
        make_event(
            model="ranker",
            version="0.1",
            name="ranker-api",
            training_date="last tuesday",  # unparseable: counts as missing
            training_run=None,
        ),
        # a version whose only deployment is deleted is not live
        make_event(model="old", version="9", name="old-api"),
        make_event(model="old", version="9", name="old-api", operation="DELETE"),
    )
    counts = queries.inventory_counts(db)
    gaps = _live_gaps(db)
    assert counts == {"models": 4, "versions": 4, "live_deployments": 3}
    assert set(gaps) == {("fraud-detector", "1.2.0"), ("churn", "2.0"), ("ranker", "0.1")}
    fraud = gaps[("fraud-detector", "1.2.0")]
    assert fraud.complete
    churn = gaps[("churn", "2.0")]
    assert churn.missing_required == ()
    assert churn.missing_recommended == ("model-card", "metrics", "source")
    ranker = gaps[("ranker", "0.1")]
    assert ranker.missing_required == ("training-date",)
    assert ranker.missing_recommended == ("training-run",)


def test_high_tier_without_model_card_or_certification_lacks_required_fields(
    db: Database, make_event: EventFactory
) -> None:
    _record(db, make_event(model_card=None, certifications=None))
    [gap] = _live_gaps(db).values()
    assert gap.missing_required == ("model-card", "certifications")
    assert gap.missing_recommended == ()  # model-card is listed once, as required


def test_decisions_paginate_with_offset_and_count(db: Database, make_event: EventFactory) -> None:
    events = [
        make_event(name=f"api-{i}", namespace="a" if i % 2 else "b", allowed=i % 3 != 0)
        for i in range(7)
    ]
    _record(db, *events)
    assert queries.count_decisions(db) == 7
    assert queries.count_decisions(db, allowed=False) == 3  # i = 0, 3, 6
    assert queries.count_decisions(db, namespace="a") == 3
    assert queries.count_decisions(db, namespace="b", allowed=False) == 2
    first = jsonable(queries.decisions(db, limit=3))
    rest = jsonable(queries.decisions(db, limit=3, offset=3))
    last = jsonable(queries.decisions(db, limit=3, offset=6))
    assert queries.decision_namespaces(db) == ["a", "b"]
    names = [d["name"] for d in first + rest + last]
    assert names == [f"api-{i}" for i in range(6, -1, -1)]  # newest first, each once


def test_findings_filter_by_type(db: Database) -> None:
    scan = audit.start_scan(db)

    def finding(type_: str, name: str) -> audit.FindingInput:
        return audit.FindingInput(
            type=type_,
            severity="high",
            cluster="prod",
            namespace="ml",
            kind="Deployment",
            name=name,
            model=None,
            version=None,
            message="m",
            details={},
        )

    audit.record_findings(
        db,
        scan,
        [
            finding("orphan", "a"),
            finding("drift", "b"),
        ],
        datetime.now(UTC),
    )
    assert [f["name"] for f in audit.findings(db, type="orphan")] == ["a"]
    assert [f["name"] for f in audit.findings(db, type="drift", status="open")] == ["b"]
    assert audit.findings(db, type="retired") == []
    assert len(audit.findings(db)) == 2
