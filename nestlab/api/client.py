"""A small async client of the Kubernetes API, for nestlab's own controllers and node agents.

The one place outside the server that speaks HTTP to an API server. Refusals come back as the
same :class:`~nestlab.api.status.ApiError` the server raised (code, reason, message), so callers
branch on ``exc.code == 409`` exactly as they would against kube-apiserver; connection failures
are ``ApiError(503)`` so "retry later" is one case.

Long-lived clients talk to the API through a VIP that can move (keepalived) or a proxy that can
stop forwarding without closing anything (a half-open path). Three things keep them from hanging
on such a path: TCP keepalive on every socket (a peer that answers with RST or nothing at all);
a watch's idle timeout (the server sends BOOKMARKs when a watch is quiet, so silence means a dead
path even when the kernel's keepalive probes are still answered, by a relay or a stale proxy);
and, once a watch finds its path dead, dropping every pooled connection of the client, as
kubelet's ``closeAllConns`` does, so the next requests and watches dial the VIP afresh instead of
each finding its own dead socket one timeout at a time.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from nestlab.api import jsoncodec, status
from nestlab.api.resources import Resource

log = logging.getLogger(__name__)
Obj = dict[str, Any]
_TIMEOUT = 10.0  # seconds per request; watches are bounded by their own timeoutSeconds
WATCH_IDLE_S = 8.0
"""Default longest silence on a watch with bookmarks before its connection is presumed dead: four
of the server's bookmark intervals (nestlab.api.reads.BOOKMARK_EVERY_S, 2 s), so one late bookmark
from a loaded server is not mistaken for a dead path, and a dead one is found within seconds."""
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


def watch_timeout(minimum: int, draw: float | None = None) -> int:
    """A watch's timeoutSeconds: between ``minimum`` and twice it, at random (client-go's reflector).

    Spreads the ends of the watches of many clients (every host agent, every informer) started
    at the same moment, so they do not all come back to the API server in the same second.
    ``draw`` (in [0, 1)) replaces the random number in tests.
    """
    share = random.random() if draw is None else draw  # noqa: S311 - spreading load, not a secret
    return int(minimum * (1.0 + share))


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
        self._streams: set[aiohttp.StreamReader] = set()  # bodies of the watches open on the pool

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

    async def _drop_connections(self, used: aiohttp.ClientSession | None, why: str) -> None:
        """Close every connection of the pool ``used`` belonged to (kubelet's ``closeAllConns``).

        A path found dead by one request or watch is the path of every connection opened the same
        way (through the same VIP): the watches still on the pool end at once (their callers resume
        from their last resourceVersion) and the next requests dial again. Nothing happens when the
        pool was already replaced since ``used`` was taken from it (another watch saw it first).
        """
        if used is None or used is not self._session:
            return
        log.warning("%s: closing every connection to %s and dialling again", why, self.credentials.server)
        self._session = None
        streams, self._streams = self._streams, set()
        for stream in streams:  # closing a connection does not wake a reader waiting on its body
            stream.set_exception(aiohttp.ClientConnectionError(f"connection dropped: {why}"))
        await used.close()

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
        session = self._http()
        try:
            async with session.request(
                method, path, data=data, headers=headers, params=query,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:  # fmt: skip
                raw = await response.read()
                code = response.status
        except TimeoutError as exc:
            # The pool stays: a slow answer (etcd electing, a long queue) is not a dead path; a
            # watch's silence despite bookmarks is, and drops the pool (see watch()).
            unsure = "" if method in ("GET", "HEAD") else " (the change may or may not have been stored)"
            raise status.unavailable(
                f"API server {self.credentials.server} did not answer {method} {path}"
                f" within {self._timeout:g}s{unsure}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise status.unavailable(f"API server {self.credentials.server} unreachable: {exc!r}") from exc
        try:
            payload = jsoncodec.loads(raw) if raw else {}
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
        Pass :func:`watch_timeout` of a minimum so many clients' watches do not end together.
        ``bookmarks`` asks for ``BOOKMARK`` events (``allowWatchBookmarks=true``): they carry only
        a resourceVersion and come even when nothing changes, which is what lets ``idle`` (the
        longest silence, in seconds, tolerated between two lines) tell a quiet watch from a dead
        or half-open connection. A silence longer than ``idle`` ends the watch with
        ``ApiError(503)``, like any broken connection, and closes every pooled connection of this
        client (the path is presumed dead for all of them): resume from the last resourceVersion
        seen (a BOOKMARK's included); list again only on 410 Gone.
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
        session = self._http()
        try:
            async with session.get(path, params=query, timeout=limits) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.json(content_type=None), "GET", path)
                self._streams.add(response.content)
                try:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = jsoncodec.loads(line)
                        if event.get("type") == "ERROR":
                            obj = event.get("object") or {}
                            raise _error(int(obj.get("code", 500)), obj, "WATCH", path)
                        yield event["type"], event["object"]
                finally:
                    self._streams.discard(response.content)
        except TimeoutError as exc:
            silence = f"no data for {idle:g}s" if idle is not None else "timed out"
            await self._drop_connections(session, f"watch of {path} went silent ({silence})")
            raise status.unavailable(
                f"watch of {path} went silent ({silence}): connection presumed dead"
            ) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise status.unavailable(f"watch of {path} broke: {exc!r}") from exc
