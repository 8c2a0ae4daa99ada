"""The dashboard's sign-off pages: a version's state and history, what waits for review,
and the approve / reject / revoke forms (CSRF-protected, same rules as the API); browser
sign-in through a real Dex (authorization code flow with PKCE)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dashboard.app import create_app
from modelgate.identity.tokens import write_token_file
from modelgate.inventory import signoff
from modelgate.inventory.db import Database
from modelgate.settings import Settings
from tests.fixtures.dex import CLIENT_ID, CLIENT_SECRET, MOCK_USER, REDIRECT_URI, Dex
from tests.fixtures.inventory import admit, deployment, metadata

ROLES = "viewer=auditors|authors,approver=model-risk"


@pytest.fixture
def app(sqlite_url: str, sqlite_db: Database, tmp_path: Path) -> Flask:
    admit(sqlite_db, "prod", deployment("fraud", annotations=metadata(owner="risk-ml@example.com")))
    tokens = write_token_file(
        tmp_path / "tokens.csv",
        [
            ("t-approver", "risk-officer@example.com", ["model-risk"]),
            ("t-owner", "risk-ml@example.com", ["model-risk"]),
            ("t-viewer", "vic@example.com", ["auditors"]),
        ],
    )
    app = create_app(
        Settings.from_env({}, database_url=sqlite_url, token_file=str(tokens), role_groups=ROLES)
    )
    app.testing = True
    return app


def _client(app: Flask, token: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


PAGE = "/models/fraud-detector/versions/1.0.0"
FORM = "/models/fraud-detector/versions/1.0.0/approvals"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found[1]


def test_pages_need_a_caller(app: Flask) -> None:
    anonymous = app.test_client()
    for path in ("/", "/models", PAGE, "/reviews"):
        resp = anonymous.get(path)
        assert resp.status_code == 401, path
        assert "no credentials" in resp.get_data(as_text=True)
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200


def test_the_version_page_shows_state_and_waiting_reviews(app: Flask) -> None:
    viewer = _client(app, "t-viewer")
    html = viewer.get(PAGE).get_data(as_text=True)
    assert "pending-review" in html and "modelgate approve fraud-detector 1.0.0" in html
    assert 'name="decision"' not in html  # a viewer gets no form
    reviews = viewer.get("/reviews").get_data(as_text=True)
    assert "fraud-detector" in reviews and "1.0.0" in reviews
    model = viewer.get("/models/fraud-detector").get_data(as_text=True)
    assert "Sign-off" in model and PAGE in model


def test_approve_reject_and_revoke_through_the_forms(app: Flask, sqlite_db: Database) -> None:
    approver = _client(app, "t-approver")
    html = approver.get(PAGE).get_data(as_text=True)
    token = _csrf(html)
    done = approver.post(
        FORM,
        data={
            "csrf_token": token,
            "decision": "approved",
            "reason": "validation reviewed",
            "evidence": "https://docs.example.com/v1 https://docs.example.com/v2",
        },
    )
    assert done.status_code == 303 and done.headers["Location"].endswith(PAGE)
    page = approver.get(PAGE).get_data(as_text=True)
    assert "approved by risk-officer@example.com" in page
    assert "https://docs.example.com/v2" in page
    history = signoff.approvals(sqlite_db, today=_today(), model="fraud-detector")
    assert [(a["approver"], a["evidence"]) for a in history] == [
        ("risk-officer@example.com", ["https://docs.example.com/v1", "https://docs.example.com/v2"])
    ]
    revoked = approver.post(
        f"/approvals/{history[0]['id']}/revoke",
        data={"csrf_token": token, "reason": "model drifted"},
    )
    assert revoked.status_code == 303
    rejected = approver.post(
        FORM, data={"csrf_token": token, "decision": "rejected", "reason": "drift"}
    )
    assert rejected.status_code == 303
    page = approver.get(PAGE).get_data(as_text=True)
    assert "rejected by risk-officer@example.com: drift" in page
    assert "model drifted" in page


def test_forms_without_the_csrf_token_change_nothing(app: Flask, sqlite_db: Database) -> None:
    approver = _client(app, "t-approver")
    approver.get(PAGE)
    for data in ({"decision": "approved"}, {"decision": "approved", "csrf_token": "forged"}):
        resp = approver.post(FORM, data=data)
        assert resp.status_code == 400
        assert "CSRF token" in resp.get_data(as_text=True)
    other = _client(app, "t-approver")  # another session: the first one's token is not valid
    token = _csrf(approver.get(PAGE).get_data(as_text=True))
    assert other.post(FORM, data={"csrf_token": token, "decision": "approved"}).status_code == 400
    assert signoff.approvals(sqlite_db, today=_today()) == []


def test_the_forms_apply_separation_of_duties_and_roles(app: Flask, sqlite_db: Database) -> None:
    owner = _client(app, "t-owner")
    token = _csrf(owner.get(PAGE).get_data(as_text=True))
    resp = owner.post(FORM, data={"csrf_token": token, "decision": "approved"})
    assert resp.status_code == 403
    assert "owns this model version" in resp.get_data(as_text=True)
    viewer = _client(app, "t-viewer")
    with viewer.session_transaction() as session:  # a valid token: the role must refuse
        session["modelgate.csrf"] = "viewer-session-token"
    refused = viewer.post(FORM, data={"csrf_token": "viewer-session-token", "decision": "approved"})
    assert refused.status_code == 403
    assert "needs role approver" in refused.get_data(as_text=True)
    assert signoff.approvals(sqlite_db, today=_today()) == []


def _today():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


# --- browser sign-in ----------------------------------------------------------------------


@pytest.fixture
def sso_app(dex: Dex, sqlite_url: str, sqlite_db: Database) -> Flask:
    admit(sqlite_db, "prod", deployment("fraud", annotations=metadata()))
    app = create_app(
        Settings.from_env(
            {},
            database_url=sqlite_url,
            oidc_issuer=dex.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            oidc_redirect_url=REDIRECT_URI,
            session_secret="test-session-secret-0123456789",
            session_cookie_secure=False,  # the test client speaks plain HTTP
            role_groups=ROLES,
        )
    )
    app.testing = True
    return app


def _sign_in(client: FlaskClient, dex: Dex, path: str = "/models") -> None:
    first = client.get(path)
    assert first.status_code == 302 and "/login" in first.headers["Location"]
    login = client.get(first.headers["Location"])
    assert login.status_code == 302
    authorize = login.headers["Location"]
    query = parse_qs(urlparse(authorize).query)
    assert authorize.startswith(dex.issuer + "/auth")
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [REDIRECT_URI]
    back = urlparse(dex.browser_code(authorize))
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 303, done.get_data(as_text=True)
    assert done.headers["Location"] == path


def test_browser_sign_in_with_pkce(sso_app: Flask, dex: Dex) -> None:
    client = sso_app.test_client()
    _sign_in(client, dex)
    page = client.get("/models")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert MOCK_USER in html and "fraud-detector" in html
    # the API never takes the session cookie
    assert client.get("/api/v1/models").status_code == 401


def test_the_session_cookie_is_httponly_samesite_and_secure_by_default(
    dex: Dex, sqlite_url: str
) -> None:
    app = create_app(
        Settings.from_env(
            {},
            database_url=sqlite_url,
            oidc_issuer=dex.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            session_secret="s" * 32,
        )
    )
    login = app.test_client().get("/login", base_url="https://modelgate.example.com")
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert (
        "redirect_uri=https%3A%2F%2Fmodelgate.example.com%2Fauth%2Fcallback"
        in login.headers["Location"]
    )


def test_a_callback_with_a_forged_state_is_refused(sso_app: Flask, dex: Dex) -> None:
    client = sso_app.test_client()
    client.get("/login")
    resp = client.get("/auth/callback?code=stolen&state=forged")
    assert resp.status_code == 401
    assert "sign-in failed" in resp.get_data(as_text=True)


def test_sign_out_needs_the_csrf_token(sso_app: Flask, dex: Dex) -> None:
    client = sso_app.test_client()
    _sign_in(client, dex, "/")
    html = client.get("/").get_data(as_text=True)
    assert client.post("/logout", data={}).status_code == 400
    out = client.post("/logout", data={"csrf_token": _csrf(html)})
    assert out.status_code == 303
    assert client.get("/models").status_code == 302  # signed out: back to the sign-in


def test_trusted_proxy_headers_only_from_configured_addresses(sqlite_url: str) -> None:
    app = create_app(
        Settings.from_env(
            {},
            database_url=sqlite_url,
            trusted_proxy_headers=True,
            trusted_proxies="10.1.2.3/32",
            role_groups=ROLES,
        )
    )
    headers = {"X-Forwarded-User": "vic@example.com", "X-Forwarded-Groups": "auditors"}
    trusted = app.test_client().get(
        "/models", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert trusted.status_code == 200
    forged = app.test_client().get(
        "/models", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.9"}
    )
    assert forged.status_code == 401
