"""A small async client of the Kubernetes API, for nestlab's own controllers and node agents.

The one place outside the server that speaks HTTP to an API server. Refusals come back as the
same :class:`~nestlab.api.status.ApiError` the server raised (code, reason, message), so callers
branch on ``exc.code == 409`` exactly as they would against kube-apiserver; connection failures
are ``ApiError(503)`` so "retry later" is one case.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from nestlab.api import status
from nestlab.api.resources import Resource

Obj = dict[str, Any]
_TIMEOUT = 10.0  # seconds per request; watches are bounded by their own timeoutSeconds
# TCP keepalive on every connection: a peer that vanished (VIP moved, host powered off) is found
# dead after IDLE + INTERVAL * COUNT = 11 s of silence instead of the kernel's 2 hours.
_KEEPALIVE_IDLE, _KEEPALIVE_INTERVAL, _KEEPALIVE_COUNT = 5, 2, 3


def _keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """The socket aiohttp connects with, with TCP keepalive probes switched on (Linux options)."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", _KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", _KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):  # Linux; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    return sock


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are."""

    server: str
    """``https://host:6443``."""
    ca: Path | None = None
    token: str | None = None
    cert: Path | None = None
    key: Path | None = None


def path_of(resource: Resource, namespace: str = "", name: str = "", subresource: str = "") -> str:
    """The URL path of a collection, an object or a subresource."""
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
    if resource.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    parts = [base, resource.plural, name, subresource]
    return "/".join(p for p in parts if p)


def _error(code: int, payload: Any, method: str, path: str) -> status.ApiError:
    if isinstance(payload, dict) and payload.get("kind") == "Status":
        return status.ApiError(code, str(payload.get("reason", "")), str(payload.get("message", "")))
    return status.ApiError(code, "Unknown", f"{method} {path} answered {code}: {str(payload)[:200]}")


class ApiClient:
    """Async API client over one aiohttp session; ``close()`` it when done."""

    def __init__(self, credentials: Credentials, timeout: float = _TIMEOUT) -> None:
        self.credentials = credentials
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            creds = self.credentials
            context: ssl.SSLContext | bool = True
            if creds.server.startswith("https://"):
                context = ssl.create_default_context(cafile=None if creds.ca is None else str(creds.ca))
                if creds.cert is not None:
                    context.load_cert_chain(str(creds.cert), None if creds.key is None else str(creds.key))
            headers = {"Authorization": f"Bearer {creds.token}"} if creds.token else {}
            connector = aiohttp.TCPConnector(ssl=context, socket_factory=_keepalive_socket)
            self._session = aiohttp.ClientSession(base_url=creds.server, headers=headers, connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Obj:
        """One request; the decoded answer, or the server's refusal as ApiError."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self._http().request(
                method, path, data=data, headers=headers, params=query,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:  # fmt: skip
                raw = await response.read()
                code = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise status.unavailable(f"API server {self.credentials.server} unreachable: {exc!r}") from exc
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = raw.decode(errors="replace")
        if code >= 400:
            raise _error(code, payload, method, path)
        return payload if isinstance(payload, dict) else {"raw": payload}

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        """One object."""
        return await self.request("GET", path_of(resource, namespace, name))

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj:
        """A list (all namespaces when ``namespace`` is empty)."""
        query = {k: v for k, v in (("labelSelector", labels), ("fieldSelector", fields)) if v}
        return await self.request("GET", path_of(resource, namespace), query=query)

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        """POST a new object."""
        return await self.request("POST", path_of(resource, namespace), obj)

    async def replace(self, resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        """PUT (compare-and-swap when ``obj`` carries a resourceVersion)."""
        name = obj["metadata"]["name"]
        return await self.request("PUT", path_of(resource, namespace, name, subresource), obj)

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        """JSON merge patch."""
        path = path_of(resource, namespace, name, subresource)
        return await self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    async def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        grace: int | None = None,
        *,
        propagation: str | None = None,
        uid: str | None = None,
    ) -> Obj:
        """DELETE (``grace=0`` is how a node agent confirms a pod is gone).

        ``propagation`` is DeleteOptions.propagationPolicy (Background, Foreground, Orphan);
        ``uid`` a precondition (409 when the name now belongs to another object), as the garbage
        collector sends them.
        """
        query = {} if grace is None else {"gracePeriodSeconds": str(grace)}
        options: Obj = {}
        if propagation is not None:
            options["propagationPolicy"] = propagation
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        if options:
            options.update(kind="DeleteOptions", apiVersion="v1")
        body = options or None
        return await self.request("DELETE", path_of(resource, namespace, name), body, query=query)

    async def bind(self, namespace: str, pod: str, node: str) -> Obj:
        """Assign a pod to a node (pods/binding)."""
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        return await self.request("POST", f"/api/v1/namespaces/{namespace}/pods/{pod}/binding", binding)

    async def watch(
        self,
        resource: Resource,
        namespace: str = "",
        *,
        since: str = "",
        fields: str = "",
        labels: str = "",
        timeout: int = 300,
        bookmarks: bool = False,
        idle: float | None = None,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) pairs from a watch; raises ApiError on refusal or an ERROR event.

        ``timeout`` is the watch's ``timeoutSeconds``: the server ends the stream cleanly then.
        ``bookmarks`` asks for ``BOOKMARK`` events (``allowWatchBookmarks=true``): they carry only
        a resourceVersion and come even when nothing changes, which is what lets ``idle`` (the
        longest silence, in seconds, tolerated between two lines) tell a quiet watch from a dead
        or half-open connection. A silence longer than ``idle`` ends the watch with
        ``ApiError(503)``, like any broken connection: resume from the last resourceVersion seen.
        """
        query = {"watch": "1", "resourceVersion": since, "timeoutSeconds": str(timeout)}
        if fields:
            query["fieldSelector"] = fields
        if labels:
            query["labelSelector"] = labels
        if bookmarks:
            query["allowWatchBookmarks"] = "true"
        path = path_of(resource, namespace)
        limits = aiohttp.ClientTimeout(
            total=timeout + self._timeout, sock_connect=self._timeout, sock_read=idle
        )
        try:
            async with self._http().get(path, params=query, timeout=limits) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.json(content_type=None), "GET", path)
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        obj = event.get("object") or {}
                        raise _error(int(obj.get("code", 500)), obj, "WATCH", path)
                    yield event["type"], event["object"]
        except TimeoutError as exc:
            silence = f"no data for {idle:g}s" if idle is not None else "timed out"
            raise status.unavailable(
                f"watch of {path} went silent ({silence}): connection presumed dead"
            ) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise status.unavailable(f"watch of {path} broke: {exc!r}") from exc
