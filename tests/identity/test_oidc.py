"""OIDC bearer tokens from a real Dex, sent to the inventory API: valid, expired, wrong
audience, wrong issuer, tampered, unknown key id after the IdP rotated its keys, and an IdP
that does not answer. Tokens come from Dex's password grant (users without groups) and from
its authorization-code flow (the mock connector's user, group ``authors``)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from dashboard.app import create_app
from modelgate.identity.oidc import LEEWAY_SECONDS, OIDCAuthenticator
from modelgate.settings import Settings
from tests.dashboard.openapi_check import ApiClient
from tests.fixtures.dex import (
    CLIENT_ID,
    MOCK_USER,
    OTHER_CLIENT_ID,
    OTHER_CLIENT_SECRET,
    USERS,
    Dex,
    claims_of,
    code_flow_token,
)
from tests.fixtures.tools import free_port

Factory = Callable[..., ApiClient]


@pytest.fixture
def make_api(dex: Dex, sqlite_url: str) -> Factory:
    def factory(*, issuer: str | None = None, offset: timedelta = timedelta(0)) -> ApiClient:
        app: Flask = create_app(
            Settings.from_env(
                {},
                database_url=sqlite_url,
                oidc_issuer=issuer or dex.issuer,
                oidc_audience=CLIENT_ID,
                role_groups="viewer=authors",
            ),
            clock=lambda: datetime.now(UTC) + offset,
        )
        return ApiClient(app.test_client())

    return factory


def _who(api: ApiClient, token: str) -> tuple[int, dict[str, object]]:
    resp = api.as_(token).get("/api/v1/whoami")
    return resp.status_code, resp.get_json()


def test_a_valid_token_authenticates_with_the_email_as_user(dex: Dex, make_api: Factory) -> None:
    code, who = _who(make_api(), dex.password_token(USERS[0]))
    assert code == 200
    assert who["user"] == "alice@example.com" and who["source"] == "oidc"
    assert who["role"] is None  # Dex's local users have no groups


def test_groups_from_the_token_give_roles(dex: Dex, make_api: Factory) -> None:
    token = code_flow_token(dex)
    api = make_api()
    code, who = _who(api, token)
    assert code == 200
    assert who["user"] == MOCK_USER and who["groups"] == ["authors"] and who["role"] == "viewer"
    assert api.as_(token).get("/api/v1/models").status_code == 200
    refused = api.as_(token).post("/api/v1/models/x/versions/1/approvals", {"decision": "approved"})
    assert refused.status_code == 403


def test_an_expired_token_is_401(dex: Dex, make_api: Factory) -> None:
    token = dex.password_token(USERS[1])
    lifetime = int(claims_of(token)["exp"]) - int(claims_of(token)["iat"])
    later = make_api(offset=timedelta(seconds=lifetime + LEEWAY_SECONDS + 5))
    resp = later.as_(token).get("/api/v1/whoami")
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "the token has expired"
    assert "expired" in resp.headers["WWW-Authenticate"]
    within_leeway = make_api(offset=timedelta(seconds=lifetime + LEEWAY_SECONDS - 10))
    assert _who(within_leeway, token)[0] == 200


def test_a_token_for_another_audience_is_401(dex: Dex, make_api: Factory) -> None:
    token = dex.password_token(
        USERS[0], client_id=OTHER_CLIENT_ID, client_secret=OTHER_CLIENT_SECRET
    )
    assert claims_of(token)["aud"] == OTHER_CLIENT_ID
    code, body = _who(make_api(), token)
    assert code == 401
    assert "audience" in str(body["error"]) and CLIENT_ID in str(body["error"])


def test_a_token_of_another_issuer_is_401(dex: Dex, dex_other: Dex, make_api: Factory) -> None:
    token = dex_other.password_token(USERS[0])
    code, body = _who(make_api(), token)
    assert code == 401
    assert "is not the configured OIDC issuer" in str(body["error"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_a_tampered_token_is_401(dex: Dex, make_api: Factory) -> None:
    token = dex.password_token(USERS[2])
    header, payload, signature = token.split(".")
    claims = claims_of(token)
    claims["email"] = "admin@example.com"  # promote oneself, keep the signature
    forged = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    code, body = _who(make_api(), forged)
    assert code == 401 and body["error"] == "the token's signature is invalid"
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0xFF
    broken = ".".join([header, payload, _b64(bytes(raw))])
    assert _who(make_api(), broken)[0] == 401
    unsigned = ".".join([_b64(b'{"alg":"none","typ":"JWT"}'), payload, ""])
    assert _who(make_api(), unsigned)[0] == 401


def test_keys_are_refetched_when_the_issuer_rotates_them(dex: Dex, make_api: Factory) -> None:
    api = make_api()
    before = dex.password_token(USERS[0])
    assert _who(api, before)[0] == 200  # keys fetched and cached
    old_keys = dex.key_ids()
    started = time.monotonic()
    dex.restart()  # in-memory storage: new signing keys, same issuer
    assert dex.key_ids().isdisjoint(old_keys)
    after = dex.password_token(USERS[0])
    assert claims_of(after)["iss"] == claims_of(before)["iss"]
    # the cache refetches on an unknown kid at most every 5 s (a flood of forged kids must
    # not hammer the IdP); wait that out, then the new key is fetched on demand
    time.sleep(max(0.0, 5.2 - (time.monotonic() - started)))
    code, who = _who(api, after)
    assert code == 200, who
    assert _who(api, before)[0] == 401  # the old key is gone


def test_an_unreachable_issuer_is_503_not_500(tmp_path: Path, sqlite_url: str) -> None:
    lost = Dex(workdir=tmp_path, port=free_port())
    lost.start()
    try:
        token = lost.password_token(USERS[0])
    finally:
        lost.stop()
    app = create_app(
        Settings.from_env(
            {}, database_url=sqlite_url, oidc_issuer=lost.issuer, oidc_audience=CLIENT_ID
        )
    )
    api = ApiClient(app.test_client(), token)
    resp = api.get("/api/v1/whoami")
    assert resp.status_code == 503
    assert "does not answer" in resp.get_json()["error"]


def test_a_token_that_is_not_a_jwt_is_401(make_api: Factory) -> None:
    code, body = _who(make_api(), "opaque-token")
    assert code == 401
    assert "oidc" in str(body["error"])


def test_a_token_is_valid_from_its_issue_time(dex: Dex) -> None:
    token = dex.password_token(USERS[0])
    iat = float(claims_of(token)["iat"])
    auth = OIDCAuthenticator(dex.issuer, CLIENT_ID, clock=lambda: iat)
    identity = auth.authenticate(token)
    assert identity is not None and identity.email == "alice@example.com"


def test_an_odd_issuer_in_a_token_never_breaks_the_401(sqlite_url: str) -> None:
    def b64(data: dict[str, object]) -> str:
        return _b64(json.dumps(data).encode())

    token = ".".join([b64({"alg": "RS256"}), b64({"iss": "https://é\u0000\nx"}), "c2ln"])
    app = create_app(
        Settings.from_env(
            {}, database_url=sqlite_url, oidc_issuer="https://idp.example.com", oidc_audience="a"
        )
    )
    resp = ApiClient(app.test_client(), token).get("/api/v1/whoami")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].isascii()
    assert "is not the configured OIDC issuer" in resp.get_json()["error"]
