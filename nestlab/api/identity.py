"""The lab identity store: the users of the Token Exchange Service, kept in etcd by the API servers.

vSphere keeps its SSO users in the SSO domain on the control plane; nestlab keeps them under
``/nestlab/identity/users/<name>`` in the same etcd as every object, so every API server (behind
the VIP) sees the same users and a removal is seen by all of them at once. Only the API server
reads or writes these keys (clients go through ``/nestlab/v1/users``).

Passwords are stored as argon2id hashes (argon2-cffi, its RFC 9106 low-memory profile); hashing
is deliberately slow, so it runs in a worker thread, at most :data:`_HASHING_AT_ONCE` at a time,
never on the event loop. The password policy (:func:`password_problem`) and the name rules
(:func:`name_problem`) are pure functions, tested without etcd.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from nestlab.api import status
from nestlab.api.etcd import EtcdClient, EtcdError

PREFIX = "/nestlab/identity/users/"
GROUP = "identity.nestlab.dev"
"""The API group identity routes are authorized and reported under (``users.identity.nestlab.dev``)."""
RESOURCE = "users"
MIN_PASSWORD = 8  # characters; NIST SP 800-63B's minimum for a user-chosen secret
_MAX_NAME = 253  # a DNS subdomain's length: names end up in file names and URL paths
_HASHING_AT_ONCE = 2  # one per core on the lab's 2-core machines: each hash holds 64 MiB for ~50 ms
_UPDATE_ATTEMPTS = 5  # compare-and-swap retries against concurrent writers of one user

# User names as Kubernetes takes them (any string) narrowed to what is safe in a URL path, an etcd
# key and a file name: vSphere SSO names such as administrator@vsphere.local fit.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
# Group names also allow ':' (nestlab:admins, system:masters).
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")

# The most used passwords of 8 characters or more (public breach-corpus top lists) and the lab
# world's defaults (VMware's VMware1!); compared case-insensitively.
WEAK_PASSWORDS = frozenset(
    {
        "password", "password1", "password12", "password123", "password!", "passw0rd", "passw0rd!",
        "p@ssw0rd", "p@ssword", "12345678", "123456789", "1234567890", "0123456789", "87654321",
        "11111111", "00000000", "88888888", "12341234", "11223344", "qwertyui", "qwertyuiop",
        "qwerty123", "1q2w3e4r", "1qaz2wsx", "zaq12wsx", "asdfghjk", "asdfasdf", "iloveyou",
        "iloveyou1", "sunshine", "princess", "football", "baseball", "welcome1", "welcome123",
        "abc12345", "abcd1234", "aa123456", "letmein1", "trustno1", "superman", "starwars",
        "whatever", "changeme", "changeit", "administrator", "admin123", "admin1234", "administrator1",
        "vmware1!", "vmware123", "kubernetes", "nestlab1", "nestlab123", "secret123", "computer",
        "internet", "monkey123", "dragon123", "master123", "q1w2e3r4", "q1w2e3r4t5", "qazwsxedc",
    }
)  # fmt: skip


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a user name, or None."""
    if not name:
        return "a user name is required"
    if len(name) > _MAX_NAME:
        return f"must be no more than {_MAX_NAME} characters"
    if not _NAME.match(name):
        return "must start with a letter or digit and hold only letters, digits, '.', '_', '@' and '-'"
    return None


def group_problem(group: str) -> str | None:
    """What is wrong with ``group`` as a group name, or None."""
    if not group or len(group) > _MAX_NAME or not _GROUP.match(group):
        return (
            "must start with a letter or digit and hold only letters, digits, "
            f"'.', '_', '@', ':' and '-' (at most {_MAX_NAME})"
        )
    if group == "system:authenticated":
        return "system:authenticated is given to every user who logs in; do not list it"
    return None


def password_problem(name: str, password: str) -> str | None:
    """What is wrong with ``password`` for user ``name`` (empty, short, the name, well known), or None;
    worded to follow "password" (``password: is empty``)."""
    if not password:
        return "is empty"
    if len(password) < MIN_PASSWORD:
        return f"must have at least {MIN_PASSWORD} characters"
    if password.casefold() == name.casefold():
        return "must not be the user name"
    if password.casefold() in WEAK_PASSWORDS:
        return "is a well-known weak password; choose another"
    return None


@dataclass(frozen=True)
class StoredUser:
    """One user as stored in etcd."""

    name: str
    groups: tuple[str, ...]
    password_hash: str
    """argon2id, in the PHC string format (``$argon2id$v=19$m=...``)."""
    created_at: str
    """RFC 3339 UTC."""
    not_before: int
    """Epoch seconds: tokens issued before this instant are revoked (password change, revocation)."""

    def to_json(self) -> bytes:
        """The etcd value."""
        return json.dumps(
            {
                "name": self.name,
                "groups": list(self.groups),
                "passwordHash": self.password_hash,
                "createdAt": self.created_at,
                "notBefore": self.not_before,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> StoredUser:
        """Parse an etcd value (ValueError, TypeError or KeyError when it is not one of ours)."""
        data: Any = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("a stored user is a JSON object")
        return cls(
            name=str(data["name"]),
            groups=tuple(str(g) for g in data.get("groups") or ()),
            password_hash=str(data["passwordHash"]),
            created_at=str(data.get("createdAt", "")),
            not_before=int(data.get("notBefore", 0)),
        )

    def public(self) -> dict[str, Any]:
        """What the API answers about a user: never the hash."""
        return {
            "kind": "User",
            "apiVersion": f"{GROUP}/v1",
            "name": self.name,
            "groups": list(self.groups),
            "createdAt": self.created_at,
            "notBefore": rfc3339(self.not_before),
        }


def rfc3339(epoch: float) -> str:
    """``2026-12-05T23:10:00Z``."""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def revocation_time(now: float) -> int:
    """The notBefore that revokes every token issued up to ``now`` (tokens carry whole seconds:
    the next whole second, so a token issued earlier in this second is revoked too)."""
    return math.floor(now) + 1


def revoked(user: StoredUser, now: float) -> StoredUser:
    """``user`` with every token issued so far revoked. Tokens are dated no earlier than notBefore
    (a login right after a revocation gets ``iat == notBefore``), so notBefore always moves past
    the previous one, even twice within a second."""
    return replace(user, not_before=max(user.not_before + 1, revocation_time(now)))


class Passwords:
    """argon2id hashing off the event loop, bounded so a login storm cannot exhaust memory."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(_HASHING_AT_ONCE)
        # Checked when the user does not exist, so an unknown name costs what a wrong password
        # costs: response time does not tell which names exist.
        self._decoy = self.hasher.hash("nestlab decoy password, never a user's")

    async def hash(self, password: str) -> str:
        """The PHC string of ``password``."""
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def check(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (None: an unknown user; always False)."""

        def verify() -> bool:
            try:
                return bool(self.hasher.verify(password_hash or self._decoy, password))
            except (VerificationError, InvalidHashError):
                return False

        async with self._slots:
            matched = await asyncio.to_thread(verify)
        return matched and password_hash is not None


T = TypeVar("T")


async def _guard(call: Awaitable[T]) -> T:
    """etcd's failures as the API's 503 (clients retry), as the object store reports them."""
    try:
        return await call
    except EtcdError as exc:
        raise status.unavailable(f"the identity store is unavailable: {exc}") from exc


class IdentityStore:
    """The users in etcd (create, read, list, update with compare-and-swap, delete)."""

    def __init__(self, etcd: EtcdClient, clock: Callable[[], float] = time.time) -> None:
        self.etcd = etcd
        self.clock = clock

    @staticmethod
    def key(name: str) -> str:
        """The etcd key of user ``name``."""
        return PREFIX + name

    def new_user(self, name: str, groups: tuple[str, ...], password_hash: str) -> StoredUser:
        """A user created now: no token issued before now (to an earlier user of that name) is valid."""
        now = self.clock()
        return StoredUser(name, groups, password_hash, rfc3339(now), revocation_time(now))

    async def create(self, user: StoredUser) -> bool:
        """Store a new user; False when the name is taken."""
        return await _guard(self.etcd.create(self.key(user.name), user.to_json())) is not None

    async def get(self, name: str) -> StoredUser | None:
        """User ``name``, or None."""
        found = await _guard(self.etcd.get(self.key(name)))
        return None if found is None else StoredUser.from_json(found.value)

    async def list(self) -> list[StoredUser]:
        """Every user, by name."""
        users: list[StoredUser] = []
        start = ""
        while True:
            page = await _guard(self.etcd.range(PREFIX, start=start, limit=500))
            users.extend(StoredUser.from_json(kv.value) for kv in page.kvs)
            if not page.more or not page.kvs:
                return users
            start = page.kvs[-1].key + "\0"

    async def update(self, name: str, change: Callable[[StoredUser], StoredUser]) -> StoredUser | None:
        """Apply ``change`` to user ``name`` (retried on concurrent writes); None when it does not exist."""
        for _ in range(_UPDATE_ATTEMPTS):
            found = await _guard(self.etcd.get(self.key(name)))
            if found is None:
                return None
            changed = change(StoredUser.from_json(found.value))
            if (
                await _guard(self.etcd.update(self.key(name), changed.to_json(), found.mod_revision))
                is not None
            ):
                return changed
        raise status.conflict(RESOURCE, GROUP, name)

    async def revoke(self, name: str) -> StoredUser | None:
        """Revoke every token of ``name`` issued until now; None when the user does not exist."""
        now = self.clock()
        return await self.update(name, lambda user: revoked(user, now))

    async def delete(self, name: str) -> StoredUser | None:
        """Remove user ``name``; the removed user, or None when it did not exist."""
        for _ in range(_UPDATE_ATTEMPTS):
            found = await _guard(self.etcd.get(self.key(name)))
            if found is None:
                return None
            if await _guard(self.etcd.delete(self.key(name), found.mod_revision)) is not None:
                return StoredUser.from_json(found.value)
        raise status.conflict(RESOURCE, GROUP, name)
