"""User impersonation (``kubectl --as``, ``--as-group``): acting as someone else, when allowed to.

An administrator checking what alice may do runs ``kubectl auth can-i create pods -n team-a
--as=alice``; kubectl sends ``Impersonate-User``, ``Impersonate-Group`` (repeatable),
``Impersonate-Uid`` and ``Impersonate-Extra-<key>`` headers. As upstream's impersonation filter:
the caller needs the verb ``impersonate`` on ``users`` (or ``serviceaccounts`` in the account's
namespace), ``groups``, ``uids`` and ``userextras/<key>``; the request then runs as the
impersonated user, who gets only the groups asked for (a service account: its fixed groups) plus
``system:authenticated``. The parsing is pure; :func:`effective_user` asks the authorizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from nestlab.api import access, auth, rbacrules, status
from nestlab.api.rbacrules import Attributes

USER = "Impersonate-User"
GROUP = "Impersonate-Group"
UID = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass(frozen=True)
class Asked:
    """What the impersonation headers ask for."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def parse(values: Mapping[str, Sequence[str]]) -> Asked | None:
    """The impersonation a request asks for (None: none); ``values`` maps each header name present,
    lower-cased, to all its values. 400 for groups, uid or extras without a user (upstream refuses
    them too)."""
    user = next(iter(values.get(USER.lower(), ())), "")
    groups = tuple(g for g in values.get(GROUP.lower(), ()) if g)
    uid = next(iter(values.get(UID.lower(), ())), "")
    extra = {
        unquote(name[len(EXTRA_PREFIX) :]).lower(): tuple(found)
        for name, found in values.items()
        if name.startswith(EXTRA_PREFIX)
    }
    if not user:
        if groups or uid or extra:
            asked = [f"{GROUP}: {g}" for g in groups] + ([f"{UID}: {uid}"] if uid else [])
            asked += [f"Impersonate-Extra-{key}" for key in extra]
            raise status.bad_request(f"requested [{', '.join(asked)}] without impersonating a user")
        return None
    return Asked(user, groups, uid, extra)


def _service_account(name: str) -> tuple[str, str] | None:
    """(namespace, name) of ``system:serviceaccount:<ns>:<name>``; None for other users."""
    if not name.startswith(rbacrules.SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, account = name.removeprefix(rbacrules.SERVICE_ACCOUNT_PREFIX).partition(":")
    return (namespace, account) if namespace and account and ":" not in account else None


def checks(asked: Asked) -> list[Attributes]:
    """What the caller must be allowed, one ``impersonate`` per thing asked (upstream order)."""
    account = _service_account(asked.user)
    if account is not None:
        wanted = [Attributes("impersonate", "", "serviceaccounts", name=account[1], namespace=account[0])]
    else:
        wanted = [Attributes("impersonate", "", "users", name=asked.user)]
    wanted += [Attributes("impersonate", "", "groups", name=group) for group in asked.groups]
    if asked.uid:
        wanted.append(Attributes("impersonate", AUTHENTICATION_GROUP, "uids", name=asked.uid))
    wanted += [
        Attributes("impersonate", AUTHENTICATION_GROUP, "userextras", subresource=key, name=value)
        for key, found in sorted(asked.extra.items())
        for value in found
    ]
    return wanted


def impersonated(asked: Asked) -> auth.User:
    """The user the request runs as: the groups asked for (a service account without groups asked:
    its own), plus ``system:authenticated``; the uid and extras asked for, as upstream carries them
    (audit's ``impersonatedUser``, SubjectAccessReview webhooks, ``kubectl auth whoami``)."""
    groups = set(asked.groups)
    account = _service_account(asked.user)
    if account is not None and not asked.groups:
        groups |= {"system:serviceaccounts", f"system:serviceaccounts:{account[0]}"}
    if asked.user == "system:anonymous":
        groups.add("system:unauthenticated")
    else:
        groups.add(auth.AUTHENTICATED)
    return auth.User(asked.user, frozenset(groups), uid=asked.uid, extra=dict(asked.extra))


async def effective_user(authorizer: access.Authorizer, caller: auth.User, asked: Asked) -> auth.User:
    """The impersonated user, once ``caller`` is allowed each part; else the upstream 403
    (``users "alice" is forbidden: User "bob" cannot impersonate resource "users" ...``)."""
    for attrs in checks(asked):
        await authorizer.check_attrs(caller, attrs)
    return impersonated(asked)
