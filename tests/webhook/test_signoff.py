"""Admission against recorded sign-off (MODELGATE_APPROVAL_SOURCE=inventory) with the real
embedded engine, recorder and approval snapshot, on SQLite and real PostgreSQL: no approval
denied (and registered for review), approval admits, revocation, expiry, scope, two-approver
tiers, exemptions, the decision log naming the approval, the snapshot surviving a database
outage, and on PostgreSQL an approval reaching the webhook by notification."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from modelgate.engine import engine_for
from modelgate.identity import Identity
from modelgate.inventory import queries, signoff
from modelgate.inventory.db import Database
from modelgate.inventory.migrate import upgrade
from modelgate.inventory.recorder import Recorder
from modelgate.inventory.registry import ApprovalRegistry
from modelgate.settings import Settings
from policies.config import PolicyConfig
from tests.fixtures.postgres import PostgresServer
from tests.webhook.reviews import COMPLIANT, P, deployment, review
from webhook.app import app_state, create_app

ALICE = Identity("alice@example.com", ("model-risk",), "alice@example.com", "token-file")
BOB = Identity("bob@example.com", ("model-risk",), "bob@example.com", "token-file")
CONFIG = PolicyConfig()


def today() -> Any:
    return datetime.now(UTC).date()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inventory.db'}"
    else:
        url = str(request.getfixturevalue("postgres_db_url"))
    upgrade(url)
    return url


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(database_url: str, tmp_path: Path) -> Iterator[AppFactory]:
    apps: list[Flask] = []

    def factory(refresh: float = 0.2, cluster: str = "prod-eu", **settings: Any) -> Flask:
        s = Settings(
            database_url=database_url,
            cluster_name=cluster,
            spool_dir=tmp_path / f"spool-{len(apps)}",
            approval_refresh_seconds=refresh,
            **settings,
        )
        app = create_app(s, engine=engine_for(s), recorder=Recorder(s), reload_in_background=False)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app_state(app).close()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def post(app: Flask, obj: dict[str, Any], uid: str, path: str = "/validate") -> dict[str, Any]:
    body = review(obj, uid=uid, user="deployer@example.com")
    resp = app.test_client().post(path, data=json.dumps(body), content_type="application/json")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    out: dict[str, Any] = resp.get_json()["response"]
    return out


def fraud(namespace: str = "ml", **annotations: str) -> dict[str, Any]:
    return deployment("fraud", namespace, annotations={**COMPLIANT, **annotations})


def flush(app: Flask) -> None:
    assert app_state(app).recorder.flush(10)  # type: ignore[attr-defined]


def refreshed(app: Flask) -> None:
    registry = app_state(app).registry
    assert isinstance(registry, ApprovalRegistry)
    assert registry.refresh()


def message(response: dict[str, Any]) -> str:
    return str((response.get("status") or {}).get("message") or "")


def approve(db: Database, who: Identity = ALICE, version: str = "1.4.2", **kw: Any) -> Any:
    return signoff.record_approval(
        db,
        model="fraud-detector",
        version=version,
        decision="approved",
        actor=who,
        reason="reviewed",
        config=CONFIG,
        today=today(),
        **kw,
    )


def test_without_an_approval_the_annotation_is_not_trusted(
    make_app: AppFactory, db: Database
) -> None:
    app = make_app()
    denied = post(app, fraud(), "u1")
    assert denied["allowed"] is False
    text = message(denied)
    assert 'model "fraud-detector" version "1.4.2" has no recorded approval' in text
    assert "modelgate approve fraud-detector 1.4.2" in text
    flush(app)
    # the denial registered the version, waiting for review
    waiting = signoff.version_sign_off(db, "fraud-detector", "1.4.2", today=today(), config=CONFIG)
    assert waiting.state.state == "pending-review"
    assert waiting.registered_by is None


def test_a_recorded_approval_admits_and_the_decision_names_it(
    make_app: AppFactory, db: Database
) -> None:
    app = make_app()
    post(app, fraud(), "u1")
    flush(app)
    record = approve(db)
    refreshed(app)
    admitted = post(app, fraud(**{P + "compliance-status": "pending-review"}), "u2")
    assert admitted["allowed"] is True, message(admitted)
    flush(app)
    log = queries.decisions(db, model="fraud-detector", allowed=True)
    assert log[0]["approvals"] == [{"type": "approval", "id": record["id"]}]


def test_revocation_and_rejection_deny_again(make_app: AppFactory, db: Database) -> None:
    app = make_app()
    post(app, fraud(), "u1")
    flush(app)
    record = approve(db)
    refreshed(app)
    assert post(app, fraud(), "u2")["allowed"] is True
    signoff.revoke_approval(db, record["id"], actor=BOB, reason="data leak", today=today())
    refreshed(app)
    assert post(app, fraud(), "u3")["allowed"] is False
    approve(db, BOB)
    signoff.record_approval(
        db,
        model="fraud-detector",
        version="1.4.2",
        decision="rejected",
        actor=ALICE,
        reason="bias",
        config=CONFIG,
        today=today(),
    )
    refreshed(app)
    rejected = post(app, fraud(), "u4")
    assert rejected["allowed"] is False
    assert 'was rejected by "alice@example.com"' in message(rejected)


def test_an_expired_approval_denies(make_app: AppFactory, db: Database) -> None:
    app = make_app()
    post(app, fraud(), "u1")
    flush(app)
    approve(db, expires=today().isoformat(), now=datetime.now(UTC) - timedelta(days=3))
    refreshed(app)
    assert post(app, fraud(), "u2")["allowed"] is True  # valid through its day
    # the same snapshot, judged a day later: the policy compares expires with input.today
    state = app_state(app)
    registry = state.registry
    assert registry is not None
    from modelgate.policy_input import build_input
    from modelgate.workload import extract_workload

    workload = extract_workload(fraud())
    later = build_input(
        request={},
        workload=workload,
        mode="admission",
        now=datetime.now(UTC) + timedelta(days=1),
        registry=registry.entry_for(workload),
    )
    result = state.engine.evaluate(later)
    assert not result.allowed
    assert any("expired or out of scope" in d for d in result.deny)


def test_an_approval_holds_only_in_its_scope(make_app: AppFactory, db: Database) -> None:
    app = make_app()
    post(app, fraud(), "u1")
    flush(app)
    approve(db, scope={"namespaces": ["ml"], "clusters": ["prod-eu"]})
    refreshed(app)
    assert post(app, fraud("ml"), "u2")["allowed"] is True
    elsewhere = post(app, fraud("staging"), "u3")
    assert elsewhere["allowed"] is False
    assert 'namespace "staging"' in message(elsewhere)
    other_cluster = make_app(cluster="prod-us")
    assert post(other_cluster, fraud("ml"), "u4")["allowed"] is False


def test_a_two_approver_tier_needs_two_approvals(make_app: AppFactory, db: Database) -> None:
    app = make_app()
    high = {
        P + "risk-tier": "high",
        P + "model-card": "https://models.example.com/fraud",
        P + "certifications": json.dumps([{"name": "SR 11-7", "expires": "2099-01-01"}]),
    }
    post(app, fraud(**high), "u1")
    flush(app)
    approve(db, ALICE)
    refreshed(app)
    one = post(app, fraud(**high), "u2")
    assert one["allowed"] is False
    assert "has 1 of the 2 approvals" in message(one)
    approve(db, BOB)
    refreshed(app)
    assert post(app, fraud(**high), "u3")["allowed"] is True


def test_exempt_needs_a_recorded_exemption(make_app: AppFactory, db: Database) -> None:
    app = make_app()
    exempt = {P + "compliance-status": "exempt", P + "exempt-reason": "sandbox"}
    assert post(app, fraud(**exempt), "u1")["allowed"] is False
    flush(app)
    record = signoff.record_exemption(
        db,
        model="fraud-detector",
        version="1.4.2",
        actor=ALICE,
        reason="research sandbox",
        expires=(today() + timedelta(days=30)).isoformat(),
        today=today(),
    )
    refreshed(app)
    admitted = post(app, fraud(**exempt), "u2")
    assert admitted["allowed"] is True
    assert any("exemption granted by" in w for w in admitted.get("warnings") or [])
    flush(app)
    log = queries.decisions(db, model="fraud-detector", allowed=True)
    assert log[0]["approvals"] == [{"type": "exemption", "id": record["id"]}]


def test_the_annotation_source_trusts_the_annotation(make_app: AppFactory) -> None:
    app = make_app(approval_source="annotation")
    assert app_state(app).registry is None
    assert post(app, fraud(), "u1")["allowed"] is True


def test_readyz_reports_the_snapshot_and_its_age(make_app: AppFactory) -> None:
    app = make_app()
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200
    approvals = resp.get_json()["approvals"]
    assert approvals["loaded"] is True and approvals["error"] is None
    assert approvals["age_seconds"] >= 0


def test_the_last_snapshot_serves_while_the_database_is_down(tmp_path: Path) -> None:
    server = PostgresServer()  # its own server: this test stops it
    server.start()
    try:
        url = server.url("postgres")
        upgrade(url)
        db = Database(url)
        signoff.register_version(
            db,
            model="fraud-detector",
            version="1.4.2",
            metadata={
                "owner": "risk-ml@example.com",
                "training-date": "2025-03-14",
                "training-data": "s3://d",
            },
            actor=Identity("olivia@example.com"),
            config=CONFIG,
        )
        approve(db)
        db.dispose()
        settings = Settings(database_url=url, cluster_name="prod-eu", spool_dir=tmp_path / "spool")
        app = create_app(
            settings,
            engine=engine_for(settings),
            recorder=Recorder(settings),
            reload_in_background=False,
        )
        try:
            assert post(app, fraud(), "u1")["allowed"] is True
            server.stop()  # the database goes away
            registry = app_state(app).registry
            assert isinstance(registry, ApprovalRegistry)
            assert registry.refresh() is False
            assert post(app, fraud(), "u2")["allowed"] is True  # the last snapshot serves
            resp = app.test_client().get("/readyz")
            assert resp.status_code == 503  # the database does not answer ...
            approvals = resp.get_json()["approvals"]  # ... and the snapshot says how old it is
            assert approvals["loaded"] is True and approvals["error"]
            assert approvals["age_seconds"] >= 0
        finally:
            app_state(app).close()
    finally:
        server.destroy()


def test_before_any_snapshot_every_model_is_unapproved(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'never-created' / 'inventory.db'}",
        spool_dir=tmp_path / "spool",
        auto_migrate=False,
    )
    app = create_app(
        settings,
        engine=engine_for(settings),
        recorder=Recorder(settings),
        reload_in_background=False,
    )
    try:
        assert post(app, fraud(), "u1")["allowed"] is False  # fail closed
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503
        assert any("no approval snapshot loaded yet" in r for r in ready.get_json()["reasons"])
    finally:
        app_state(app).close()


def test_a_database_without_tables_yet_is_an_empty_snapshot_and_admission_stays_closed(
    tmp_path: Path,
) -> None:
    """The recorder creates the tables on its first write (auto-migrate): until then the
    snapshot is empty, not missing, so the webhook becomes ready and still denies an
    unapproved version; once the tables exist, a recorded approval admits it."""
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    settings = Settings(database_url=url, cluster_name="prod-eu", spool_dir=tmp_path / "spool")
    app = create_app(
        settings,
        engine=engine_for(settings),
        recorder=Recorder(settings),
        reload_in_background=False,
    )
    try:
        registry = app_state(app).registry
        assert isinstance(registry, ApprovalRegistry)
        assert registry.refresh() is True
        status = registry.status()
        assert status["loaded"] is True and status["versions"] == 0 and status["error"] is None
        ready = app.test_client().get("/readyz")
        assert not any("approval" in r for r in ready.get_json().get("reasons", [])), ready.json
        denied = post(app, fraud(), "u1")
        assert denied["allowed"] is False
        assert "has no recorded approval" in message(denied)
        flush(app)  # the first write created the tables (and registered the version)
        db = Database(url)
        try:
            approve(db)
        finally:
            db.dispose()
        refreshed(app)
        assert post(app, fraud(), "u2")["allowed"] is True
    finally:
        app_state(app).close()


def test_an_approval_reaches_the_webhook_by_notification(
    postgres_db_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: with polling practically off (an hour), LISTEN/NOTIFY alone brings the
    approval to the webhook (the deadline is generous: make bench measures the latency)."""
    upgrade(postgres_db_url)
    settings = Settings(
        database_url=postgres_db_url,
        cluster_name="prod-eu",
        spool_dir=tmp_path / "spool",
        approval_refresh_seconds=3600,
    )
    app = create_app(
        settings,
        engine=engine_for(settings),
        recorder=Recorder(settings),
        reload_in_background=False,
    )
    db = Database(postgres_db_url)
    try:
        registry = app_state(app).registry
        assert isinstance(registry, ApprovalRegistry)
        deadline = time.monotonic() + 30
        while not registry.status()["listening"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert registry.status()["listening"]
        assert post(app, fraud(), "u1")["allowed"] is False
        flush(app)
        approve(db)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if post(app, fraud(), f"u-{time.monotonic()}")["allowed"]:
                break
            time.sleep(0.05)
        assert post(app, fraud(), "u-final")["allowed"] is True
    finally:
        db.dispose()
        app_state(app).close()
