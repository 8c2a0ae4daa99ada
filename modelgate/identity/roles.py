"""Roles from groups (``MODELGATE_ROLE_GROUPS``): ``role=group|group,role=group``, e.g.
``viewer=ml-readers|auditors,owner=ml-eng,approver=model-risk,admin=platform``. A caller
has the highest role any of their groups maps to; with no mapping nobody has a role."""

from __future__ import annotations

from modelgate.identity.base import Identity, Permission, Role


class RoleGroupsError(ValueError):
    """``MODELGATE_ROLE_GROUPS`` cannot be read."""


def parse_role_groups(text: str) -> dict[str, Role]:
    """group -> the highest role it is mapped to."""
    mapping: dict[str, Role] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        role_name, sep, groups = part.partition("=")
        if not sep:
            raise RoleGroupsError(
                f"MODELGATE_ROLE_GROUPS: {part.strip()!r} is not role=group|group"
            )
        try:
            role = Role.parse(role_name)
        except ValueError as e:
            raise RoleGroupsError(f"MODELGATE_ROLE_GROUPS: {e}") from e
        for group in groups.split("|"):
            if group.strip():
                mapping[group.strip()] = max(role, mapping.get(group.strip(), role))
    return mapping


class GroupRoleAuthorizer:
    name = "role-groups"

    def __init__(self, mapping: dict[str, Role], anonymous_role: Role | None = None) -> None:
        self.mapping = mapping
        self.anonymous_role = anonymous_role

    def role_of(self, identity: Identity) -> Role | None:
        if identity.is_anonymous():
            return self.anonymous_role
        roles = [self.mapping[g] for g in identity.groups if g in self.mapping]
        return max(roles) if roles else None

    def allowed(self, identity: Identity, permission: Permission, name: str = "") -> bool:
        role = self.role_of(identity)
        return role is not None and role >= permission.role
