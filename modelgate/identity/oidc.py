"""OIDC bearer tokens (ID tokens or JWT access tokens of ``MODELGATE_OIDC_ISSUER``).

Discovery (``{issuer}/.well-known/openid-configuration``) and the JWKS are fetched on first
use and cached for an hour; a token signed with a key id the cache does not hold refetches
them (at most every ``min_refresh_seconds``), so an IdP's key rotation needs no restart.
Signatures are checked by joserfc with asymmetric algorithms only (no ``none``, no HMAC
with a public key); ``iss`` must be the issuer, ``aud`` must hold the audience, ``exp`` and
``nbf`` are checked with :data:`LEEWAY_SECONDS` of clock skew.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from modelgate.identity.base import Identity, IdentityUnavailable, Unauthenticated

log = logging.getLogger("modelgate.identity")

LEEWAY_SECONDS = 30
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
CACHE_SECONDS = 3600.0
HTTP_TIMEOUT_SECONDS = 5.0


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS without checking anything; ``None`` when ``token`` is not
    shaped like a JWT (three base64url parts with a JSON object in the middle)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    return payload if isinstance(payload, dict) else None


class OIDCAuthenticator:
    """JWTs of one OIDC issuer."""

    name = "oidc"

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        username_claim: str = "email",
        groups_claim: str = "groups",
        clock: Callable[[], float] = time.time,
        min_refresh_seconds: float = 5.0,
        http: requests.Session | None = None,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("OIDC needs both MODELGATE_OIDC_ISSUER and MODELGATE_OIDC_AUDIENCE")
        self.issuer = issuer  # compared exactly with each token's iss, as OIDC requires
        self.audience = audience
        self.username_claim = username_claim or "email"
        self.groups_claim = groups_claim or "groups"
        self.clock = clock
        self.min_refresh_seconds = min_refresh_seconds
        self._http = http or requests.Session()
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None  # monotonic
        self._jwks_uri: str | None = None

    # -- discovery and keys ------------------------------------------------------------------

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            resp = self._http.get(url, timeout=HTTP_TIMEOUT_SECONDS)
        except requests.RequestException as e:
            raise IdentityUnavailable(
                f"the OIDC issuer {self.issuer} does not answer ({what}): {type(e).__name__}"
            ) from e
        if resp.status_code != 200:
            raise IdentityUnavailable(
                f"the OIDC issuer {self.issuer} answered HTTP {resp.status_code} for its {what}"
            )
        try:
            data = resp.json()
        except ValueError as e:
            raise IdentityUnavailable(f"the OIDC issuer's {what} is not JSON") from e
        if not isinstance(data, dict):
            raise IdentityUnavailable(f"the OIDC issuer's {what} is not a JSON object")
        return data

    def _fetch(self) -> KeySet:
        discovery = self._get_json(
            self.issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document"
        )
        if discovery.get("issuer") != self.issuer:
            raise IdentityUnavailable(
                f"the discovery document names issuer {discovery.get('issuer')!r}, "
                f"not the configured {self.issuer!r}"
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise IdentityUnavailable("the OIDC discovery document has no jwks_uri")
        jwks = self._get_json(jwks_uri, "JWKS")
        try:
            keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as e:
            raise IdentityUnavailable(f"the OIDC issuer's JWKS cannot be read: {e}") from e
        self._jwks_uri = jwks_uri
        return keys

    def keys(self, *, refresh: bool = False) -> KeySet:
        """The cached key set; refetched when older than an hour, or on ``refresh`` (at most
        every ``min_refresh_seconds``)."""
        with self._lock:
            now = time.monotonic()
            age = None if self._fetched_at is None else now - self._fetched_at
            stale = age is None or age > CACHE_SECONDS
            may_refresh = age is None or age >= self.min_refresh_seconds
            if self._keys is None or stale or (refresh and may_refresh):
                self._keys = self._fetch()
                self._fetched_at = now
                log.info("OIDC keys of %s loaded", self.issuer)
            return self._keys

    # -- tokens --------------------------------------------------------------------------

    def authenticate(self, token: str) -> Identity | None:
        claims = unverified_claims(token)
        if claims is None:
            return None  # not a JWT: a static or opaque token
        if claims.get("iss") != self.issuer:
            raise Unauthenticated(
                f"the token's issuer {str(claims.get('iss'))[:200]!r} is not the configured "
                f"OIDC issuer",
                final=False,
            )
        verified = self._verify(token)
        self._check_claims(verified)
        return self._identity(verified)

    def _verify(self, token: str) -> Mapping[str, Any]:
        try:
            try:
                decoded = jwt.decode(token, self.keys(), algorithms=ALGORITHMS)
            except InvalidKeyIdError:
                # a key the cache does not hold: the IdP may have rotated its keys
                decoded = jwt.decode(token, self.keys(refresh=True), algorithms=ALGORITHMS)
        except InvalidKeyIdError as e:
            raise Unauthenticated(
                "the token is signed with a key the issuer does not publish"
            ) from e
        except BadSignatureError as e:
            raise Unauthenticated("the token's signature is invalid") from e
        except JoseError as e:
            raise Unauthenticated(f"the token cannot be verified ({e.error})") from e
        except ValueError as e:
            raise Unauthenticated("the token cannot be verified (malformed)") from e
        return decoded.claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        now = self.clock()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise Unauthenticated("the token has no expiry (exp)")
        if now > exp + LEEWAY_SECONDS:
            raise Unauthenticated("the token has expired")
        nbf = claims.get("nbf")
        if (
            isinstance(nbf, int | float)
            and not isinstance(nbf, bool)
            and now < nbf - LEEWAY_SECONDS
        ):
            raise Unauthenticated("the token is not valid yet (nbf)")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.audience not in audiences:
            raise Unauthenticated(
                f"the token's audience is not {self.audience!r} (MODELGATE_OIDC_AUDIENCE)"
            )

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        user = claims.get(self.username_claim)
        if not isinstance(user, str) or not user.strip():
            raise Unauthenticated(f"the token has no {self.username_claim!r} claim")
        if self.username_claim == "email" and claims.get("email_verified") is False:
            raise Unauthenticated("the token's e-mail address is not verified")
        raw_groups = claims.get(self.groups_claim)
        if isinstance(raw_groups, str):
            groups: tuple[str, ...] = (raw_groups,)
        elif isinstance(raw_groups, list):
            groups = tuple(str(g) for g in raw_groups if isinstance(g, str))
        else:
            groups = ()
        email = claims.get("email")
        return Identity(
            user=user.strip(),
            groups=groups,
            email=email.strip() if isinstance(email, str) and email.strip() else None,
            source=self.name,
        )
