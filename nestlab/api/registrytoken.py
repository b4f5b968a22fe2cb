"""The depot registry's token service: Harbor's project model on distribution's token authentication.

The depot runs Debian's docker-registry (distribution 2.8) with ``auth: token``: every request without
a bearer token is answered 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``, and
the client asks this endpoint (``GET /nestlab/v1/registry/token?service=&scope=repository:P/R:pull,push``)
for a token. The project ``P`` of a repository is its first path component and is a vSphere Namespace:
pulling is ``get`` and pushing ``create`` on ``registry.nestlab.dev/images`` in namespace ``P``, decided by
the API server's authorizer (view pulls, edit pushes, admin deletes). Projects ``nestlab`` (demo images)
and ``library`` (single-component names) are public: anyone pulls, only who the authorizer allows pushes.
A node agent (group ``system:nodes``) pulls a private project only for a pod: ``&pod=<ns>/<name>`` must
name a pod bound to that node whose namespace is the project.

As the docker token specification says, a scope (or an action of one) the caller may not have is left out
of the token's ``access`` rather than refused: the registry then answers the client 401 for it. The token
is an ES256 JWT signed with the lab PKI's ``registry-token.key``; distribution 2.8 finds the verifying key
by the header's ``kid``, the libtrust key ID of a certificate in its ``rootcertbundle``
(``registry/auth/token/token.go``: ``VerifySigningKey`` tries ``x5c``, then ``jwk``, then ``kid``).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab.api import auditfacts, auth, status
from nestlab.api.authn import Authenticator
from nestlab.api.identity import IdentityStore, Passwords, name_problem
from nestlab.api.rbacrules import Attributes
from nestlab.api.resources import PODS
from nestlab.api.store import Store
from nestlab.errors import UsageError

PATH = "/nestlab/v1/registry/token"
DEFAULT_ISSUER = "nestlab-registry"
DEFAULT_SERVICE = "depot"
PUBLIC_PROJECTS = ("nestlab", "library")
DEFAULT_TTL_S = 300  # the docker token spec's suggested minimum lifetime is 60 s; 5 min covers a large push
IMAGES_GROUP = "registry.nestlab.dev"
IMAGES_RESOURCE = "images"
ACTION_VERBS = {"pull": "get", "push": "create", "delete": "delete"}
"""Registry actions and the authorizer verb each needs (Harbor: guest/developer/maintainer)."""
ANONYMOUS = auth.User("system:anonymous", frozenset({"system:unauthenticated"}))
NODE_PREFIX = "system:node:"

Decide = Callable[[auth.User, str, str], Awaitable[bool]]
"""``(user, verb, project) -> allowed``: the authorizer's answer for ``verb`` on images in ``project``."""
PasswordLogin = Callable[[str, str], Awaitable[auth.User | None]]
"""``(name, password) -> user``: the lab identity store's password check (None: not this user)."""


@dataclass(frozen=True)
class Scope:
    """One requested ``type:name:actions`` (``repository:team-a/web:pull,push``)."""

    type: str
    name: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class TokenConfig:
    """What the token service signs with and names (``--registry-token-*`` flags)."""

    key_file: Path
    issuer: str = DEFAULT_ISSUER
    service: str = DEFAULT_SERVICE
    public_projects: tuple[str, ...] = PUBLIC_PROJECTS
    ttl_s: int = DEFAULT_TTL_S


def parse_scope(text: str) -> Scope:
    """``type[(class)]:name:actions``; the name may hold ``:`` (distribution splits the same way)."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        raise status.bad_request(f"scope {text!r} is not type:name:actions (repository:team-a/web:pull)")
    kind = kind.split("(", 1)[0]
    return Scope(kind, name, tuple(a for a in actions.split(",") if a))


def project_of(repository: str) -> str:
    """The project (namespace) of a repository: its first component; one-component names are ``library``."""
    first, slash, _ = repository.partition("/")
    return first if slash else "library"


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """docker/libtrust's key ID: SHA-256 of the DER public key, 240 bits, base32 in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The signing key (EC P-256 PEM); UsageError naming the file otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load the registry token signing key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError(f"{path}: the registry token signing key must be an EC P-256 key (ES256)")
    return key


def sign(
    key: ec.EllipticCurvePrivateKey,
    config: TokenConfig,
    subject: str,
    access: Sequence[dict[str, Any]],
    now: float,
) -> str:
    """An ES256 JWT distribution accepts: iss/aud/exp/nbf checked, key found by ``kid``."""
    claims = {
        "iss": config.issuer,
        "sub": subject,
        "aud": config.service,
        "exp": int(now) + config.ttl_s,
        "nbf": int(now),
        "iat": int(now),
        "jti": secrets.token_urlsafe(16),
        "access": list(access),
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": libtrust_key_id(key.public_key())})


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header; None for other schemes."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, colon, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise status.unauthorized() from None
    if not colon:
        raise status.unauthorized()
    return name, password


class AttrsAuthorizer(Protocol):
    """The API server's authorizer (:class:`nestlab.api.access.Authorizer`)."""

    async def allowed_attrs(self, user: auth.User, attrs: Attributes) -> tuple[bool, str]: ...


def authorizer_decision(authorizer: AttrsAuthorizer) -> Decide:
    """The authorizer's answer for ``verb`` on ``registry.nestlab.dev/images`` in the project's namespace
    (the built-in ClusterRoles carry those rules: view ``get``, edit ``create``, admin ``delete``)."""

    async def decide(user: auth.User, verb: str, project: str) -> bool:
        attrs = Attributes(verb=verb, group=IMAGES_GROUP, resource=IMAGES_RESOURCE, namespace=project)
        allowed, _ = await authorizer.allowed_attrs(user, attrs)
        return allowed

    return decide


def password_login(users: IdentityStore, passwords: Passwords) -> PasswordLogin:
    """``docker login`` with a lab user's password: checked against the identity store (argon2id)."""

    async def login(name: str, password: str) -> auth.User | None:
        stored = await users.get(name) if name_problem(name) is None else None
        if not await passwords.check(None if stored is None else stored.password_hash, password):
            return None
        assert stored is not None  # noqa: S101 - check() is False for an unknown user
        return auth.User(stored.name, frozenset(stored.groups) | {auth.AUTHENTICATED})

    return login


class TokenService:
    """``GET /nestlab/v1/registry/token``: who asks, what they may do, a signed token saying so."""

    def __init__(
        self,
        config: TokenConfig,
        authenticator: Authenticator,
        store: Store,
        decide: Decide,
        password_login: PasswordLogin | None = None,
    ) -> None:
        self.config = config
        self.key = load_key(config.key_file)
        self.authenticator = authenticator
        self.store = store
        self.decide = decide
        self.password_login = password_login

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.token)]

    async def caller(self, request: web.Request) -> auth.User:
        """Client certificate or bearer token (the API's authenticator), Basic (a token as password, or
        the identity store's password), or anonymous when no credentials come at all."""
        header = request.headers.get("Authorization", "")
        basic = basic_credentials(header) if header else None
        if basic is None:
            transport = request.transport
            if not header and (transport is None or not transport.get_extra_info("peercert")):
                return ANONYMOUS
            return await self.authenticator.authenticate(request)
        name, password = basic
        for verifier in self.authenticator.verifiers:
            user = await verifier.verify(password)
            if user is not None:
                return user
        if self.password_login is not None:
            user = await self.password_login(name, password)
            if user is not None:
                return user
        raise status.unauthorized()

    async def token(self, request: web.Request) -> web.Response:
        service = request.query.get("service", self.config.service)
        if service != self.config.service:
            raise status.bad_request(
                f"this token service signs for service {self.config.service!r}, not {service!r}"
            )
        user = await self.caller(request)
        noted = auditfacts.facts(request)
        noted.user, noted.verb = user, "get"
        scopes = [
            parse_scope(s) for value in request.query.getall("scope", []) for s in value.split(" ") if s
        ]
        pod = request.query.get("pod", "")
        access = []
        for scope in scopes:
            granted = await self.granted(user, scope, pod)
            if granted:
                access.append({"type": scope.type, "name": scope.name, "actions": list(granted)})
        now = time.time()
        token = sign(self.key, self.config, user.name, access, now)
        issued = datetime.datetime.fromtimestamp(int(now), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response(
            {"token": token, "access_token": token, "expires_in": self.config.ttl_s, "issued_at": issued}
        )

    async def granted(self, user: auth.User, scope: Scope, pod: str) -> tuple[str, ...]:
        """The actions of ``scope`` ``user`` may have (in the order asked, ``*`` expanded)."""
        if scope.type == "registry":  # registry:catalog:* lists every project: lab administrators only
            return scope.actions if scope.name == "catalog" and user.is_admin else ()
        if scope.type != "repository":
            return ()
        wanted = [a for a in scope.actions if a in ACTION_VERBS]
        if "*" in scope.actions:
            wanted = list(ACTION_VERBS)
        project = project_of(scope.name)
        out: list[str] = []
        for action in dict.fromkeys(wanted):
            if await self.allows(user, ACTION_VERBS[action], project, pod):
                out.append(action)
        return tuple(out)

    async def allows(self, user: auth.User, verb: str, project: str, pod: str) -> bool:
        """Public pulls; a node's pull for one of its pods; otherwise the authorizer."""
        if verb == "get" and project in self.config.public_projects:
            return True
        if user is ANONYMOUS:
            return False
        if auth.NODE_GROUP in user.groups and not user.is_admin:
            return verb == "get" and await self.node_pod_in(user, project, pod)
        return await self.decide(user, verb, project)

    async def node_pod_in(self, user: auth.User, project: str, pod: str) -> bool:
        """Whether ``pod`` (``ns/name``) is bound to the node ``user`` and lives in ``project``."""
        namespace, slash, name = pod.partition("/")
        node = user.name.removeprefix(NODE_PREFIX)
        if not slash or namespace != project or not name or not user.name.startswith(NODE_PREFIX):
            return False
        try:
            obj = await self.store.get(PODS, namespace, name)
        except status.ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return bool((obj.get("spec") or {}).get("nodeName") == node)
