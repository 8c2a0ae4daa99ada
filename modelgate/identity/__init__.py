"""Identity and authorisation for every authenticated endpoint (the inventory API, the
dashboard, the approval commands' server side).

:func:`access_for` builds, from the settings, one :class:`Access`: the authenticator chain
(static token file, OIDC, Kubernetes TokenReview — in that order) and the authorizer (roles
from ``MODELGATE_ROLE_GROUPS``, or SubjectAccessReview with ``MODELGATE_KUBE_AUTHZ``). Front
ends call :meth:`Access.authenticate` with the ``Authorization`` header and
:meth:`Access.require` with the permission an endpoint needs; they turn
:class:`Unauthenticated` into 401, :class:`Forbidden` into 403 and
:class:`IdentityUnavailable` into 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from modelgate.identity.base import (
    ANONYMOUS,
    API_GROUP,
    Authenticator,
    Authorizer,
    Forbidden,
    Identity,
    IdentityError,
    IdentityUnavailable,
    Permission,
    Role,
    Unauthenticated,
)
from modelgate.settings import Settings, SettingsError

__all__ = [
    "ANONYMOUS",
    "API_GROUP",
    "Access",
    "AuthenticatorChain",
    "Forbidden",
    "Identity",
    "IdentityError",
    "IdentityUnavailable",
    "Permission",
    "Role",
    "Unauthenticated",
    "access_for",
]


class AuthenticatorChain:
    """Asks each authenticator in turn; the first that vouches for the token wins."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self.authenticators = list(authenticators)

    def authenticate(self, token: str) -> Identity:
        if not self.authenticators:
            raise Unauthenticated(
                "no authenticator is configured (set MODELGATE_TOKEN_FILE, "
                "MODELGATE_OIDC_ISSUER or MODELGATE_KUBE_AUTH)"
            )
        reasons: list[str] = []
        unavailable: IdentityUnavailable | None = None
        for authenticator in self.authenticators:
            try:
                identity = authenticator.authenticate(token)
            except Unauthenticated as e:
                if e.final:
                    raise
                reasons.append(str(e))
                continue
            except IdentityUnavailable as e:
                unavailable = e
                continue
            if identity is not None:
                return identity
        if unavailable is not None:
            raise unavailable
        names = ", ".join(a.name for a in self.authenticators)
        raise Unauthenticated("; ".join(reasons) or f"the token is not valid ({names})")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer TOKEN`` header."""
    if not authorization or not authorization.strip():
        raise Unauthenticated("no credentials: send Authorization: Bearer TOKEN")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header is not of the form 'Bearer TOKEN'")
    return token.strip()


class Access:
    """Authentication plus authorisation, as configured."""

    def __init__(
        self,
        chain: AuthenticatorChain,
        authorizer: Authorizer,
        *,
        allow_anonymous: bool = False,
    ) -> None:
        self.chain = chain
        self.authorizer = authorizer
        self.allow_anonymous = allow_anonymous

    def authenticate(self, authorization: str | None) -> Identity:
        """The caller of a request with this ``Authorization`` header. Without one, the
        anonymous identity when anonymous access is enabled."""
        if self.allow_anonymous and not (authorization or "").strip():
            return ANONYMOUS
        return self.chain.authenticate(bearer_token(authorization))

    def role_of(self, identity: Identity) -> Role | None:
        if identity.is_anonymous():
            return Role.viewer if self.allow_anonymous else None
        return self.authorizer.role_of(identity)

    def allowed(self, identity: Identity, permission: Permission, name: str = "") -> bool:
        if identity.is_anonymous():
            return self.allow_anonymous and permission.role == Role.viewer
        return self.authorizer.allowed(identity, permission, name)

    def require(self, identity: Identity, permission: Permission, name: str = "") -> None:
        """Raise :class:`Forbidden` unless ``identity`` has ``permission``."""
        if self.allowed(identity, permission, name):
            return
        who = identity.user
        if self.authorizer.name == "kubernetes" and not identity.is_anonymous():
            raise Forbidden(
                f"{who} may not {permission.describe()}: no RBAC rule allows it "
                f"(bind a ClusterRole of the modelgate chart, e.g. modelgate-"
                f"{permission.role.name})"
            )
        role = self.role_of(identity)
        has = f"role {role.name}" if role is not None else "no role"
        raise Forbidden(
            f"{who} may not {permission.describe()}: that needs role {permission.role.name} "
            f"and {who} has {has} (roles come from MODELGATE_ROLE_GROUPS)"
        )


def access_for(settings: Settings, *, clock: Callable[[], float] | None = None) -> Access:
    """The :class:`Access` the settings describe (``SettingsError`` for settings that cannot
    be used). Nothing connects until first use."""
    try:
        return _access_for(settings, clock)
    except (ValueError, ImportError) as e:
        if isinstance(e, SettingsError):
            raise
        raise SettingsError(str(e)) from e


def _access_for(settings: Settings, clock: Callable[[], float] | None) -> Access:
    authenticators: list[Authenticator] = []
    if settings.token_file is not None:
        from modelgate.identity.tokens import TokenFileAuthenticator

        authenticators.append(TokenFileAuthenticator(settings.token_file))
    if settings.oidc_issuer:
        from modelgate.identity.oidc import OIDCAuthenticator

        authenticators.append(
            OIDCAuthenticator(
                settings.oidc_issuer,
                settings.oidc_audience or settings.oidc_client_id,
                username_claim=settings.oidc_username_claim,
                groups_claim=settings.oidc_groups_claim,
                clock=clock or time.time,
            )
        )
    if settings.kube_auth:
        from modelgate.identity.kubernetes import TokenReviewAuthenticator

        authenticators.append(TokenReviewAuthenticator(settings.kube_config))
    authorizer: Authorizer
    if settings.kube_authz:
        from modelgate.identity.kubernetes import SubjectAccessAuthorizer

        authorizer = SubjectAccessAuthorizer(settings.kube_config)
    else:
        from modelgate.identity.roles import GroupRoleAuthorizer, parse_role_groups

        authorizer = GroupRoleAuthorizer(parse_role_groups(settings.role_groups))
    return Access(
        AuthenticatorChain(authenticators), authorizer, allow_anonymous=settings.allow_anonymous
    )
