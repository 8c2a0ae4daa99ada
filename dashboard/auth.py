"""Who is using the dashboard and the API, and the browser sign-in.

Every request except ``/healthz``, ``/readyz``, the static files, the OpenAPI document and
the sign-in routes needs an identity, found in this order:

1. an authenticating proxy's headers (``X-Forwarded-User``, ``X-Forwarded-Email``,
   ``X-Forwarded-Groups``), only with ``MODELGATE_TRUSTED_PROXY_HEADERS=true`` and only from
   the addresses in ``MODELGATE_TRUSTED_PROXIES``;
2. ``Authorization: Bearer TOKEN`` (the authenticator chain of :mod:`modelgate.identity`);
3. for pages, the browser session made by the sign-in (OIDC authorization code flow with
   PKCE at ``MODELGATE_OIDC_ISSUER``, via Authlib; the session cookie is signed with
   ``MODELGATE_SESSION_SECRET``, HttpOnly, SameSite=Lax and Secure unless
   ``MODELGATE_SESSION_COOKIE_SECURE=false``);
4. the anonymous viewer, only with ``MODELGATE_ALLOW_ANONYMOUS=true``.

The API never reads the session cookie, so cross-site requests cannot use it; the pages'
forms carry a per-session CSRF token (:func:`csrf_token`, :func:`check_csrf`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, request, session

from modelgate.identity import Access, Identity, Unauthenticated
from modelgate.settings import Settings, SettingsError

log = logging.getLogger("modelgate.dashboard")

SESSION_KEY = "modelgate.identity"
CSRF_KEY = "modelgate.csrf"
NEXT_KEY = "modelgate.next"
#: a browser session lasts at most this long (and never beyond the ID token's expiry + this)
SESSION_SECONDS = 8 * 3600
PROXY_USER = "X-Forwarded-User"
PROXY_EMAIL = "X-Forwarded-Email"
PROXY_GROUPS = "X-Forwarded-Groups"


class CSRFError(Exception):
    """A form was posted without the session's CSRF token."""


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError as e:
            raise SettingsError(
                f"MODELGATE_TRUSTED_PROXIES: {part.strip()!r} is not an address or network"
            ) from e
    return networks


@dataclass
class BrowserSignIn:
    """The OIDC client of the dashboard (authorization code + PKCE, Authlib)."""

    client: Any
    username_claim: str
    groups_claim: str
    redirect_url: str


class DashboardAuth:
    def __init__(self, app: Flask, settings: Settings, access: Access) -> None:
        self.settings = settings
        self.access = access
        self.proxies = parse_networks(settings.trusted_proxies)
        if settings.trusted_proxy_headers and not self.proxies:
            raise SettingsError(
                "MODELGATE_TRUSTED_PROXY_HEADERS=true needs MODELGATE_TRUSTED_PROXIES (the "
                "addresses of the authenticating proxy)"
            )
        secret = settings.session_secret
        if not secret:
            secret = secrets.token_hex(32)
            if settings.oidc_client_id:
                log.warning(
                    "MODELGATE_SESSION_SECRET is not set: sessions end when this process "
                    "restarts and are not shared between workers"
                )
        app.config.update(
            SECRET_KEY=secret,
            SESSION_COOKIE_NAME="modelgate_session",
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=settings.session_cookie_secure,
            PERMANENT_SESSION_LIFETIME=SESSION_SECONDS,
        )
        self.sign_in: BrowserSignIn | None = None
        if settings.oidc_client_id:
            if not settings.oidc_issuer:
                raise SettingsError("MODELGATE_OIDC_CLIENT_ID needs MODELGATE_OIDC_ISSUER")
            from authlib.integrations.flask_client import OAuth

            oauth = OAuth(app)
            client = oauth.register(
                "modelgate",
                client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret or None,
                server_metadata_url=settings.oidc_issuer.rstrip("/")
                + "/.well-known/openid-configuration",
                client_kwargs={
                    "scope": "openid email profile groups",
                    "code_challenge_method": "S256",
                    "timeout": 10,
                },
            )
            self.sign_in = BrowserSignIn(
                client=client,
                username_claim=settings.oidc_username_claim or "email",
                groups_claim=settings.oidc_groups_claim or "groups",
                redirect_url=settings.oidc_redirect_url,
            )

    # -- identity ----------------------------------------------------------------------

    def _from_proxy(self) -> Identity | None:
        if not self.settings.trusted_proxy_headers:
            return None
        user = (request.headers.get(PROXY_USER) or "").strip()
        if not user:
            return None
        try:
            remote = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return None
        if not any(remote in net for net in self.proxies):
            log.warning("ignored %s from untrusted address %s", PROXY_USER, request.remote_addr)
            return None
        email = (request.headers.get(PROXY_EMAIL) or "").strip() or None
        groups = tuple(
            g.strip() for g in (request.headers.get(PROXY_GROUPS) or "").split(",") if g.strip()
        )
        return Identity(user=user, groups=groups, email=email, source="proxy")

    def _from_session(self) -> Identity | None:
        data = session.get(SESSION_KEY)
        if not isinstance(data, Mapping):
            return None
        if float(data.get("expires") or 0) < time.time():
            session.pop(SESSION_KEY, None)
            return None
        return Identity(
            user=str(data.get("user") or ""),
            groups=tuple(str(g) for g in data.get("groups") or ()),
            email=str(data["email"]) if data.get("email") else None,
            source="session",
        )

    def identify(self, *, api: bool) -> Identity:
        """The caller of the current request (raises :class:`Unauthenticated`)."""
        proxied = self._from_proxy()
        if proxied is not None:
            return proxied
        header = request.headers.get("Authorization")
        if header or api:
            return self.access.authenticate(header)
        signed_in = self._from_session()
        if signed_in is not None:
            return signed_in
        return self.access.authenticate(None)

    # -- browser sign-in ---------------------------------------------------------------

    def redirect_uri(self) -> str:
        assert self.sign_in is not None
        return self.sign_in.redirect_url or request.host_url.rstrip("/") + "/auth/callback"

    def begin(self, next_path: str) -> Any:
        assert self.sign_in is not None
        local = next_path.startswith("/") and not next_path.startswith("//")
        session[NEXT_KEY] = next_path if local else "/"
        return self.sign_in.client.authorize_redirect(self.redirect_uri())

    def finish(self) -> str:
        """Complete the sign-in (the IdP redirected back); returns where to go next."""
        assert self.sign_in is not None
        from authlib.integrations.base_client.errors import OAuthError

        try:
            token = self.sign_in.client.authorize_access_token()
        except OAuthError as e:
            raise Unauthenticated(f"sign-in failed: {e.error}") from e
        except Exception as e:  # the IdP does not answer, a bad ID token, ...
            raise Unauthenticated(f"sign-in failed: {type(e).__name__}") from e
        claims: Mapping[str, Any] = token.get("userinfo") or {}
        user = claims.get(self.sign_in.username_claim)
        if not isinstance(user, str) or not user.strip():
            raise Unauthenticated(f"the ID token has no {self.sign_in.username_claim!r} claim")
        if self.sign_in.username_claim == "email" and claims.get("email_verified") is False:
            raise Unauthenticated("the ID token's e-mail address is not verified")
        raw_groups = claims.get(self.sign_in.groups_claim)
        groups = (
            [raw_groups]
            if isinstance(raw_groups, str)
            else [g for g in raw_groups if isinstance(g, str)]
            if isinstance(raw_groups, list)
            else []
        )
        expires = min(
            float(claims.get("exp") or 0) + SESSION_SECONDS, time.time() + SESSION_SECONDS
        )
        next_path = str(session.get(NEXT_KEY) or "/")
        session.clear()  # a new session for the signed-in user (no fixation)
        session.permanent = True
        session[SESSION_KEY] = {
            "user": user.strip(),
            "email": claims.get("email") if isinstance(claims.get("email"), str) else None,
            "groups": groups,
            "expires": expires,
        }
        return next_path

    def sign_out(self) -> None:
        session.clear()


# --- CSRF -------------------------------------------------------------------------------------


def csrf_token() -> str:
    """The session's CSRF token (made on first use) for a form's hidden field."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def check_csrf() -> None:
    expected = session.get(CSRF_KEY)
    given = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(expected, given):
        raise CSRFError("the form's CSRF token is missing or does not match this session")
