"""The static token file: CSV lines token,user,"groups", re-read when it changes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from modelgate.identity import (
    Access,
    AuthenticatorChain,
    Forbidden,
    Identity,
    Permission,
    Role,
    Unauthenticated,
    access_for,
)
from modelgate.identity.roles import GroupRoleAuthorizer, RoleGroupsError, parse_role_groups
from modelgate.identity.tokens import TokenFileAuthenticator, TokenFileError, parse_token_file
from modelgate.settings import Settings


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_lines_give_user_and_groups(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "t.csv",
        '# comment\n\nabc123,alice@example.com,"model-risk,auditors"\nxyz,ci-bot\n',
    )
    auth = TokenFileAuthenticator(f)
    alice = auth.authenticate("abc123")
    assert alice == Identity(
        user="alice@example.com",
        groups=("model-risk", "auditors"),
        email="alice@example.com",
        source="token-file",
    )
    bot = auth.authenticate("xyz")
    assert bot is not None and bot.user == "ci-bot" and bot.groups == () and bot.email is None
    assert auth.authenticate("abc12") is None  # a prefix is not the token
    assert auth.authenticate("nope") is None


def test_the_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    f = _write(tmp_path / "t.csv", "old-token,alice@example.com,viewers\n")
    auth = TokenFileAuthenticator(f)
    assert auth.authenticate("old-token") is not None
    _write(f, "new-token,alice@example.com,viewers,approvers-extra\n")
    stamp = time.time() + 5
    os.utime(f, (stamp, stamp))  # a different mtime even on coarse file systems
    assert auth.authenticate("old-token") is None  # revoked by editing the file
    fresh = auth.authenticate("new-token")
    assert fresh is not None and fresh.groups == ("viewers", "approvers-extra")


def test_a_broken_edit_keeps_the_last_good_tokens(tmp_path: Path) -> None:
    f = _write(tmp_path / "t.csv", "tok,alice@example.com\n")
    auth = TokenFileAuthenticator(f)
    assert auth.authenticate("tok") is not None
    _write(f, "only-a-token-no-user\n")
    stamp = time.time() + 5
    os.utime(f, (stamp, stamp))
    assert auth.authenticate("tok") is not None


def test_a_missing_file_accepts_nothing(tmp_path: Path) -> None:
    assert TokenFileAuthenticator(tmp_path / "absent.csv").authenticate("x") is None


def test_malformed_line_is_named_without_the_token() -> None:
    with pytest.raises(TokenFileError) as e:
        parse_token_file("s3cr3t-token-value\n", "tokens.csv")
    assert "tokens.csv line 1" in str(e.value)
    assert "s3cr3t" not in str(e.value)


def test_unknown_token_is_401_naming_the_authenticators(tmp_path: Path) -> None:
    chain = AuthenticatorChain([TokenFileAuthenticator(_write(tmp_path / "t.csv", "a,b\n"))])
    with pytest.raises(Unauthenticated) as e:
        chain.authenticate("wrong-token-value")
    assert "token-file" in str(e.value)
    assert "wrong-token-value" not in str(e.value)


def test_no_authenticator_configured_is_a_clear_401() -> None:
    with pytest.raises(Unauthenticated, match="no authenticator is configured"):
        AuthenticatorChain([]).authenticate("x")


def test_roles_from_groups_are_ordered() -> None:
    mapping = parse_role_groups("viewer=ml-readers|auditors,owner=ml-eng,approver=model-risk")
    authz = GroupRoleAuthorizer(mapping)
    viewer = Identity("v", ("auditors",))
    owner = Identity("o", ("ml-eng", "auditors"))
    approver = Identity("a", ("model-risk",))
    assert authz.role_of(viewer) == Role.viewer
    assert authz.role_of(owner) == Role.owner  # the highest of the groups
    assert authz.role_of(Identity("x", ("other",))) is None
    assert authz.allowed(viewer, Permission.read)
    assert not authz.allowed(viewer, Permission.register)
    assert authz.allowed(owner, Permission.register)
    assert not authz.allowed(owner, Permission.approve)
    assert authz.allowed(approver, Permission.approve) and authz.allowed(approver, Permission.read)


@pytest.mark.parametrize("bad", ["viewer", "boss=ml", "viewer=a,owner"])
def test_bad_role_groups_are_refused(bad: str) -> None:
    with pytest.raises(RoleGroupsError):
        parse_role_groups(bad)


def test_forbidden_names_the_missing_role(tmp_path: Path) -> None:
    f = _write(tmp_path / "t.csv", 'tok,bob@example.com,"ml-eng"\n')
    access = access_for(
        Settings.from_env({}, token_file=str(f), role_groups="owner=ml-eng,approver=model-risk")
    )
    bob = access.authenticate("Bearer tok")
    with pytest.raises(Forbidden) as e:
        access.require(bob, Permission.approve)
    assert "needs role approver" in str(e.value) and "has role owner" in str(e.value)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no credentials"),
        ("", "no credentials"),
        ("Basic dXNlcjpwYXNz", "Bearer TOKEN"),
        ("Bearer ", "Bearer TOKEN"),
    ],
)
def test_missing_or_odd_headers_are_unauthenticated(header: str | None, reason: str) -> None:
    access = Access(AuthenticatorChain([]), GroupRoleAuthorizer({}))
    with pytest.raises(Unauthenticated, match=reason):
        access.authenticate(header)


def test_anonymous_only_when_enabled_and_only_reads() -> None:
    closed = Access(AuthenticatorChain([]), GroupRoleAuthorizer({}))
    with pytest.raises(Unauthenticated):
        closed.authenticate(None)
    open_ = Access(AuthenticatorChain([]), GroupRoleAuthorizer({}), allow_anonymous=True)
    anonymous = open_.authenticate(None)
    assert anonymous.is_anonymous()
    assert open_.allowed(anonymous, Permission.read)
    assert not open_.allowed(anonymous, Permission.register)
    assert not open_.allowed(anonymous, Permission.approve)
