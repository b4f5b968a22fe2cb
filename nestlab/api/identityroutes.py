"""The Token Exchange Service's HTTP side: login, and the lab administrators' user management.

Not Kubernetes resources (no kind to ``kubectl get``): plain JSON routes under ``/nestlab/v1`` on
every API server, refusing with Kubernetes ``Status`` bodies like the rest of the API so the same
client code reads them.

- ``POST /nestlab/v1/login``: HTTP Basic ``user:password`` (or a JSON body ``{"username",
  "password"}``), optional JSON ``{"expirationSeconds": N}``; answers ``{"token",
  "expirationTimestamp"}``. A wrong password and an unknown user get the same 401, in the same
  time (no user enumeration).
- ``GET/POST /nestlab/v1/users``, ``GET/PATCH/DELETE /nestlab/v1/users/<name>``: lab administrators
  only. PATCH takes ``groups``, ``password`` and ``revokeTokens``; a new password revokes every
  token issued before it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from nestlab.api import auditfacts, auth, decode, status
from nestlab.api.access import Authorizer
from nestlab.api.authn import Authenticator
from nestlab.api.etcd import EtcdClient
from nestlab.api.identity import (
    GROUP,
    RESOURCE,
    IdentityStore,
    Passwords,
    StoredUser,
    group_problem,
    name_problem,
    password_problem,
    revoked,
)
from nestlab.api.meta import json_response
from nestlab.api.rbacrules import Attributes
from nestlab.api.usertokens import DEFAULT_TTL, MAX_TTL, UserCache, UserTokens, load_signing_key

KIND = "User"
BASE = "/nestlab/v1"
LOGIN_FAILED = "invalid user name or password"
_MAX_BODY = 64 * 1024  # bytes: a user record is tiny; anything larger is not one

Authenticate = Callable[[web.Request], Awaitable[auth.User]]
AuthorizeAdmin = Callable[[auth.User, str, str], Awaitable[None]]
"""``(user, verb, name)``: returns when ``user`` may ``verb`` users (``name``), else raises 403."""


async def admins_only(user: auth.User, verb: str, name: str) -> None:
    """Only lab administrators manage users (403 worded like RBAC otherwise): the default when no
    authorizer is given (unit tests)."""
    if not user.is_admin:
        raise status.forbidden(user.name, verb, RESOURCE, GROUP, namespace="", name=name)


def rbac(authorizer: Authorizer) -> AuthorizeAdmin:
    """Users are a cluster-scoped resource of RBAC like any other (``identity.nestlab.dev/users``):
    cluster-admin holds them, and a ClusterRole may grant, say, ``list users`` to a help desk."""

    async def authorize(user: auth.User, verb: str, name: str) -> None:
        await authorizer.check_attrs(user, Attributes(verb, GROUP, RESOURCE, "", name))

    return authorize


def login_failed() -> status.ApiError:
    """The one answer to a failed login, whatever failed."""
    return status.ApiError(401, "Unauthorized", LOGIN_FAILED)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header; None for other schemes; 401 when malformed."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise login_failed() from exc
    name, colon, password = decoded.partition(":")
    if not colon:
        raise login_failed()
    return name, password


def login_request(header: str, body: Any) -> tuple[str, str, int]:
    """(user, password, token lifetime in seconds) of a login request; 401/400 when unusable."""
    body = body if isinstance(body, dict) else {}
    credentials = basic_credentials(header) if header else None
    if credentials is None:
        name, password = body.get("username"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise login_failed()
        credentials = name, password
    ttl = body.get("expirationSeconds", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise status.bad_request(f"expirationSeconds must be a whole number of seconds from 1 to {MAX_TTL}")
    return credentials[0], credentials[1], ttl


def invalid(name: str, causes: list[status.Cause]) -> status.ApiError:
    """422 shaped like upstream's: ``User.identity.nestlab.dev "alice" is invalid: password: is empty``."""
    return status.invalid(KIND, GROUP, name, causes)


def groups_causes(groups: Any) -> list[status.Cause]:
    """What is wrong with a ``groups`` field."""
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        return [status.Cause("groups", "must be a list of group names")]
    return [
        status.Cause(f"groups[{index}]", problem)
        for index, group in enumerate(groups)
        if (problem := group_problem(group)) is not None
    ]


def new_user_fields(body: Any) -> tuple[str, tuple[str, ...], str]:
    """(name, groups, password) of a create request; 400/422 naming the field otherwise."""
    if not isinstance(body, dict):
        raise status.bad_request('a user is a JSON object: {"name": ..., "groups": [...], "password": ...}')
    name = body.get("name")
    if not isinstance(name, str):
        raise invalid("", [status.Cause("name", "a user name is required", "FieldValueRequired")])
    causes: list[status.Cause] = []
    if (problem := name_problem(name)) is not None:
        causes.append(status.Cause("name", problem))
    groups = body.get("groups") or []
    causes += groups_causes(groups)
    password = body.get("password")
    if not isinstance(password, str):
        password = ""
    if (problem := password_problem(name, password)) is not None:
        causes.append(status.Cause("password", problem))
    if causes:
        raise invalid(name, causes)
    return name, tuple(dict.fromkeys(groups)), password


async def read_json(request: web.Request) -> Any:
    """The JSON body (None when empty): 413 over 64 KiB (read in full, not one chunk), 400 when it
    is not JSON or is hostile JSON (see :mod:`nestlab.api.decode`)."""
    too_large = status.ApiError(
        413, "RequestEntityTooLarge", f"Request entity too large: limit is {_MAX_BODY}"
    )
    if (request.content_length or 0) > _MAX_BODY:
        raise too_large
    raw = bytearray()
    while chunk := await request.content.read(_MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > _MAX_BODY:
            raise too_large
    if not raw.strip():
        return None
    return decode.decode_json(bytes(raw)).value


class IdentityRoutes:
    """The routes, bound to the identity store and (when a signing key is configured) the token issuer."""

    def __init__(
        self,
        store: IdentityStore,
        tokens: UserTokens | None,
        authenticate: Authenticate,
        authorize: AuthorizeAdmin = admins_only,
        passwords: Passwords | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.authenticate = authenticate
        self.authorize = authorize
        self.passwords = passwords or Passwords()

    def routes(self) -> list[web.RouteDef]:
        """Every identity route."""
        return [
            web.post(f"{BASE}/login", self.login),
            web.get(f"{BASE}/users", self.list_users),
            web.post(f"{BASE}/users", self.create_user),
            web.get(f"{BASE}/users/{{name}}", self.get_user),
            web.patch(f"{BASE}/users/{{name}}", self.patch_user),
            web.delete(f"{BASE}/users/{{name}}", self.delete_user),
        ]

    # -- login ------------------------------------------------------------------------------------
    async def login(self, request: web.Request) -> web.Response:
        """Exchange a user's password for a login token."""
        if self.tokens is None:
            raise status.unavailable(
                "login is not configured on this API server (start it with --identity-signing-key)"
            )
        name, password, ttl = login_request(
            request.headers.get("Authorization", ""), await read_json(request)
        )
        user = await self.store.get(name) if name_problem(name) is None else None
        if not await self.passwords.check(None if user is None else user.password_hash, password):
            raise login_failed()
        assert user is not None  # noqa: S101 - check() is False for an unknown user
        auditfacts.facts(request).user = auth.User(user.name, frozenset(user.groups) | {auth.AUTHENTICATED})
        return json_response(self.tokens.issue(user, ttl).answer(), 200)

    # -- users (lab administrators) ---------------------------------------------------------------
    async def _admin(self, request: web.Request, verb: str, name: str = "") -> auth.User:
        user = await self.authenticate(request)
        auth.CURRENT_USER.set(user)
        noted = auditfacts.facts(request)
        noted.user, noted.verb, noted.resource, noted.group = user, verb, RESOURCE, GROUP
        noted.version, noted.name = "v1", name
        await self.authorize(user, verb, name)
        return user

    async def _existing(self, name: str) -> StoredUser:
        user = await self.store.get(name) if name_problem(name) is None else None
        if user is None:
            raise status.not_found(RESOURCE, GROUP, name)
        return user

    async def list_users(self, request: web.Request) -> web.Response:
        await self._admin(request, "list")
        users = await self.store.list()
        body = {"kind": "UserList", "apiVersion": f"{GROUP}/v1", "items": [u.public() for u in users]}
        return json_response(body)

    async def get_user(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await self._admin(request, "get", name)
        return json_response((await self._existing(name)).public())

    async def create_user(self, request: web.Request) -> web.Response:
        await self._admin(request, "create")
        name, groups, password = new_user_fields(await read_json(request))
        auditfacts.facts(request).name = name
        if await self.store.get(name) is not None:  # before hashing: a duplicate costs no argon2 time
            raise status.already_exists(RESOURCE, GROUP, name)
        user = self.store.new_user(name, groups, await self.passwords.hash(password))
        if not await self.store.create(user):
            raise status.already_exists(RESOURCE, GROUP, name)
        return json_response(user.public(), 201)

    async def patch_user(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await self._admin(request, "patch", name)
        body = await read_json(request)
        if not isinstance(body, dict) or not set(body) <= {"groups", "password", "revokeTokens"}:
            raise status.bad_request(
                'a user patch is a JSON object with "groups", "password" and/or "revokeTokens"'
            )
        await self._existing(name)
        causes = groups_causes(body["groups"]) if "groups" in body else []
        password = body.get("password")
        if password is not None:
            problem = password_problem(name, password if isinstance(password, str) else "")
            causes += [status.Cause("password", problem)] if problem is not None else []
        if causes:
            raise invalid(name, causes)
        new_hash = None if password is None else await self.passwords.hash(password)
        revoke = new_hash is not None or body.get("revokeTokens") is True
        now = self.store.clock()

        def change(user: StoredUser) -> StoredUser:
            if "groups" in body:
                user = replace(user, groups=tuple(dict.fromkeys(body["groups"])))
            if new_hash is not None:
                user = replace(user, password_hash=new_hash)
            if revoke:
                user = revoked(user, now)
            return user

        updated = await self.store.update(name, change)
        if updated is None:
            raise status.not_found(RESOURCE, GROUP, name)
        return json_response(updated.public())

    async def delete_user(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await self._admin(request, "delete", name)
        removed = await self.store.delete(name) if name_problem(name) is None else None
        if removed is None:
            raise status.not_found(RESOURCE, GROUP, name)
        return json_response(removed.public())


def build(
    signing_key: Path | None,
    etcd: EtcdClient,
    authenticator: Authenticator,
    authenticate: Authenticate,
    authorize: AuthorizeAdmin = admins_only,
) -> IdentityRoutes:
    """The identity routes of one API server; with a signing key, login is served and login tokens
    are verified (the verifier is appended to ``authenticator``'s chain)."""
    store = IdentityStore(etcd)
    tokens = None
    if signing_key is not None:
        tokens = UserTokens(load_signing_key(signing_key), UserCache(store))
        authenticator.verifiers.append(tokens)
    return IdentityRoutes(store, tokens, authenticate, authorize)
