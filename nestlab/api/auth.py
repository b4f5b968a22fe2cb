"""Who is calling: the user record, the static token file and lab-CA client certificates.

What a user may do is decided elsewhere (:mod:`nestlab.api.access`, from RBAC objects); this module
only names the groups that decision hard-wires: lab administrators (``system:masters`` or
``nestlab:admins``) may do everything, node agents (``system:nodes``) hold a kubelet's rules.
"""

from __future__ import annotations

import contextvars
import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nestlab.errors import UsageError

ADMIN_GROUPS = frozenset({"system:masters", "nestlab:admins"})
NODE_GROUP = "system:nodes"
AUTHENTICATED = "system:authenticated"


class AuthConfigError(UsageError):
    """A tokens file or client CA cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class User:
    """An authenticated caller."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    uid: str = ""
    """A unique id of the user, when the authenticator knows one (a ServiceAccount's uid, the
    static token file's third column, ``Impersonate-Uid``); "" otherwise, as upstream's omitempty."""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """Upstream's user.extra: e.g. ``authentication.kubernetes.io/pod-name`` of a bound token, or
    what ``Impersonate-Extra-<key>`` asked for. Not hashed (a dict): users compare with it."""

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
    """Read a kube-apiserver style static token file: ``token,user,uid[,"group1,group2"]`` (the uid
    is the user's, as upstream's tokenfile authenticator sets it)."""
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
        tokens[row[0]] = User(row[1], groups | {AUTHENTICATED}, uid=row[2])
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
