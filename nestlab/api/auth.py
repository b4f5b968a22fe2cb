"""Who is calling (bearer tokens, lab-CA client certificates) and what they may do (RBAC subset).

The Supervisor grants vSphere Namespace permissions as view/edit/admin; here that is a RoleBinding
in the namespace to the ClusterRole ``view``, ``edit`` or ``admin``. Lab administrators (group
``system:masters`` or ``nestlab:admins``) may do everything; node agents (group ``system:nodes``)
get what a kubelet needs. Anything else is refused with the RBAC authorizer's wording.
"""

from __future__ import annotations

import contextvars
import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nestlab.api import kinds
from nestlab.errors import UsageError

ADMIN_GROUPS = frozenset({"system:masters", "nestlab:admins"})
NODE_GROUP = "system:nodes"
AUTHENTICATED = "system:authenticated"

ROLE_NAMES = ("view", "edit", "admin")


def _merge(*roles: str) -> dict[str, frozenset[str]]:
    """The rules of ``roles`` over every kind's unit (a later role adds to an earlier one, as
    upstream's aggregated roles: edit includes view, admin includes edit)."""
    rules: dict[str, frozenset[str]] = {}
    for unit in kinds.ALL:
        for role in roles:
            for resource, verbs in unit.roles.get(role, {}).items():
                rules[resource] = rules.get(resource, frozenset()) | verbs
    return rules


ROLES: dict[str, dict[str, frozenset[str]]] = {
    "view": _merge("view"),
    "edit": _merge("view", "edit"),
    "admin": _merge("view", "edit", "admin"),
}
# What a node agent may do anywhere (a kubelet's rights, minus what nestlab does not serve).
_NODE_RIGHTS: dict[str, frozenset[str]] = _merge("node")


class AuthConfigError(UsageError):
    """A tokens file or client CA cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class User:
    """An authenticated caller."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        """Lab administrators may do everything."""
        return bool(self.groups & ADMIN_GROUPS)


CURRENT_USER: contextvars.ContextVar[User | None] = contextvars.ContextVar(
    "nestlab_current_user", default=None
)
"""The user a request acts as (after impersonation), set by the handlers: admission that depends on
the caller (RBAC escalation checks) reads it; None outside a request (bootstrap, tests)."""


def load_tokens(path: Path) -> dict[str, User]:
    """Read a kube-apiserver style static token file: ``token,user,uid[,"group1,group2"]``."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuthConfigError(f"cannot read tokens file {path}: {exc.strerror}") from exc
    tokens: dict[str, User] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 3 or not row[0] or not row[1]:
            raise AuthConfigError(f'{path}:{number}: expected token,user,uid[,"group1,group2"]')
        groups = frozenset(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else frozenset()
        tokens[row[0]] = User(row[1], groups | {AUTHENTICATED})
    return tokens


def user_from_peercert(peercert: Mapping[str, Any] | None) -> User | None:
    """The user of a verified client certificate: CN is the name, each O is a group."""
    if not peercert:
        return None
    names: list[str] = []
    groups: set[str] = {AUTHENTICATED}
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.add(value)
    return User(names[0], frozenset(groups)) if names else None


def bound_roles(user: User, bindings: list[dict[str, Any]]) -> set[str]:
    """The ClusterRoles granted to ``user`` by a namespace's RoleBindings."""
    roles: set[str] = set()
    for binding in bindings:
        for subject in binding.get("subjects") or []:
            kind, name = subject.get("kind"), subject.get("name")
            if (kind == "User" and name == user.name) or (kind == "Group" and name in user.groups):
                roles.add(str((binding.get("roleRef") or {}).get("name", "")))
    return roles


def allowed(user: User, verb: str, resource: str, roles: set[str]) -> bool:
    """Whether ``user`` holding namespace ``roles`` may ``verb`` the ``resource`` (``plural[/sub]``)."""
    if user.is_admin:
        return True
    if NODE_GROUP in user.groups and verb in _NODE_RIGHTS.get(resource, frozenset()):
        return True
    return any(verb in ROLES.get(role, {}).get(resource, frozenset()) for role in roles)
