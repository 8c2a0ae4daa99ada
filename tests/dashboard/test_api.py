"""The inventory API (/api/v1) on SQLite and real PostgreSQL: roles, registration, approvals,
separation of duties, two-approver tiers, rejections, revocation, expiry, exemptions and
recorded certifications, the approval log. Every response is validated against the OpenAPI
document (tests/dashboard/openapi_check.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from dashboard.app import create_app
from modelgate.identity.tokens import write_token_file
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from tests.dashboard.openapi_check import ApiClient, spec
from tests.fixtures.inventory import admit, deny, deployment, metadata

ROLE_GROUPS = "viewer=auditors,owner=ml-eng,approver=model-risk,admin=platform"
USERS: dict[str, tuple[str, list[str]]] = {
    "viewer": ("vic@example.com", ["auditors"]),
    "owner": ("olivia@example.com", ["ml-eng"]),
    "alice": ("alice@example.com", ["model-risk"]),
    "bob": ("bob@example.com", ["model-risk"]),
    "carol": ("carol@example.com", ["model-risk", "ml-eng"]),
    "risk-ml": ("risk-ml@example.com", ["model-risk"]),  # owns the seeded models
    "deployer": ("dave@example.com", ["model-risk"]),  # deploys them
}
TODAY = datetime.now(UTC).date()

AppFactory = Callable[..., ApiClient]


def _token(who: str) -> str:
    return f"token-of-{who}"


@pytest.fixture
def make_api(db_url: str, tmp_path: Path) -> AppFactory:
    tokens = write_token_file(
        tmp_path / "tokens.csv",
        [(_token(who), user, groups) for who, (user, groups) in USERS.items()],
    )

    def factory(days: int = 0) -> ApiClient:
        app: Flask = create_app(
            Settings.from_env(
                {}, database_url=db_url, token_file=str(tokens), role_groups=ROLE_GROUPS
            ),
            clock=lambda: datetime.now(UTC) + timedelta(days=days),
        )
        app.testing = True
        return ApiClient(app.test_client())

    return factory


@pytest.fixture
def api(make_api: AppFactory) -> ApiClient:
    return make_api()


def _register(api: ApiClient, name: str = "scorer", version: str = "1.0", **md: str) -> Any:
    metadata = {
        "owner": "olivia@example.com",
        "training-date": "2026-01-15",
        "training-data": "s3://data/scorer/train.parquet",
        "risk-tier": "limited",
        **md,
    }
    resp = api.as_(_token("owner")).post(
        f"/api/v1/models/{name}/versions", {"version": version, "metadata": metadata}
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _approve(api: ApiClient, who: str, name: str, version: str, **body: Any) -> Any:
    return api.as_(_token(who)).post(
        f"/api/v1/models/{name}/versions/{version}/approvals", {"decision": "approved", **body}
    )


def _state(api: ApiClient, name: str, version: str) -> dict[str, Any]:
    resp = api.as_(_token("viewer")).get(f"/api/v1/models/{name}/versions/{version}")
    assert resp.status_code == 200
    state: dict[str, Any] = resp.get_json()["sign_off"]
    return state


# --- authentication and roles -----------------------------------------------------------


def test_no_credentials_is_401_with_a_bearer_challenge(api: ApiClient) -> None:
    resp = api.get("/api/v1/models")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "no credentials" in resp.get_json()["error"]


def test_bad_token_is_401_naming_why_without_echoing_it(api: ApiClient) -> None:
    resp = api.as_("forged-token-123").get("/api/v1/models")
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert "forged-token-123" not in resp.get_data(as_text=True)
    assert "forged-token-123" not in resp.headers["WWW-Authenticate"]


def test_every_read_needs_viewer(api: ApiClient, db: Database) -> None:
    admit(db, "prod", deployment("fraud", annotations=metadata()))
    reads = [
        "/api/v1/overview",
        "/api/v1/models",
        "/api/v1/models/fraud-detector",
        "/api/v1/models/fraud-detector/versions/1.0.0",
        "/api/v1/models/fraud-detector/versions/1.0.0/approvals",
        "/api/v1/models/fraud-detector/versions/1.0.0/exemptions",
        "/api/v1/models/fraud-detector/versions/1.0.0/certifications",
        "/api/v1/approvals",
        "/api/v1/approval-log",
        "/api/v1/reviews",
        "/api/v1/decisions",
        "/api/v1/findings",
        "/api/v1/capacity",
        "/api/v1/capacity?group_by=owner",
    ]
    for path in reads:
        assert api.get(path).status_code == 401, path
        assert api.as_(_token("viewer")).get(path).status_code == 200, path


def test_a_caller_without_role_is_403(make_api: AppFactory, tmp_path: Path, db_url: str) -> None:
    tokens = write_token_file(tmp_path / "other.csv", [("t", "eve@example.com", ["nobody"])])
    app = create_app(
        Settings.from_env({}, database_url=db_url, token_file=str(tokens), role_groups=ROLE_GROUPS)
    )
    api = ApiClient(app.test_client(), "t")
    for path in ("/api/v1/models", "/api/v1/capacity"):
        resp = api.get(path)
        assert resp.status_code == 403, path
        assert "needs role viewer" in resp.get_json()["error"], path
    who = api.get("/api/v1/whoami").get_json()
    assert who["user"] == "eve@example.com" and who["role"] is None and who["permissions"] == []


def test_capacity_rejects_a_bad_grouping_with_a_400(api: ApiClient) -> None:
    resp = api.as_(_token("viewer")).get("/api/v1/capacity?group_by=gpu")
    assert resp.status_code == 400
    assert "group_by" in resp.get_json()["error"]


def test_writes_need_their_roles(api: ApiClient) -> None:
    _register(api)
    viewer = api.as_(_token("viewer"))
    owner = api.as_(_token("owner"))
    body = {"version": "2.0", "metadata": {"owner": "x"}}
    assert viewer.post("/api/v1/models/scorer/versions", body).status_code == 403
    for client in (viewer, owner):
        resp = client.post("/api/v1/models/scorer/versions/1.0/approvals", {"decision": "approved"})
        assert resp.status_code == 403
        assert "needs role approver" in resp.get_json()["error"]
        assert (
            client.post(
                "/api/v1/models/scorer/versions/1.0/exemptions",
                {"reason": "r", "expires": "2099-01-01"},
            ).status_code
            == 403
        )
    assert owner.post("/api/v1/approvals/1/revoke", {"reason": "r"}).status_code == 403


def test_whoami_names_the_caller_and_role(api: ApiClient) -> None:
    who = api.as_(_token("alice")).get("/api/v1/whoami").get_json()
    assert who["user"] == "alice@example.com"
    assert who["groups"] == ["model-risk"]
    assert who["role"] == "approver"
    assert {"read", "register", "approve", "exempt"} <= set(who["permissions"])


# --- registration and approval ----------------------------------------------------------


def test_register_approve_and_read_the_history(api: ApiClient) -> None:
    version = _register(api, **{"model-card": "https://models.example.com/scorer"})
    assert version["registered_by"] == "olivia@example.com"
    assert version["compliance_status"] == "pending-review"
    assert version["datasets"] == ["s3://data/scorer/train.parquet"]
    assert _state(api, "scorer", "1.0")["state"] == "pending-review"
    reviews = api.as_(_token("viewer")).get("/api/v1/reviews").get_json()
    assert [(r["model"], r["version"]) for r in reviews] == [("scorer", "1.0")]

    resp = _approve(
        api,
        "alice",
        "scorer",
        "1.0",
        reason="validation report reviewed",
        evidence=["https://docs.example.com/validation/scorer-1.0"],
        expires=(TODAY + timedelta(days=90)).isoformat(),
    )
    assert resp.status_code == 201
    record = resp.get_json()
    assert record["approver"] == "alice@example.com"
    assert record["approver_groups"] == ["model-risk"]
    assert record["decision"] == "approved" and record["status"] == "current"
    assert record["model"] == "scorer" and record["version"] == "1.0"
    assert record["evidence"] == ["https://docs.example.com/validation/scorer-1.0"]
    state = _state(api, "scorer", "1.0")
    assert state["state"] == "approved"
    assert state["signed_off_by"] == [{"type": "approval", "id": record["id"]}]
    assert api.as_(_token("viewer")).get("/api/v1/reviews").get_json() == []

    history = api.as_(_token("viewer")).get("/api/v1/models/scorer/versions/1.0/approvals")
    assert [a["id"] for a in history.get_json()] == [record["id"]]
    log = api.as_(_token("viewer")).get("/api/v1/approval-log?model=scorer").get_json()
    assert [(e["action"], e["actor"]) for e in log] == [
        ("approve", "alice@example.com"),
        ("register", "olivia@example.com"),
    ]
    assert log[0]["evidence"] == ["https://docs.example.com/validation/scorer-1.0"]
    model = api.as_(_token("viewer")).get("/api/v1/models/scorer").get_json()
    assert model["versions"][0]["sign_off"]["state"] == "approved"


def test_registering_twice_is_409_and_bad_metadata_400(api: ApiClient) -> None:
    _register(api)
    owner = api.as_(_token("owner"))
    again = owner.post(
        "/api/v1/models/scorer/versions",
        {
            "version": "1.0",
            "metadata": {"owner": "x", "training-date": "2026-01-01", "training-data": "s3://x"},
        },
    )
    assert again.status_code == 409
    missing = owner.post("/api/v1/models/scorer/versions", {"version": "2.0", "metadata": {}})
    assert missing.status_code == 400
    assert "owner" in missing.get_json()["error"]
    assert "training-data" in missing.get_json()["error"]
    shape = owner.post("/api/v1/models/scorer/versions", {"metadata": {"owner": "x"}})
    assert shape.status_code == 400


# --- separation of duties ---------------------------------------------------------------


def test_the_owner_may_not_approve_their_own_model(api: ApiClient, db: Database) -> None:
    admit(db, "prod", deployment("fraud", annotations=metadata(owner="risk-ml@example.com")))
    resp = _approve(api, "risk-ml", "fraud-detector", "1.0.0")
    assert resp.status_code == 403
    assert "risk-ml@example.com owns this model version" in resp.get_json()["error"]
    assert _state(api, "fraud-detector", "1.0.0")["state"] == "pending-review"


def test_the_registrant_may_not_approve(api: ApiClient, tmp_path: Path, db_url: str) -> None:
    # carol is in ml-eng (may register) and in model-risk (may approve): not both here
    metadata_ = {
        "owner": "team@example.com",
        "training-date": "2026-01-01",
        "training-data": "s3://d",
    }
    carol = api.as_(_token("carol"))
    assert (
        carol.post(
            "/api/v1/models/ranker/versions", {"version": "1", "metadata": metadata_}
        ).status_code
        == 201
    )
    resp = _approve(api, "carol", "ranker", "1")
    assert resp.status_code == 403
    assert "carol@example.com registered this model version" in resp.get_json()["error"]


def test_a_deployer_may_not_approve(api: ApiClient, db: Database) -> None:
    from modelgate.inventory.recorder import Recorder
    from tests.fixtures.inventory import admit_event

    event = admit_event("prod", deployment("fraud", annotations=metadata()))
    Recorder(database=db).record(
        type(event)(**{**event.__dict__, "user": "DAVE@example.com", "allowed": False})
    )
    resp = _approve(api, "deployer", "fraud-detector", "1.0.0")
    assert resp.status_code == 403
    assert "deployed this model version" in resp.get_json()["error"]


def test_an_approver_counts_once(api: ApiClient) -> None:
    _register(api, **{"risk-tier": "high"})
    assert _approve(api, "alice", "scorer", "1.0").status_code == 201
    again = _approve(api, "alice", "scorer", "1.0")
    assert again.status_code == 403
    assert "already approved" in again.get_json()["error"]


def test_two_approver_tier_needs_two_distinct_approvers(api: ApiClient) -> None:
    _register(api, **{"risk-tier": "high"})
    assert _approve(api, "alice", "scorer", "1.0").status_code == 201
    state = _state(api, "scorer", "1.0")
    assert state["state"] == "pending-review"
    assert state["approvals_needed"] == 2
    assert "1 of 2" in state["reason"]
    assert _approve(api, "bob", "scorer", "1.0").status_code == 201
    state = _state(api, "scorer", "1.0")
    assert state["state"] == "approved"
    assert state["approvers"] == ["alice@example.com", "bob@example.com"]


# --- rejection, revocation, expiry ------------------------------------------------------


def test_a_rejection_wins_until_a_new_approval(api: ApiClient) -> None:
    _register(api)
    first = _approve(api, "alice", "scorer", "1.0").get_json()
    no_reason = api.as_(_token("bob")).post(
        "/api/v1/models/scorer/versions/1.0/approvals", {"decision": "rejected"}
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.get_json()["error"]
    rejected = api.as_(_token("bob")).post(
        "/api/v1/models/scorer/versions/1.0/approvals",
        {"decision": "rejected", "reason": "bias in the holdout set"},
    )
    assert rejected.status_code == 201
    state = _state(api, "scorer", "1.0")
    assert state["state"] == "rejected" and "bias in the holdout set" in state["reason"]
    history = {
        a["id"]: a["status"]
        for a in api.as_(_token("viewer"))
        .get("/api/v1/models/scorer/versions/1.0/approvals")
        .get_json()
    }
    assert history[first["id"]] == "superseded"
    assert _approve(api, "alice", "scorer", "1.0", reason="re-validated").status_code == 201
    assert _state(api, "scorer", "1.0")["state"] == "approved"


def test_revocation_withdraws_the_approval(api: ApiClient) -> None:
    _register(api)
    record = _approve(api, "alice", "scorer", "1.0").get_json()
    bob = api.as_(_token("bob"))
    assert bob.post(f"/api/v1/approvals/{record['id']}/revoke", {}).status_code == 400
    resp = bob.post(f"/api/v1/approvals/{record['id']}/revoke", {"reason": "data leak found"})
    assert resp.status_code == 200
    revoked = resp.get_json()
    assert revoked["status"] == "revoked" and revoked["revoked_by"] == "bob@example.com"
    assert revoked["revoke_reason"] == "data leak found"
    assert _state(api, "scorer", "1.0")["state"] == "pending-review"
    assert bob.post(f"/api/v1/approvals/{record['id']}/revoke", {"reason": "x"}).status_code == 409
    assert bob.post("/api/v1/approvals/999999/revoke", {"reason": "x"}).status_code == 404
    actions = [e["action"] for e in bob.get("/api/v1/approval-log").get_json()]
    assert actions[:2] == ["revoke", "approve"]


def test_a_revocation_wins_over_the_other_approvals_until_a_new_one(api: ApiClient) -> None:
    _register(api, **{"risk-tier": "high"})
    a = _approve(api, "alice", "scorer", "1.0").get_json()
    _approve(api, "bob", "scorer", "1.0")
    assert _state(api, "scorer", "1.0")["state"] == "approved"
    api.as_(_token("bob")).post(f"/api/v1/approvals/{a['id']}/revoke", {"reason": "conflict"})
    state = _state(api, "scorer", "1.0")
    assert state["state"] == "pending-review" and state["approvers"] == []


def test_an_approval_expires_after_its_day(make_api: AppFactory) -> None:
    api = make_api()
    _register(api)
    today = datetime.now(UTC).date()
    record = _approve(api, "alice", "scorer", "1.0", expires=today.isoformat()).get_json()
    assert _state(api, "scorer", "1.0")["state"] == "approved"  # valid through its day
    tomorrow = make_api(days=1)
    assert _state(tomorrow, "scorer", "1.0")["state"] == "pending-review"
    history = tomorrow.as_(_token("viewer")).get("/api/v1/approvals?model=scorer").get_json()
    assert [(a["id"], a["status"]) for a in history] == [(record["id"], "expired")]
    past = _approve(api, "bob", "scorer", "1.0", expires=(today - timedelta(days=1)).isoformat())
    assert past.status_code == 400 and "in the past" in past.get_json()["error"]


def test_a_scoped_approval_is_recorded_with_its_scope(api: ApiClient) -> None:
    _register(api)
    resp = _approve(api, "alice", "scorer", "1.0", scope={"namespaces": ["ml"]})
    assert resp.status_code == 201
    assert resp.get_json()["scope"] == {"namespaces": ["ml"]}
    bad = _approve(api, "bob", "scorer", "1.0", scope={"regions": ["eu"]})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "approved", "evidence": ["ftp://x"]}, "http(s) URL"),
        ({"decision": "approved", "evidence": "not-a-list"}, "http(s) URL"),
        ({"decision": "approved", "expires": "next week"}, "YYYY-MM-DD"),
        ({"decision": "approved", "approver": "someone-else@example.com"}, "unknown field"),
    ],
)
def test_bad_approval_requests_are_400(api: ApiClient, body: dict[str, Any], fragment: str) -> None:
    _register(api)
    resp = api.as_(_token("alice")).post("/api/v1/models/scorer/versions/1.0/approvals", body)
    assert resp.status_code == 400
    assert fragment in resp.get_json()["error"]


def test_the_body_must_be_a_json_object(api: ApiClient) -> None:
    _register(api)
    resp = api.client.post(
        "/api/v1/models/scorer/versions/1.0/approvals",
        data="{not json",
        headers={"Authorization": f"Bearer {_token('alice')}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and "not JSON" in resp.get_json()["error"]


def test_approving_an_unknown_version_is_404(api: ApiClient) -> None:
    resp = _approve(api, "alice", "nothing", "0.0")
    assert resp.status_code == 404
    assert "register it first" in resp.get_json()["error"]


# --- exemptions and certifications ------------------------------------------------------


def test_exemptions_need_reason_and_expiry_and_are_revocable(api: ApiClient) -> None:
    _register(api)
    alice = api.as_(_token("alice"))
    path = "/api/v1/models/scorer/versions/1.0/exemptions"
    assert alice.post(path, {"expires": "2099-01-01"}).status_code == 400
    assert alice.post(path, {"reason": "pilot"}).status_code == 400
    resp = alice.post(path, {"reason": "research pilot", "expires": "2099-01-31"})
    assert resp.status_code == 201
    exemption = resp.get_json()
    assert exemption["granted_by"] == "alice@example.com" and exemption["status"] == "current"
    state = _state(api, "scorer", "1.0")
    assert state["state"] == "exempt" and "research pilot" in state["reason"]
    assert [e["id"] for e in alice.get(path).get_json()] == [exemption["id"]]
    revoked = alice.post(f"/api/v1/exemptions/{exemption['id']}/revoke", {"reason": "ended"})
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert _state(api, "scorer", "1.0")["state"] == "pending-review"


def test_the_owner_may_not_exempt_their_own_model(api: ApiClient, db: Database) -> None:
    admit(db, "prod", deployment("fraud", annotations=metadata(owner="risk-ml@example.com")))
    resp = api.as_(_token("risk-ml")).post(
        "/api/v1/models/fraud-detector/versions/1.0.0/exemptions",
        {"reason": "mine", "expires": "2099-01-01"},
    )
    assert resp.status_code == 403


def test_certifications_are_recorded_with_who_and_revocable(api: ApiClient) -> None:
    _register(api)
    alice = api.as_(_token("alice"))
    path = "/api/v1/models/scorer/versions/1.0/certifications"
    resp = alice.post(
        path,
        {
            "name": "SR 11-7 validation",
            "expires": "2027-06-30",
            "evidence": "https://docs.example.com/sr117",
        },
    )
    assert resp.status_code == 201
    cert = resp.get_json()
    assert cert["recorded_by"] == "alice@example.com" and cert["status"] == "current"
    assert alice.get(path).get_json()[0]["name"] == "SR 11-7 validation"
    assert alice.post(path, {"name": "x"}).status_code == 400
    revoked = alice.post(f"/api/v1/certifications/{cert['id']}/revoke", {"reason": "withdrawn"})
    assert revoked.get_json()["status"] == "revoked"


# --- denied admissions wait for review --------------------------------------------------


def test_a_denied_admission_registers_the_version_for_review(api: ApiClient, db: Database) -> None:
    deny(
        db,
        "prod",
        deployment("fraud", annotations=metadata(model_version="2.0.0")),
        ["no recorded approval"],
    )
    reviews = api.as_(_token("viewer")).get("/api/v1/reviews").get_json()
    assert [(r["model"], r["version"], r["sign_off"]["state"]) for r in reviews] == [
        ("fraud-detector", "2.0.0", "pending-review")
    ]
    log = api.as_(_token("viewer")).get("/api/v1/approval-log").get_json()
    assert log[0]["action"] == "register" and log[0]["actor"] == "bob@example.com"
    assert "denied admission" in log[0]["reason"]


# --- the document -----------------------------------------------------------------------


def test_the_openapi_document_is_open_and_documents_every_route(api: ApiClient) -> None:
    resp = api.client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    app = api.client.application
    names = {"approval_id": "id", "exemption_id": "id", "certification_id": "id"}
    routes = {
        (
            re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + names.get(m[1], m[1]) + "}", rule.rule),
            method,
        )
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods or ()
        if method in ("GET", "POST")
    }
    assert routes == documented
    assert spec() is not None


def test_database_down_is_503_json(tmp_path: Path) -> None:
    tokens = write_token_file(tmp_path / "t.csv", [("t", "vic@example.com", ["auditors"])])
    app = create_app(
        Settings.from_env(
            {},
            database_url="postgresql://nobody@127.0.0.1:1/none",
            token_file=str(tokens),
            role_groups=ROLE_GROUPS,
        )
    )
    api = ApiClient(app.test_client(), "t")
    resp = api.get("/api/v1/reviews")
    assert resp.status_code == 503
    assert "does not answer" in resp.get_json()["error"]
    assert (
        api.post("/api/v1/models/x/versions/1/approvals", {"decision": "approved"}).status_code
        == 403
    )
