"""Bearer tokens for the depot registry: the client half of distribution's token authentication.

The depot answers a request without a (sufficient) token 401 with
``WWW-Authenticate: Bearer realm="https://VIP:6443/nestlab/v1/registry/token",service="depot",
scope="repository:team-a/web:pull"``. :class:`TokenAuth` asks that realm for a token with the caller's
credentials (a node's or the lab admin's client certificate over mutual TLS, a user's login token, or
user and password), naming the pod a node pulls for, and keeps it per (registry, repository, pod) until
shortly before it expires. :func:`parse_challenge` is pure; :meth:`TokenAuth._get` is the one HTTP call.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nestlab.errors import NestlabError

DEFAULT_EXPIRES_S = 60  # the docker token spec: a token without expires_in lives 60 s
MARGIN_S = 30  # a token is renewed this long before it expires (a blob upload must not outlive it)
TIMEOUT_S = 20.0
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryAuthError(NestlabError):
    """The token service refused the credentials or could not be reached."""


@dataclass(frozen=True)
class Challenge:
    """A ``WWW-Authenticate: Bearer`` challenge."""

    realm: str
    service: str
    scope: str
    error: str = ""


def parse_challenge(header: str) -> Challenge | None:
    """The Bearer challenge of a ``WWW-Authenticate`` header; None for other schemes (or no realm)."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params = dict(_PARAM.findall(rest))
    if not params.get("realm"):
        return None
    return Challenge(
        params["realm"], params.get("service", ""), params.get("scope", ""), params.get("error", "")
    )


def merge_scope(old: str, new: str) -> str:
    """``repository:x:pull`` and ``repository:x:push`` -> ``repository:x:pull,push`` (same resource)."""
    if not old:
        return new
    old_head, _, old_actions = old.rpartition(":")
    new_head, _, new_actions = new.rpartition(":")
    if old_head != new_head:
        return new
    actions = dict.fromkeys([*old_actions.split(","), *new_actions.split(",")])
    return f"{new_head}:{','.join(a for a in actions if a)}"


@dataclass
class _Cached:
    token: str
    scope: str
    expires: float


class TokenAuth:
    """Fetches and caches registry tokens with one set of credentials."""

    def __init__(
        self,
        *,
        context: ssl.SSLContext | None = None,
        bearer: str | None = None,
        basic: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.context = context
        """TLS towards the realm: the lab CA, and a client certificate for nodes and the lab admin."""
        self.bearer = bearer
        self.basic = basic
        self.clock = clock
        self._cache: dict[tuple[str, str, str], _Cached] = {}
        self._lock = threading.Lock()

    @classmethod
    def with_certificate(cls, ca: Path | None, cert: Path | None, key: Path | None) -> TokenAuth:
        """Mutual TLS with a lab client certificate (node agents, the lab admin)."""
        context = ssl.create_default_context(cafile=None if ca is None else str(ca))
        if cert is not None:
            context.load_cert_chain(str(cert), None if key is None else str(key))
        return cls(context=context)

    @classmethod
    def for_node(cls, ca: Path | None, cert: Path | None, key: Path | None, token: str | None) -> TokenAuth:
        """The agent's credentials towards the token service: its client certificate, else its token."""
        if cert is not None:
            return cls.with_certificate(ca, cert, key)
        return cls(context=ssl.create_default_context(cafile=None if ca is None else str(ca)), bearer=token)

    def cached(self, registry: str, repository: str, pod: str) -> str | None:
        """A token still good for a while for ``repository`` (or the registry itself, ``""``)."""
        with self._lock:
            hit = self._cache.get((registry, repository, pod))
            if hit is None or self.clock() >= hit.expires:
                return None
            return hit.token

    def fetch(self, registry: str, repository: str, challenge: Challenge, pod: str) -> str:
        """A new token for what ``challenge`` asks (plus the actions already held for ``repository``)."""
        with self._lock:
            held = self._cache.get((registry, repository, pod))
        scope = merge_scope(held.scope if held is not None else "", challenge.scope)
        query = [("service", challenge.service)] if challenge.service else []
        if scope:
            query.append(("scope", scope))
        if pod:
            query.append(("pod", pod))
        sep = "&" if "?" in challenge.realm else "?"
        url = challenge.realm + (sep + urllib.parse.urlencode(query) if query else "")
        answer = self._get(url, challenge.realm)
        token = str(answer.get("token") or answer.get("access_token") or "")
        if not token:
            raise RegistryAuthError(f"the registry token service {challenge.realm} answered without a token")
        expires_in = answer.get("expires_in")
        life = int(expires_in) if isinstance(expires_in, int) and expires_in > 0 else DEFAULT_EXPIRES_S
        with self._lock:
            expires = self.clock() + max(life - MARGIN_S, life / 2)
            self._cache[(registry, repository, pod)] = _Cached(token, scope, expires)
        return token

    def _get(self, url: str, realm: str) -> dict[str, object]:
        """The one HTTP call: GET the realm with the credentials."""
        if not url.startswith("https://") and not _loopback(url):
            raise RegistryAuthError(f"refusing to send registry credentials to {realm}: not https")
        request = urllib.request.Request(url, method="GET")  # noqa: S310 - https or loopback, checked above
        if self.bearer:
            request.add_header("Authorization", f"Bearer {self.bearer}")
        elif self.basic:
            pair = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {pair}")
        context = self.context if url.startswith("https://") else None
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:  # noqa: S310
                body = response.read(1024 * 1024)
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode(errors="replace")
            exc.close()
            if exc.code == 401:
                raise RegistryAuthError(
                    f"the registry token service {realm} did not accept the credentials (401): log in "
                    "again (nestlab login USER) or check the client certificate"
                ) from exc
            raise RegistryAuthError(
                f"the registry token service {realm} answered {exc.code}: {detail[:300]}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RegistryAuthError(f"the registry token service {realm} did not answer: {exc}") from exc
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise RegistryAuthError(f"the registry token service {realm} answered non-JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise RegistryAuthError(f"the registry token service {realm} answered {type(answer).__name__}")
        return answer


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")
