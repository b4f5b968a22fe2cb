"""The outer side of the Token Exchange Service: manage a lab's users and log them in.

``nestlab user add|remove|set|list`` act as the lab administrator (the lab-admin client certificate
``nestlab up`` made, in ``<lab dir>/pki``); ``nestlab login`` sends the user's own password and
no certificate. Both go through the lab's VIP, read from the admin kubeconfig, like kubectl does.
The API's refusals come back as messages a user can act on (``user alice exists``), never as
HTTP codes.

The HTTP itself is behind :class:`Transport` (one call: method, path, body), so the CLI is tested
against a fake one; :class:`LabTransport` is the real one, over :class:`~nestlab.api.client.ApiClient`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from nestlab.api import status
from nestlab.api.client import ApiClient, Credentials
from nestlab.errors import NestlabError, UsageError
from nestlab.logins import Login
from nestlab.paths import LabFiles

USERS = "/nestlab/v1/users"
LOGIN = "/nestlab/v1/login"
_INVALID = " is invalid: "


class Transport(Protocol):
    """One request to the lab's API; the decoded answer, or the refusal as ``status.ApiError``."""

    def call(self, method: str, path: str, body: Any = None, *, admin: bool = True) -> dict[str, Any]:
        """``admin``: with the lab-admin certificate; otherwise anonymous (login carries its own)."""
        ...


@dataclass(frozen=True)
class Lab:
    """Where a lab's API is, as the admin kubeconfig says."""

    name: str
    files: LabFiles
    cluster: dict[str, Any]
    """The kubeconfig's cluster entry (server and CA data): no secret, reused in user kubeconfigs."""

    @property
    def server(self) -> str:
        """``https://<vip>:6443``."""
        return str(self.cluster["server"])

    @classmethod
    def named(cls, name: str) -> Lab:
        """Lab ``name``; UsageError when it has no admin kubeconfig (not up yet)."""
        files = LabFiles.named(name)
        try:
            config = yaml.safe_load(files.kubeconfig.read_text(encoding="utf-8"))
            cluster = dict(config["clusters"][0]["cluster"])
            str(cluster["server"])
        except OSError as exc:
            raise UsageError(
                f"lab {name!r} has no kubeconfig ({files.kubeconfig}): is it up? (`nestlab status`)"
            ) from exc
        except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
            raise UsageError(f"{files.kubeconfig} is not a kubeconfig nestlab wrote: {exc!r}") from exc
        return cls(name, files, cluster)


class LabTransport:
    """Requests to a lab's API through its VIP, over the one API client."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def _credentials(self, admin: bool) -> Credentials:
        pki = self.lab.files.pki
        ca = pki / "ca.crt"
        if not admin:
            return Credentials(self.lab.server, ca)
        return Credentials(self.lab.server, ca, None, pki / "admin.crt", pki / "admin.key")

    def call(self, method: str, path: str, body: Any = None, *, admin: bool = True) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            client = ApiClient(self._credentials(admin))
            try:
                return await client.request(method, path, body)
            finally:
                await client.close()

        try:
            return asyncio.run(once())
        except OSError as exc:  # the admin certificate or the CA cannot be read
            raise UsageError(f"cannot use the credentials of lab {self.lab.name}: {exc}") from exc


def _unreachable(exc: status.ApiError) -> NestlabError:
    return NestlabError(f"{exc.message}: is the lab up? (`nestlab status`)")


def _why_invalid(message: str) -> str:
    """``password: is empty`` out of ``User.identity.nestlab.dev "alice" is invalid: password: is empty``."""
    return message.partition(_INVALID)[2] or message


class IdentityClient:
    """The lab's users and logins, with the API's answers turned into user-facing results and errors."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _admin(self, method: str, path: str, body: Any = None, *, user: str = "") -> dict[str, Any]:
        try:
            return self.transport.call(method, path, body, admin=True)
        except status.ApiError as exc:
            if exc.code == 409:
                raise UsageError(f"user {user} exists") from exc
            if exc.code == 404:
                raise UsageError(f"user {user} does not exist (`nestlab user list` shows the users)") from exc
            if exc.code == 422:
                raise UsageError(f"user {user or '(no name)'}: {_why_invalid(exc.message)}") from exc
            if exc.code == 403:
                raise UsageError(f"not allowed: {exc.message}") from exc
            if exc.code == 503:
                raise _unreachable(exc) from exc
            raise NestlabError(f"the lab's API refused: {exc.message} ({exc.code})") from exc

    def add(self, name: str, groups: list[str], password: str) -> dict[str, Any]:
        """Create user ``name`` in ``groups``."""
        body = {"name": name, "groups": groups, "password": password}
        return self._admin("POST", USERS, body, user=name)

    def remove(self, name: str) -> dict[str, Any]:
        """Remove user ``name`` (their tokens stop working at once)."""
        return self._admin("DELETE", f"{USERS}/{name}", user=name)

    def revoke(self, name: str) -> dict[str, Any]:
        """Revoke every token ``name`` holds (they log in again)."""
        return self._admin("PATCH", f"{USERS}/{name}", {"revokeTokens": True}, user=name)

    def set_password(self, name: str, password: str) -> dict[str, Any]:
        """Give ``name`` a new password; the tokens issued before it stop working."""
        return self._admin("PATCH", f"{USERS}/{name}", {"password": password}, user=name)

    def set_groups(self, name: str, groups: list[str]) -> dict[str, Any]:
        """Replace ``name``'s groups (the user record as it is now); the user's tokens keep working
        and carry the new groups at once, since the API server reads them from the store."""
        return self._admin("PATCH", f"{USERS}/{name}", {"groups": groups}, user=name)

    def get(self, name: str) -> dict[str, Any]:
        """User ``name`` (UsageError naming ``nestlab user list`` when it does not exist)."""
        return self._admin("GET", f"{USERS}/{name}", user=name)

    def list(self) -> list[dict[str, Any]]:
        """Every user."""
        items = self._admin("GET", USERS).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def login(self, name: str, password: str, ttl: int | None = None) -> Login:
        """A token for ``name`` (UsageError when the name or password is wrong, without saying which)."""
        body: dict[str, Any] = {"username": name, "password": password}
        if ttl is not None:
            body["expirationSeconds"] = ttl
        try:
            answer = self.transport.call("POST", LOGIN, body, admin=False)
        except status.ApiError as exc:
            if exc.code == 401:
                raise UsageError(f"login as {name} failed: wrong user name or password") from exc
            if exc.code == 400:
                raise UsageError(f"login as {name} refused: {exc.message}") from exc
            if exc.code == 503 and "unreachable" in exc.message:
                raise _unreachable(exc) from exc
            raise NestlabError(f"login as {name} failed: {exc.message} ({exc.code})") from exc
        token, expiration = answer.get("token"), answer.get("expirationTimestamp")
        if not isinstance(token, str) or not isinstance(expiration, str):
            raise NestlabError(f"the lab's API answered the login with no token: {str(answer)[:200]}")
        return Login(name, token, expiration)


def lab_client(lab: Lab) -> IdentityClient:
    """The identity client of ``lab`` over its VIP."""
    return IdentityClient(LabTransport(lab))
