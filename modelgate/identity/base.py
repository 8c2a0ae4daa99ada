"""Who is calling and what they may do: the identity, the roles and their permissions, the
errors, and the two seams (:class:`Authenticator`, :class:`Authorizer`).

Roles are ordered ``viewer`` < ``owner`` < ``approver`` < ``admin``; each has what the roles
before it have. A :class:`Permission` names the role it needs and, for SubjectAccessReview,
the virtual resource and verb of API group ``modelgate.dev`` it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol


class IdentityError(Exception):
    """Base of the identity errors."""


class Unauthenticated(IdentityError):
    """No usable credentials (401). The message names why, never the token.

    ``final=False`` means "not one of mine, and here is why" (an OIDC token from another
    issuer): the chain asks the next authenticator and shows the reason only when none
    accepts the token."""

    def __init__(self, reason: str, *, final: bool = True) -> None:
        super().__init__(reason)
        self.final = final


class Forbidden(IdentityError):
    """Authenticated, but not allowed (403). The message says what was missing."""


class IdentityUnavailable(IdentityError):
    """The identity provider or API server needed to decide does not answer (503)."""


class Role(IntEnum):
    viewer = 1
    owner = 2
    approver = 3
    admin = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().lower()]
        except KeyError as e:
            known = ", ".join(r.name for r in cls)
            raise ValueError(f"unknown role {name.strip()!r} (one of {known})") from e


API_GROUP = "modelgate.dev"


class Permission(Enum):
    """What an endpoint needs: (the least role, resource, verb) of ``modelgate.dev``."""

    read = (Role.viewer, "models", "get")
    list = (Role.viewer, "models", "list")
    read_approvals = (Role.viewer, "approvals", "list")
    register = (Role.owner, "models", "create")
    approve = (Role.approver, "approvals", "approve")
    exempt = (Role.approver, "exemptions", "create")
    certify = (Role.approver, "models", "approve")
    #: everything, and configuration (RBAC: every verb on every modelgate.dev resource)
    admin = (Role.admin, "*", "*")

    @property
    def role(self) -> Role:
        return self.value[0]

    @property
    def resource(self) -> str:
        return self.value[1]

    @property
    def verb(self) -> str:
        return self.value[2]

    def describe(self) -> str:
        return f"{self.verb} {self.resource}.{API_GROUP}"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    user: str
    groups: tuple[str, ...] = ()
    email: str | None = None
    #: which authenticator vouched for it: token-file, oidc, kubernetes, proxy, anonymous
    source: str = ""

    @property
    def names(self) -> frozenset[str]:
        """The user name and e-mail, lower-cased: what separation of duties matches on."""
        values = {self.user, self.email or ""}
        return frozenset(v.strip().lower() for v in values if v and v.strip())

    def is_anonymous(self) -> bool:
        return self.source == "anonymous"


ANONYMOUS = Identity(
    user="system:anonymous", groups=("system:unauthenticated",), source="anonymous"
)


class Authenticator(Protocol):
    """Turns a bearer token into an :class:`Identity`."""

    name: str

    def authenticate(self, token: str) -> Identity | None:
        """The identity behind ``token``; ``None`` when the token is not one of this
        authenticator's (the chain asks the next). Raises :class:`Unauthenticated` when it is
        one of its own but invalid (expired, bad signature, ...) and
        :class:`IdentityUnavailable` when it cannot decide now."""
        ...


class Authorizer(Protocol):
    """Decides whether an identity has a permission."""

    name: str

    def role_of(self, identity: Identity) -> Role | None:
        """The identity's highest role (``None``: no role). Informational for SubjectAccess
        review, where each permission is asked separately."""
        ...

    def allowed(self, identity: Identity, permission: Permission, name: str = "") -> bool:
        """Whether ``identity`` has ``permission`` (on the model ``name`` when given).
        Raises :class:`IdentityUnavailable` when it cannot decide now."""
        ...
