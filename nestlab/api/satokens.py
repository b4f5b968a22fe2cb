"""Bound service-account tokens: signed by the API server, verified by the API server.

Upstream's model since 1.24 (and nestlab's only one): a pod's token is a short-lived JWT signed
with the control plane's ``service-account.key`` (ES256), bound to the ServiceAccount *and* the pod
it was issued for (their names and uids in the ``kubernetes.io`` claim), so that deleting the pod
or the ServiceAccount revokes it at once, long before it expires. Every API server of the lab holds
the same key (the lab PKI makes it, Ansible copies it), so a token issued by one verifies on all.

:class:`SigningKey` signs and checks signatures (pure: no store, the clock is passed in);
:class:`ServiceAccountTokens` is the authenticator's :class:`~nestlab.api.authn.TokenVerifier`:
a JWT from another issuer is not its kind (None), one of its kind that fails any check is 401.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab.api import auth, status
from nestlab.api.resources import PODS, SERVICEACCOUNTS, Resource
from nestlab.errors import UsageError

Obj = dict[str, Any]
ISSUER = "https://kubernetes.default.svc.cluster.local"
"""``--service-account-issuer`` default: what kubeadm clusters use (and the API audience too)."""
ALGORITHM = "ES256"  # the key is EC P-256 (nestlab.provision.pki.ensure_signing_key)
LEEWAY_S = 60  # upstream validates exp/nbf with go-jose's default leeway of one minute
DELETED_GRACE_S = 60
"""Upstream keeps a bound token valid until its pod's (or ServiceAccount's) deletionTimestamp is a
minute old (``now - jwt.DefaultLeeway``), so a pod can still talk to the API while it shuts down."""
GROUP = "system:serviceaccounts"
EXTRA_PREFIX = "authentication.kubernetes.io/"
POD_NAME, POD_UID = f"{EXTRA_PREFIX}pod-name", f"{EXTRA_PREFIX}pod-uid"
NODE_NAME, NODE_UID = f"{EXTRA_PREFIX}node-name", f"{EXTRA_PREFIX}node-uid"
CREDENTIAL_ID = f"{EXTRA_PREFIX}credential-id"
"""The user.extra keys upstream's ServiceAccountInfo.UserInfo sets from a bound token."""
Get = Callable[[Resource, str, str], Awaitable[Obj]]
"""(resource, namespace, name) -> the stored object, or a 404 ApiError."""


class TokenError(Exception):
    """A token of this issuer that must be refused; the message says why (logged, never sent)."""


@dataclass(frozen=True)
class Ref:
    """An object a token is bound to."""

    name: str
    uid: str


@dataclass(frozen=True)
class Binding:
    """What a token stands for: a ServiceAccount, and the pod (and its node) it was issued to."""

    namespace: str
    account: Ref
    pod: Ref | None = None
    node: Ref | None = None
    jti: str = ""
    """The token's ``jti`` (read back when verifying; signing makes a fresh one)."""


def username(namespace: str, name: str) -> str:
    """``system:serviceaccount:<ns>:<name>``: the user name RBAC sees."""
    return f"system:serviceaccount:{namespace}:{name}"


def user_of(binding: Binding) -> auth.User:
    """The authenticated user of a token (upstream's ServiceAccountInfo.UserInfo): the
    ServiceAccount's uid, and in extra the pod (and node) it was bound to and ``JTI=<jti>``."""
    groups = {GROUP, f"{GROUP}:{binding.namespace}", auth.AUTHENTICATED}
    extra: dict[str, tuple[str, ...]] = {}
    if binding.pod is not None:
        extra[POD_NAME], extra[POD_UID] = (binding.pod.name,), (binding.pod.uid,)
    if binding.jti:
        extra[CREDENTIAL_ID] = (f"JTI={binding.jti}",)
    if binding.node is not None:
        extra[NODE_NAME], extra[NODE_UID] = (binding.node.name,), (binding.node.uid,)
    return auth.User(
        username(binding.namespace, binding.account.name),
        frozenset(groups),
        uid=binding.account.uid,
        extra=extra,
    )


def claims(binding: Binding, *, issuer: str, audiences: Sequence[str], now: int, seconds: int) -> Obj:
    """The JWT claims upstream's token generator writes for ``binding``."""
    private: Obj = {
        "namespace": binding.namespace,
        "serviceaccount": {"name": binding.account.name, "uid": binding.account.uid},
    }
    if binding.pod is not None:
        private["pod"] = {"name": binding.pod.name, "uid": binding.pod.uid}
    if binding.node is not None:
        private["node"] = {"name": binding.node.name, "uid": binding.node.uid}
    return {
        "aud": list(audiences),
        "exp": now + seconds,
        "iat": now,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
        "nbf": now,
        "sub": username(binding.namespace, binding.account.name),
    }


def _ref(value: Any, what: str) -> Ref:
    if not isinstance(value, dict) or not value.get("name") or not value.get("uid"):
        raise TokenError(f"the kubernetes.io claim has no {what} name and uid")
    return Ref(str(value["name"]), str(value["uid"]))


def binding_of(payload: Obj) -> Binding:
    """The binding a verified token's claims carry; TokenError when they are not upstream's shape."""
    private = payload.get("kubernetes.io")
    if not isinstance(private, dict) or not private.get("namespace"):
        raise TokenError("the token has no kubernetes.io claim with a namespace")
    binding = Binding(
        str(private["namespace"]),
        _ref(private.get("serviceaccount"), "serviceaccount"),
        None if private.get("pod") is None else _ref(private["pod"], "pod"),
        None if private.get("node") is None else _ref(private["node"], "node"),
        str(payload.get("jti") or ""),
    )
    if payload.get("sub") != username(binding.namespace, binding.account.name):
        raise TokenError("the token's sub does not name its service account")
    return binding


def rfc3339(epoch: int) -> str:
    """A TokenRequest's ``expirationTimestamp``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SigningKey:
    """The service-account signing key and the issuer it signs as."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str = ISSUER) -> None:
        self.key = key
        self.issuer = issuer
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # upstream keyIDFromPublicKey: the unpadded base64url SHA-256 of the DER public key
        self.key_id = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")

    @classmethod
    def load(cls, path: Path, issuer: str = ISSUER) -> SigningKey:
        """The key in ``path`` (PEM, EC P-256); UsageError naming the file when it cannot be used."""
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise UsageError(f"--service-account-signing-key-file {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise UsageError(f"--service-account-signing-key-file {path}: not a PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise UsageError(
                f"--service-account-signing-key-file {path}: expected an EC P-256 key (ES256), "
                "as nestlab.provision.pki makes it"
            )
        return cls(key, issuer)

    def sign(self, binding: Binding, audiences: Sequence[str], seconds: int, now: int) -> str:
        """A token for ``binding`` valid ``seconds`` from ``now`` (epoch seconds)."""
        payload = claims(binding, issuer=self.issuer, audiences=audiences, now=now, seconds=seconds)
        return jwt.encode(payload, self.key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def is_ours(self, token: str) -> bool:
        """Whether ``token`` is a JWT claiming this issuer (nothing verified yet)."""
        try:
            payload = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return False
        return isinstance(payload, dict) and payload.get("iss") == self.issuer

    def verify(self, token: str, audiences: Sequence[str], now: float) -> Binding:
        """The binding of a token this key signed for one of ``audiences``, unexpired at ``now``;
        TokenError otherwise (bad signature, other algorithm, wrong issuer or audience, expired)."""
        try:
            payload = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=[ALGORITHM],
                audience=list(audiences),
                issuer=self.issuer,
                leeway=LEEWAY_S,
                # exp is checked below against the verifier's clock (leeway included)
                options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenError(str(exc)) from exc
        expires = payload.get("exp")
        if not isinstance(expires, int | float) or expires + LEEWAY_S < now:
            raise TokenError("the token has expired")
        return binding_of(payload)


def deleted_too_long(obj: Obj, now: float) -> bool:
    """Whether ``obj``'s deletionTimestamp is more than :data:`DELETED_GRACE_S` in the past."""
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return False
    when = datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return when < now - DELETED_GRACE_S


class ServiceAccountTokens:
    """The bearer-token verifier of bound service-account tokens (authn chain member)."""

    def __init__(
        self,
        key: SigningKey,
        get: Get,
        audiences: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.get = get
        self.audiences = tuple(audiences) or (key.issuer,)
        """The API's audiences (upstream ``--api-audiences``, defaulting to the issuer)."""
        self.clock = clock

    async def verify(self, token: str) -> auth.User | None:
        if not self.key.is_ours(token):
            return None
        try:
            binding = self.key.verify(token, self.audiences, self.clock())
            await self._still_bound(binding)
        except TokenError:
            raise status.unauthorized() from None
        return user_of(binding)

    async def _still_bound(self, binding: Binding) -> None:
        """TokenError unless the ServiceAccount and the pod the token names still exist, same uids."""
        account = await self._current(SERVICEACCOUNTS, binding.namespace, binding.account)
        if account is None or deleted_too_long(account, self.clock()):
            raise TokenError(f"service account {binding.namespace}/{binding.account.name} is gone")
        if binding.pod is not None:
            pod = await self._current(PODS, binding.namespace, binding.pod)
            if pod is None or deleted_too_long(pod, self.clock()):
                raise TokenError(f"pod {binding.namespace}/{binding.pod.name} is gone or being deleted")

    async def _current(self, resource: Resource, namespace: str, ref: Ref) -> Obj | None:
        """The object ``ref`` names if it still exists with the same uid (ApiError 503 passes)."""
        try:
            obj = await self.get(resource, namespace, ref.name)
        except status.ApiError as exc:
            if exc.code == 404:
                return None
            raise
        return obj if (obj.get("metadata") or {}).get("uid") == ref.uid else None
