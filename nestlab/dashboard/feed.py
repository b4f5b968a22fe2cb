"""The watches that keep one session's store current: list, then watch from that version, resumed.

Like an informer (:mod:`nestlab.controller.informer`) but for a reader that may be refused: a 403
on a lab-wide list is recorded in the store (the page says what this user may not see) and that
watch stops; a namespace page then asks for namespaced watches of that namespace instead, which
is what a user with rights in one vSphere Namespace can read. A 401 means the session's token
expired: the feed stops and the session ends. Anything else (503 from a broken connection, 410
when the version is too old) resumes the watch from the last version seen after a short pause;
only a 410 (that version was compacted away) lists again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nestlab.api import status
from nestlab.api.client import WATCH_IDLE_S, ApiClient, watch_timeout
from nestlab.api.kinds.base import Resource
from nestlab.api.resources import EVENTS, LEASES, NAMESPACES, NODES, PODS, QUOTAS
from nestlab.dashboard.store import Store

log = logging.getLogger(__name__)

RESOURCES: dict[str, Resource] = {
    "nodes": NODES,
    "pods": PODS,
    "namespaces": NAMESPACES,
    "resourcequotas": QUOTAS,
    "events": EVENTS,
    "leases": LEASES,
}
NAMESPACED = ("pods", "resourcequotas", "events")
"""What a namespace page needs when the lab-wide list was refused."""
WATCH_TIMEOUT_S = 240  # the server ends a watch cleanly then; we resume from the last version
IDLE_S = WATCH_IDLE_S  # with bookmarks, a silent watch is a dead connection (the server bookmarks sooner)
RETRY_S = 1.0  # pause before resuming a broken watch: fast enough for a 10 s target


class Feed:
    """The watches of one reader; ``start()`` them, ``close()`` them."""

    def __init__(self, client: ApiClient, store: Store) -> None:
        self.client = client
        self.store = store
        self.expired = False
        """The API answered 401: the credentials no longer work."""
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Lab-wide watches of every kind the views need."""
        for kind in RESOURCES:
            self._spawn(kind, "")

    def follow_namespace(self, namespace: str) -> None:
        """Namespaced watches for ``namespace``, for each kind whose lab-wide list was refused."""
        for kind in NAMESPACED:
            if kind in self.store.refused:
                self._spawn(kind, namespace)

    def _spawn(self, kind: str, namespace: str) -> None:
        scope = f"{kind}@{namespace}" if namespace else kind
        if scope not in self._tasks:
            self._tasks[scope] = asyncio.create_task(self._run(kind, namespace), name=f"dashboard {scope}")

    async def _run(self, kind: str, namespace: str) -> None:
        resource, scope = RESOURCES[kind], f"{kind}@{namespace}" if namespace else kind
        since = ""
        while True:
            try:
                if not since:
                    listed = await self.client.list(resource, namespace)
                    self.store.replace(kind, list(listed.get("items") or []), namespace)
                    since = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                while True:
                    async for event_type, obj in self.client.watch(
                        resource,
                        namespace,
                        since=since,
                        timeout=watch_timeout(WATCH_TIMEOUT_S),
                        bookmarks=True,
                        idle=IDLE_S,
                    ):
                        since = str((obj.get("metadata") or {}).get("resourceVersion") or since)
                        self.store.apply(kind, event_type, obj)
            except status.ApiError as exc:
                if exc.code == 403:
                    self.store.refuse(scope, exc.message)
                    return
                if exc.code == 401:
                    self.expired = True
                    self.store.refuse(scope, "your login expired: log in again")
                    return
                if exc.code == 410:
                    since = ""
                log.info(
                    "dashboard watch of %s: %s; %s",
                    scope,
                    exc.message,
                    "resuming" if since else "listing again",
                )
            await asyncio.sleep(RETRY_S)

    async def close(self) -> None:
        """Stop every watch and the client's connections."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.client.close()
