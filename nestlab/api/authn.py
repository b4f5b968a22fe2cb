"""Who is calling: one chain of authenticators, as kube-apiserver's union authenticator.

A verified lab-CA client certificate wins; otherwise an ``Authorization: Bearer`` token is offered
to each token verifier in turn (static tokens, lab users' login tokens, service-account tokens).
A verifier answers ``None`` for a token that is not its kind (an issuer it does not know) and
raises 401 for a token of its kind that fails (bad signature, expired, revoked): a token is never
silently downgraded to anonymous.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from nestlab.api import auth, status


class TokenVerifier(Protocol):
    """One kind of bearer token."""

    async def verify(self, token: str) -> auth.User | None:
        """The token's user; None when the token is not this verifier's kind; 401 (``status.unauthorized``)
        when it is but does not verify."""
        ...


class StaticTokens:
    """kube-apiserver's ``--token-auth-file`` tokens (tests and break-glass access)."""

    def __init__(self, tokens: Mapping[str, auth.User]) -> None:
        self.tokens = dict(tokens)

    async def verify(self, token: str) -> auth.User | None:
        return self.tokens.get(token)


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for other schemes."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """Client certificate, then each token verifier in order; 401 when nothing vouches for the caller."""

    def __init__(self, verifiers: list[TokenVerifier], *, anonymous_admin: bool = False) -> None:
        self.verifiers = verifiers
        self.anonymous_admin = anonymous_admin

    async def authenticate(self, request: web.Request) -> auth.User:
        transport = request.transport
        peercert: Any = transport.get_extra_info("peercert") if transport is not None else None
        user = auth.user_from_peercert(peercert)
        if user is not None:
            return user
        header = request.headers.get("Authorization", "")
        if header:
            token = bearer_token(header)
            if token is None:
                raise status.unauthorized()
            for verifier in self.verifiers:
                user = await verifier.verify(token)
                if user is not None:
                    return user
            raise status.unauthorized()
        if self.anonymous_admin:
            return auth.User("system:anonymous", frozenset({"system:masters"}))
        raise status.unauthorized()
