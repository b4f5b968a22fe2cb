"""Login tokens of lab users: ES256 JWTs issued at ``/nestlab/v1/login`` and verified on every request.

The lab's counterpart of the tokens vSphere's Token Exchange Service hands ``kubectl vsphere
login``: short-lived (10 hours by default, as there), signed with ``identity-signing.key`` (EC
P-256, made with the lab PKI and copied to every control-plane node, so any API server behind the
VIP verifies what another issued). PyJWT checks the signature with ES256 only (``alg: none`` and
HS256-with-the-public-key forgeries fail), the issuer, audience and times; this module adds
revocation: the user must still exist and the token must be issued at or after the user's
``notBefore``. The user's groups come from the store, not from the token, so removing someone from
a group takes effect at once instead of at the token's expiry.

Revocation is checked through :class:`UserCache`, which keeps an etcd read for at most
``max_age`` seconds (1 s by default; ``bench/login.py`` measures both ways): a removed user's
token stops working within that second on every API server.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab.api import auth, status
from nestlab.api.identity import IdentityStore, StoredUser, rfc3339
from nestlab.errors import UsageError

log = logging.getLogger(__name__)

ISSUER = "nestlab-identity"
AUDIENCE = "nestlab-apiserver"
ALGORITHM = "ES256"
DEFAULT_TTL = 10 * 3600  # seconds: vSphere's `kubectl vsphere login` tokens last 10 hours
MAX_TTL = 24 * 3600  # seconds: a login token is a day's credential at most
LEEWAY = 5  # seconds of clock difference tolerated between the control-plane nodes
CACHE_SECONDS = 1.0  # how long a verified user's record is reused before etcd is read again
_CACHE_ENTRIES = 10_000  # users kept at most; beyond, the cache starts over (a lab has dozens)
_REQUIRED = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]


@dataclass(frozen=True)
class IssuedToken:
    """A login token and when it expires (epoch seconds)."""

    token: str
    expires: int

    def answer(self) -> dict[str, str]:
        """The body of a successful login."""
        return {"token": self.token, "expirationTimestamp": rfc3339(self.expires)}


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The identity signing key (EC P-256 PEM); UsageError naming the file when it cannot serve."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise UsageError(f"cannot read --identity-signing-key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"--identity-signing-key {path} is not a PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise UsageError(f"--identity-signing-key {path} must be an EC P-256 key (ES256)")
    return key


class UserCache:
    """Users read from the store, each reused for at most ``max_age`` seconds; concurrent reads of
    one name share one etcd request (kubectl's discovery sends a dozen requests at once)."""

    def __init__(
        self,
        store: IdentityStore,
        max_age: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.clock = clock
        self._entries: dict[str, tuple[float, StoredUser | None]] = {}
        self._reading: dict[str, asyncio.Task[StoredUser | None]] = {}

    async def get(self, name: str) -> StoredUser | None:
        """User ``name`` as etcd had it at most ``max_age`` seconds ago; 503 when etcd is away."""
        entry = self._entries.get(name)
        if entry is not None and self.clock() - entry[0] < self.max_age:
            return entry[1]
        reading = self._reading.get(name)
        if reading is None:
            reading = asyncio.get_running_loop().create_task(self._read(name))
            self._reading[name] = reading
            reading.add_done_callback(lambda done: self._done(name, done))
        # Shielded: a caller that goes away (client disconnected) does not cancel the others' read.
        return await asyncio.shield(reading)

    def _done(self, name: str, reading: asyncio.Task[StoredUser | None]) -> None:
        self._reading.pop(name, None)
        if not reading.cancelled():
            reading.exception()  # retrieved: the waiters re-raise it; no "never retrieved" warning

    async def _read(self, name: str) -> StoredUser | None:
        started = self.clock()  # stamped before the read: an entry never outlives max_age
        user = await self.store.get(name)  # 503 when etcd is away: the request is retried, not refused
        if len(self._entries) >= _CACHE_ENTRIES:
            self._entries.clear()
        self._entries[name] = (started, user)
        return user


class UserTokens:
    """Issue and verify login tokens; a :class:`~nestlab.api.authn.TokenVerifier`."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        users: UserCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.public_key = key.public_key()
        self.users = users
        self.clock = clock

    def issue(self, user: StoredUser, ttl: int = DEFAULT_TTL) -> IssuedToken:
        """A token for ``user`` valid ``ttl`` seconds (never dated before the user's notBefore)."""
        if not 1 <= ttl <= MAX_TTL:
            raise ValueError(f"a login token lasts 1 to {MAX_TTL} seconds, not {ttl}")
        issued = max(math.floor(self.clock()), user.not_before)
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user.name,
            "groups": list(user.groups),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": uuid.uuid4().hex,
        }
        return IssuedToken(jwt.encode(claims, self.key, algorithm=ALGORITHM), issued + ttl)

    async def verify(self, token: str) -> auth.User | None:
        """The token's user; None when the token is not a login token; 401 when it is one but fails."""
        if not is_login_token(token):
            return None
        claims = self._claims(token)
        name = claims["sub"]
        user = await self.users.get(name)
        if user is None:
            _refuse(name, "the user no longer exists")
        if claims["iat"] < user.not_before:
            _refuse(name, "the token was revoked (issued before the user's notBefore)")
        return auth.User(name, frozenset(user.groups) | {auth.AUTHENTICATED})

    def _claims(self, token: str) -> dict[str, Any]:
        """The verified claims of a login token; 401 when the signature, algorithm, issuer, audience
        or times do not verify."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as exc:
            _refuse(_unverified_subject(token), str(exc))
        if not isinstance(claims["sub"], str) or not isinstance(claims["iat"], int):
            _refuse(str(claims["sub"]), "sub must be a string and iat whole seconds")
        return claims


def is_login_token(token: str) -> bool:
    """Whether ``token`` claims to be ours (a JWT with our issuer), before any verification: other
    tokens (static, service-account) are left to their verifiers."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return isinstance(unverified, dict) and unverified.get("iss") == ISSUER


def _unverified_subject(token: str) -> str:
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("sub", "?"))
    except jwt.PyJWTError:
        return "?"


def _refuse(name: str, why: str) -> NoReturn:
    """401. The client learns only "Unauthorized" (as from kube-apiserver); the server log says why."""
    log.info("login token of %s refused: %s", name, why)
    raise status.unauthorized()
