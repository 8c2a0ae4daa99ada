"""The admission recorder on SQLite and real PostgreSQL: upserts, lineage, idempotency, the
append-only decision log, tolerant parsing, and no lost records when the database is down."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from modelgate.events import AdmissionEvent, event_from_json, event_to_json
from modelgate.inventory import migrate, queries
from modelgate.inventory.db import Database, DatabaseUnavailable
from modelgate.inventory.models import (
    Certification,
    Dataset,
    Decision,
    Deployment,
    Model,
    ModelVersion,
    TrainingRun,
)
from modelgate.inventory.recorder import Recorder
from modelgate.inventory.records import jsonable
from modelgate.settings import Settings
from tests.fixtures.inventory import EventFactory, model_manifest, show, summaries
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.tools import free_port


def _recorder(url: str, **kwargs: Any) -> Recorder:
    kwargs.setdefault("initial_backoff", 0.05)
    kwargs.setdefault("max_backoff", 0.5)
    kwargs.setdefault("auto_migrate", False)  # these tests migrate explicitly
    return Recorder(Settings(database_url=url), **kwargs)


def _count(db: Database, model: Any) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _submit_all(recorder: Recorder, events: list[AdmissionEvent], timeout: float = 20) -> None:
    for ev in events:
        recorder.submit(ev)
    assert recorder.flush(timeout), recorder.stats()


def test_admitted_model_is_recorded_with_metadata_lineage_and_deployment(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [make_event(cluster="prod-eu")])
    finally:
        rec.close()
    detail = show(db, "fraud-detector")
    assert detail is not None
    (v,) = detail["versions"]
    assert v["version"] == "1.2.0"
    assert v["owner"] == "risk-ml@example.com"
    assert v["training_date"] == "2025-11-02T00:00:00+00:00"
    assert v["compliance_status"] == "approved"
    assert v["risk_tier"] == "high"
    assert v["model_card"] == "https://models.example.com/fraud/card"
    assert v["metrics"] == {"auc": 0.94, "f1": 0.81}
    assert v["source"] == "https://git.example.com/risk/fraud@4f2a9c1"
    assert v["certifications"] == [
        {
            "model": "fraud-detector",
            "version": "1.2.0",
            "name": "iso-42001",
            "expires": "2027-03-01",
            "expires_raw": "2027-03-01",
        }
    ]
    assert v["datasets"] == ["s3://data/chargebacks", "s3://data/transactions-2025q3"]
    run = v["training_run"]
    assert run is not None and run["url"] == "https://mlflow.example.com/#/runs/abc123"
    assert run["datasets"] == v["datasets"]
    (dep,) = v["deployments"]
    assert (dep["cluster"], dep["namespace"], dep["kind"], dep["name"]) == (
        "prod-eu",
        "risk",
        "Deployment",
        "fraud-api",
    )
    assert dep["images"] == ["nvcr.io/nvidia/tritonserver:24.05-py3"]
    edges = {
        (e["source_type"], e["source"], e["target_type"], e["target"]) for e in detail["lineage"]
    }
    assert edges == {
        ("dataset", "s3://data/chargebacks", "training_run", run["run_ref"]),
        ("dataset", "s3://data/transactions-2025q3", "training_run", run["run_ref"]),
        ("training_run", run["run_ref"], "model_version", "fraud-detector@1.2.0"),
        (
            "model_version",
            "fraud-detector@1.2.0",
            "deployment",
            "prod-eu/risk/Deployment/fraud-api",
        ),
    }
    (decision,) = detail["decisions"]
    assert decision["allowed"] is True and decision["bundle_digest"] == "sha256:feedface"


def test_readmitting_the_same_version_updates_instead_of_duplicating(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    first, second, third = make_event(), make_event(operation="UPDATE"), make_event()
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [first, second, third])
    finally:
        rec.close()
    assert _count(db, Model) == 1
    assert _count(db, ModelVersion) == 1
    assert _count(db, Deployment) == 1
    assert _count(db, Dataset) == 2
    assert _count(db, TrainingRun) == 1
    assert _count(db, Certification) == 1
    assert _count(db, Decision) == 3  # every decision is logged
    with db.read() as s:
        version = s.scalars(select(ModelVersion)).one()
        assert version.first_admitted == first.time
        assert version.last_admitted == third.time
        deployment = s.scalars(select(Deployment)).one()
        assert deployment.first_admitted == first.time
        assert deployment.last_admitted == third.time


def test_replaying_the_same_submission_twice_writes_it_once(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    from modelgate.events import SubmittedEvent
    from modelgate.inventory.writes import apply_event

    item = SubmittedEvent("fixed-id", make_event())
    for _ in range(2):
        with db.session() as s:
            apply_event(s, item)
    assert _count(db, Decision) == 1


def test_certifications_are_replaced_on_readmission(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    certs = json.dumps([{"name": "soc2", "expires": "2027-01-01"}, {"name": "eu-ai-act"}])
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [make_event(), make_event(certifications=certs)])
    finally:
        rec.close()
    detail = show(db, "fraud-detector")
    assert detail is not None
    assert detail["versions"][0]["certifications"] == [
        {
            "model": "fraud-detector",
            "version": "1.2.0",
            "name": "eu-ai-act",
            "expires": None,
            "expires_raw": None,
        },
        {
            "model": "fraud-detector",
            "version": "1.2.0",
            "name": "soc2",
            "expires": "2027-01-01",
            "expires_raw": "2027-01-01",
        },
    ]


def test_a_new_version_on_the_same_deployment_repoints_it(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    rec = _recorder(db_url)
    try:
        _submit_all(
            rec,
            [
                make_event(version="1.0.0", image="registry/fraud:1.0"),
                make_event(version="2.0.0", image="registry/fraud:2.0", operation="UPDATE"),
            ],
        )
    finally:
        rec.close()
    assert _count(db, Deployment) == 1
    assert _count(db, ModelVersion) == 2
    (summary,) = summaries(db)
    detail = show(db, "fraud-detector")
    deps = jsonable(queries.deployments(db, cluster="prod-eu"))
    assert summary["version"] == "2.0.0"
    assert summary["deployments"] == 1
    assert summary["versions"] == 2
    assert detail is not None
    by_version = {v["version"]: v for v in detail["versions"]}
    assert [d["name"] for d in by_version["2.0.0"]["deployments"]] == ["fraud-api"]
    assert by_version["1.0.0"]["deployments"] == []
    assert [(d["version"], d["images"]) for d in deps] == [("2.0.0", ["registry/fraud:2.0"])]


def test_an_older_event_replayed_late_does_not_overwrite_newer_metadata(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    newer = make_event(minutes=10, compliance_status="approved", owner="new-owner")
    older = make_event(minutes=1, compliance_status="exempt", owner="old-owner")
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [newer, older])
    finally:
        rec.close()
    with db.read() as s:
        version = s.scalars(select(ModelVersion)).one()
        assert version.owner == "new-owner"
        assert version.compliance_status == "approved"
        assert version.first_admitted == older.time
        assert version.last_admitted == newer.time


def test_denied_and_non_model_decisions_are_logged_but_not_deployed(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    denied = make_event(allowed=False, violations=("modelgate.dev/owner is missing",))
    plain = make_event(is_model=False, name="nginx", model="nginx-not-a-model")
    deleted = make_event(operation="DELETE")
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [denied, plain, deleted])
    finally:
        rec.close()
    # the denied model's version waits for review (registered, pending-review), not deployed
    assert _count(db, Model) == 1
    detail = show(db, "fraud-detector")
    assert detail is not None
    assert [v["compliance_status"] for v in detail["versions"]] == ["pending-review"]
    assert _count(db, Deployment) == 0
    rows = jsonable(queries.decisions(db))
    only_denied = jsonable(queries.decisions(db, allowed=False))
    assert len(rows) == 3
    assert rows[0]["operation"] == "DELETE"  # most recent first
    assert [r["violations"] for r in only_denied] == [["modelgate.dev/owner is missing"]]
    assert only_denied[0]["model"] == "fraud-detector"


def test_delete_marks_a_known_deployment_deleted(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [make_event(), make_event(operation="DELETE")])
    finally:
        rec.close()
    assert jsonable(queries.deployments(db)) == []
    (dep,) = jsonable(queries.deployments(db, include_deleted=True))
    (summary,) = summaries(db)
    assert dep["status"] == "deleted"
    assert summary["deployments"] == 0


def test_the_decision_log_is_append_only(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    rec = _recorder(db_url)
    try:
        rec.record(make_event())
    finally:
        rec.close()
    with pytest.raises(Exception, match="append-only"), db.session() as s:
        s.scalars(select(Decision)).one().allowed = False
    with pytest.raises(Exception, match="append-only"), db.session() as s:
        s.delete(s.scalars(select(Decision)).one())
    assert _count(db, Decision) == 1


def test_odd_metadata_keeps_what_parses(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    long_uri = "s3://bucket/" + "é" * 3000
    ev = make_event(
        metrics='{"auc": 0.9, "note": "great", "f1": "0.7", "bad": NaN',  # not JSON at all
        training_date="last tuesday",
        certifications="[not json",
        training_data=f"s3://ok, , s3://ok,{long_uri}",
        owner="Zoë \x00Ωmega team\ud800",
        risk_tier=" HIGH ",
    )
    ev2 = make_event(
        version="2.0.0",
        metrics=json.dumps({"auc": 0.9, "note": "great", "f1": "0.7", "flag": True}),
        certifications=json.dumps(["plain-name", {"name": "x", "expires": "soon"}, 7]),
        training_run="run-42",
    )
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [ev, ev2])
        assert rec.stats()["failed"] == 0
    finally:
        rec.close()
    detail = show(db, "fraud-detector")
    assert detail is not None
    by_version = {v["version"]: v for v in detail["versions"]}
    v1, v2 = by_version["1.2.0"], by_version["2.0.0"]
    assert v1["metrics"] == {}
    assert v1["training_date"] is None and v1["training_date_raw"] == "last tuesday"
    assert v1["certifications"] == []
    assert v1["owner"] == "Zoë Ωmega team?"
    assert v1["risk_tier"] == "high"
    assert v1["metadata"]["metrics"].startswith('{"auc": 0.9')  # the raw text is kept
    assert "s3://ok" in v1["datasets"] and len(v1["datasets"]) == 2
    assert v2["metrics"] == {"auc": 0.9, "f1": 0.7}
    assert v2["certifications"] == [
        {
            "model": "fraud-detector",
            "version": "2.0.0",
            "name": "plain-name",
            "expires": None,
            "expires_raw": None,
        },
        {
            "model": "fraud-detector",
            "version": "2.0.0",
            "name": "x",
            "expires": None,
            "expires_raw": "soon",
        },
    ]
    assert v2["training_run"] == {"run_ref": "run-42", "url": None, "datasets": v2["datasets"]}


def test_an_admitted_workload_without_a_model_name_still_records_its_deployment(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    manifest = model_manifest()
    del manifest["metadata"]["annotations"]["modelgate.dev/model-name"]
    rec = _recorder(db_url)
    try:
        _submit_all(rec, [make_event(manifest, warnings=("model-name is missing",))])
    finally:
        rec.close()
    assert _count(db, Model) == 0
    (dep,) = jsonable(queries.deployments(db))
    assert dep["model"] is None and dep["name"] == "fraud-api"


def test_submit_never_raises_on_a_strange_event(db_url: str, db: Database) -> None:
    from datetime import UTC, datetime

    weird = AdmissionEvent(
        time=datetime(2026, 1, 1),  # naive: taken as UTC
        uid="",
        user="",
        operation="CREATE",
        cluster="",
        kind="",
        namespace="",
        name="",
        allowed=True,
        is_model=True,
        workload={"metadata": {"model-name": "m", "metrics": 5}},  # type: ignore[typeddict-item,arg-type]
    )
    rec = _recorder(db_url)
    try:
        rec.submit(weird)
        assert rec.flush(10)
    finally:
        rec.close()
    (row,) = jsonable(queries.decisions(db))
    (summary,) = summaries(db)
    assert row["time"] == datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    assert summary["name"] == "m"


@pytest.mark.parametrize("writer_process", [False, True], ids=["threads", "writer-processes"])
def test_concurrent_recorders_do_not_duplicate_rows(
    writer_process: bool, db_url: str, db: Database, make_event: EventFactory
) -> None:
    recorders = [_recorder(db_url, writer_process=writer_process) for _ in range(3)]
    events = [make_event(name=f"api-{i % 4}") for i in range(30)]
    threads = [
        threading.Thread(target=lambda r=r: [r.submit(e) for e in events]) for r in recorders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for r in recorders:
            assert r.flush(30), r.stats()
    finally:
        for r in recorders:
            r.close()
    assert _count(db, Model) == 1
    assert _count(db, ModelVersion) == 1
    assert _count(db, Dataset) == 2
    assert _count(db, Deployment) == 4
    assert _count(db, Decision) == 90


def test_a_full_queue_spills_to_the_spool_without_blocking_or_losing(
    db_url: str,
    db: Database,
    make_event: EventFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # hold the writer back (our own seam; it starts with the recorder when there is a
    # spool) so the queue fills deterministically
    monkeypatch.setattr(Recorder, "_ensure_writer", lambda self: None)
    rec = _recorder(db_url, queue_size=3, spool_dir=tmp_path / "spool")
    events = [make_event(name=f"api-{i}") for i in range(10)]
    for ev in events:
        rec.submit(ev)
    assert rec.stats()["queued"] == 3
    assert rec.stats()["spooled"] == 7
    assert len(list((tmp_path / "spool").glob("spool__*.jsonl"))) == 1
    monkeypatch.undo()
    try:
        assert rec.flush(20), rec.stats()
    finally:
        rec.close()
    assert _count(db, Decision) == 10
    assert _count(db, Deployment) == 10
    assert list((tmp_path / "spool").glob("*.jsonl")) == []


def test_a_full_queue_without_spool_keeps_events_in_memory(
    db_url: str, db: Database, make_event: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _recorder(db_url, queue_size=2)
    monkeypatch.setattr(rec, "_ensure_writer", lambda: None)
    for i in range(6):
        rec.submit(make_event(name=f"api-{i}"))
    assert rec.stats()["backlog"] == 4
    monkeypatch.undo()
    try:
        assert rec.flush(20), rec.stats()
    finally:
        rec.close()
    assert _count(db, Decision) == 6


def test_spooled_events_survive_a_restart(tmp_path: Path, make_event: EventFactory) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"  # not migrated yet: every write fails
    spool = tmp_path / "spool"
    rec = _recorder(url, spool_dir=spool)
    for i in range(5):
        rec.submit(make_event(name=f"api-{i}"))
    assert not rec.flush(0.5)
    rec.close(timeout=0.5)  # gives up: what is left stays in the spool
    assert sum(1 for p in spool.glob("*.jsonl") for _ in p.open()) >= 5

    migrate.upgrade(url)
    rec2 = _recorder(url, spool_dir=spool)
    try:
        rec2.submit(make_event(name="api-new"))  # starts the writer, which replays the spool
        assert rec2.flush(10)
        db = Database(url)
        deadline = time.monotonic() + 10  # the foreign spool is replayed in the background
        while _count(db, Decision) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(db, Decision) == 6
        assert _count(db, Deployment) == 6
        db.dispose()
    finally:
        rec2.close()
    assert list(spool.glob("spool__*.jsonl")) == []


@pytest.mark.parametrize(
    ("spooled", "writer_process"),
    [(False, False), (True, False), (True, True)],
    ids=["memory", "spool", "spool-writer-process"],
)
def test_events_wait_while_postgres_is_down_and_are_written_when_it_returns(
    spooled: bool, writer_process: bool, tmp_path: Path, make_event: EventFactory
) -> None:
    server = PostgresServer()  # initdb only: nothing listens on its port yet
    try:
        url = server.url("postgres")
        rec = _recorder(
            url, spool_dir=tmp_path / "spool" if spooled else None, writer_process=writer_process
        )
        try:
            # 1. the database was never there (closed port)
            for i in range(5):
                rec.submit(make_event(name=f"early-{i}"))
            assert not rec.flush(1.0)
            assert rec.stats()["outstanding"] == 5
            assert not rec.healthy()
            with pytest.raises(DatabaseUnavailable):
                rec.record(make_event(name="sync"))

            # 2. it comes up and gets its schema: everything lands
            server.start()
            migrate.upgrade(url)
            assert rec.flush(30), rec.stats()
            assert rec.healthy()

            # 3. it goes down mid-life and comes back
            server.stop()
            for i in range(7):
                rec.submit(make_event(name=f"late-{i}"))
            assert not rec.flush(1.0)
            assert rec.stats()["outstanding"] == 7
            server.start()
            assert rec.flush(30), rec.stats()
        finally:
            rec.close()
        db = Database(url)
        try:
            assert _count(db, Decision) == 12
            assert _count(db, Deployment) == 12
            names = {d["name"] for d in jsonable(queries.deployments(db))}
        finally:
            db.dispose()
        assert names == {f"early-{i}" for i in range(5)} | {f"late-{i}" for i in range(7)}
    finally:
        server.destroy()


def test_record_is_synchronous(db_url: str, db: Database, make_event: EventFactory) -> None:
    rec = _recorder(db_url)
    try:
        rec.record(make_event())
        assert _count(db, Model) == 1  # no flush needed
    finally:
        rec.close()


def test_events_arriving_close_together_are_written_in_one_transaction(
    db_url: str, db: Database, make_event: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelgate.inventory import recorder as recorder_module

    batches: list[int] = []
    real = recorder_module.apply_events

    def counting(session: Any, items: Any) -> None:
        batches.append(len(items))
        real(session, items)

    monkeypatch.setattr(recorder_module, "apply_events", counting)
    events = [make_event() for _ in range(20)]
    for wait, most in ((0.5, 2), (0.0, None)):
        batches.clear()
        rec = _recorder(db_url, batch_seconds=wait)
        try:
            for ev in events:  # one every 5 ms, as a steady trickle of reviews
                rec.submit(ev)
                time.sleep(0.005)
            deadline = time.monotonic() + 10
            while sum(batches) < len(events) and time.monotonic() < deadline:
                time.sleep(0.01)  # no flush: it would cut the wait short
        finally:
            rec.close()
        assert sum(batches) == len(events)
        if most is not None:  # the writer waited for the trickle to fill its batch
            assert len(batches) <= most, batches
        else:  # without the wait, the writer takes what is there: many small transactions
            assert len(batches) > 2, batches
    assert _count(db, Decision) == 2 * len(events)


def test_a_flush_does_not_wait_for_the_batch_to_fill(
    db_url: str, db: Database, make_event: EventFactory
) -> None:
    rec = _recorder(db_url, batch_seconds=30.0)
    try:
        rec.submit(make_event())
        started = time.monotonic()
        assert rec.flush(10)
        assert time.monotonic() - started < 2.0
        assert _count(db, Decision) == 1
    finally:
        rec.close()


def test_a_sqlite_inventory_runs_in_write_ahead_log_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    migrate.upgrade(url)
    database = Database(url)
    try:
        with database.read() as s:
            assert s.connection().exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        database.dispose()


def test_healthy_reports_a_closed_port_as_down() -> None:
    rec = _recorder(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    try:
        assert rec.healthy() is False
        assert rec.ping() is False
    finally:
        rec.close(timeout=0.1)


def test_an_event_the_database_refuses_does_not_block_the_others(
    db_url: str, db: Database, make_event: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelgate.inventory import writes as write_model

    real = write_model._upsert_models

    def poisoned(session: Any, admissions: list[Any]) -> Any:
        if any(md.model_name == "poison" for _, _, md in admissions):
            raise ValueError("cannot store this one")
        return real(session, admissions)

    monkeypatch.setattr(write_model, "_upsert_models", poisoned)
    rec = _recorder(db_url, batch_size=10)
    try:
        _submit_all(
            rec,
            [
                make_event(name="a"),
                make_event(model="poison", name="p", violations=("v\x00\ud800",)),
                make_event(name="b"),
            ],
        )
        assert rec.stats()["failed"] == 0  # the bare decision could still be written
    finally:
        rec.close()
    assert sorted(d["name"] for d in jsonable(queries.deployments(db))) == ["a", "b"]
    rows = jsonable(queries.decisions(db))
    assert len(rows) == 3
    assert {r["name"]: r["violations"] for r in rows}["p"] == ["v?"]


def test_closing_without_a_spool_while_the_database_is_down_logs_every_unrecorded_event(
    tmp_path: Path, make_event: EventFactory, caplog: pytest.LogCaptureFixture
) -> None:
    rec = _recorder(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    events = [make_event(name=f"api-{i}") for i in range(2)]
    for ev in events:
        rec.submit(ev)
    with caplog.at_level("ERROR", logger="modelgate.inventory.recorder"):
        rec.close(timeout=0.3)
    lines = [
        r.getMessage() for r in caplog.records if "unrecorded admission event" in r.getMessage()
    ]
    assert len(lines) == 2
    assert {json.loads(line.split(": ", 1)[1])["event"]["uid"] for line in lines} == {
        ev.uid for ev in events
    }
    assert rec.stats()["dropped"] == 2


def test_a_coalesced_batch_ends_in_the_same_state_as_one_event_at_a_time(
    empty_url: str, tmp_path: Path, make_event: EventFactory
) -> None:
    from modelgate.events import SubmittedEvent
    from modelgate.inventory.writes import apply_events

    certs = json.dumps([{"name": "soc2", "expires": "2027-01-01"}])
    events = [
        make_event(version="1.0.0", minutes=1),
        make_event(version="1.0.0", minutes=5, owner="second-owner", certifications=certs),
        make_event(
            version="2.0.0", minutes=3, image="registry/fraud:2"
        ),  # superseded by 1.0.0 at minute 5
        make_event(version="2.0.0", minutes=2, name="other"),
        make_event(operation="DELETE", minutes=4, name="other"),
        make_event(version="1.0.0", minutes=0, compliance_status="rejected"),  # oldest: no effect
        make_event(allowed=False, minutes=6),
    ]
    items = [SubmittedEvent(f"id-{i}", ev) for i, ev in enumerate(events)]
    second = f"sqlite:///{tmp_path / 'one-by-one.db'}"
    states = []
    for url, batches in ((empty_url, [items]), (second, [[i] for i in items])):
        migrate.upgrade(url)
        db = Database(url)
        try:
            for batch in batches:
                with db.session() as s:
                    apply_events(s, batch)
            detail = show(db, "fraud-detector")
            deps = jsonable(queries.deployments(db, include_deleted=True))
        finally:
            db.dispose()
        assert detail is not None
        states.append((detail["versions"], detail["lineage"], deps))
    assert states[0] == states[1]
    versions, _, deps = states[0]
    by_version = {v["version"]: v for v in versions}
    assert by_version["1.0.0"]["owner"] == "second-owner"
    assert by_version["1.0.0"]["compliance_status"] == "approved"
    assert [c["name"] for c in by_version["1.0.0"]["certifications"]] == ["soc2"]
    assert {(d["name"], d["version"], d["status"]) for d in deps} == {
        ("fraud-api", "1.0.0", None),
        ("other", "2.0.0", "deleted"),
    }


def test_an_unusable_spool_directory_falls_back_to_memory(
    db_url: str, db: Database, make_event: EventFactory, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    rec = _recorder(db_url, spool_dir=blocker / "spool")
    try:
        assert rec.spool is None
        _submit_all(rec, [make_event()])
    finally:
        rec.close()
    assert _count(db, Decision) == 1


def test_a_database_outage_during_one_by_one_writes_neither_loses_nor_double_counts(
    db_url: str, db: Database, make_event: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from modelgate.inventory import writes as write_model

    real_upsert = write_model._upsert_models

    def poisoned(session: Any, admissions: list[Any]) -> Any:
        if any(md.model_name == "poison" for _, _, md in admissions):
            raise ValueError("cannot store this one")
        return real_upsert(session, admissions)

    monkeypatch.setattr(write_model, "_upsert_models", poisoned)
    rec = _recorder(db_url, batch_size=10)
    real_write_one = rec._write_one
    outage = {"left": 1}

    def flaky(item: Any, count: bool) -> None:
        if item.event.name == "second" and outage["left"]:
            outage["left"] -= 1
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        real_write_one(item, count)

    monkeypatch.setattr(rec, "_write_one", flaky)
    monkeypatch.setattr(rec, "_ensure_writer", lambda: None)  # queue all three first
    for name, model in (("first", "fraud-detector"), ("second", "fraud-detector"), ("p", "poison")):
        rec.submit(make_event(name=name, model=model))
    monkeypatch.setattr(rec, "_ensure_writer", Recorder._ensure_writer.__get__(rec))
    try:
        assert rec.flush(20), rec.stats()
        stats = rec.stats()
    finally:
        rec.close()
    assert outage["left"] == 0
    assert (stats["submitted"], stats["written"], stats["outstanding"]) == (3, 3, 0)
    assert _count(db, Decision) == 3
    assert sorted(d["name"] for d in jsonable(queries.deployments(db))) == ["first", "second"]


def test_an_empty_database_gets_its_schema_on_the_first_write(
    empty_url: str, make_event: EventFactory
) -> None:
    rec = _recorder(empty_url, auto_migrate=True)
    try:
        _submit_all(rec, [make_event(name="first"), make_event(name="second")])
    finally:
        rec.close()
    assert migrate.current(empty_url) == migrate.head()
    db = Database(empty_url)
    try:
        assert _count(db, Deployment) == 2
        assert _count(db, Decision) == 2
    finally:
        db.dispose()


def test_without_auto_migrate_events_wait_for_db_upgrade(
    empty_url: str, make_event: EventFactory
) -> None:
    rec = _recorder(empty_url, auto_migrate=False)
    try:
        rec.submit(make_event(name="waiting"))
        assert not rec.flush(1.0)
        assert migrate.current(empty_url) is None
        migrate.upgrade(empty_url)
        assert rec.flush(30), rec.stats()
    finally:
        rec.close()


def test_whether_the_caller_was_verified_is_recorded_and_survives_the_spool(
    db_url: str, db: Database, make_event: EventFactory, tmp_path: Path
) -> None:
    verified = dataclasses.replace(make_event(), caller_verified=True)
    unknown = make_event()
    spooled = event_from_json(event_to_json(verified))  # the spool keeps the field
    assert spooled.caller_verified is True
    rec = _recorder(db_url)
    try:
        rec.record(spooled)
        rec.record(unknown)
    finally:
        rec.close()
    with db.read() as s:
        values = {d.uid: d.caller_verified for d in s.scalars(select(Decision))}
    assert values == {verified.uid: True, unknown.uid: None}


def test_a_spool_left_by_a_dead_process_is_replayed_at_start_without_new_traffic(
    tmp_path: Path, make_event: EventFactory
) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"  # not migrated yet: every write fails
    spool = tmp_path / "spool"
    rec = _recorder(url, spool_dir=spool)
    for i in range(5):
        rec.submit(make_event(name=f"api-{i}"))
    assert not rec.flush(0.5)
    rec.close(timeout=0.5)
    stats = rec.stats()
    assert stats["spool_bytes"] > 0 and stats["spool_oldest_seconds"] >= 0

    migrate.upgrade(url)
    rec2 = _recorder(url, spool_dir=spool)  # nothing is submitted to it
    db = Database(url)
    try:
        deadline = time.monotonic() + 10
        while _count(db, Decision) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(db, Decision) == 5
        assert rec2.stats()["spool_bytes"] == 0
        assert rec2.stats()["spool_oldest_seconds"] == 0
    finally:
        db.dispose()
        rec2.close()
