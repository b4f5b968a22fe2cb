"""Shared informers: one list+watch per resource kind, a local cache, and change handlers.

Controllers do not poll the API server. As in client-go, one :class:`Informer` per kind (shared by
every controller through :class:`InformerFactory`) lists the kind once, then watches from the
list's resourceVersion, keeps a cache keyed ``namespace/name`` and calls the registered handlers
on add/update/delete. Handlers only enqueue keys (see :mod:`nestlab.controller.workqueue`);
the controller's ``sync(key)`` then reads the caches.

Failure handling, the reason this module exists rather than a loop of GETs:

- a watch that ends (``timeoutSeconds`` reached, server restarted, connection reset) is resumed
  from the last resourceVersion seen, so nothing is missed and nothing is listed again;
- a 410 Gone (the resourceVersion was compacted) makes the informer list again and replay the
  difference to the handlers (adds, updates and deletes of what changed while it was blind);
- a dead or half-open connection (API VIP moved, a proxy that stopped forwarding) is noticed by
  the watch's read timeout (``idle`` seconds without a line; the server sends ``BOOKMARK`` events
  when asked, so a quiet kind does not look dead) and by TCP keepalive, then handled as above.

A controller module on this base (the whole contract; :mod:`nestlab.controller.manager` builds it
afresh on every leadership term, starts the informers, waits for their first lists, then runs
``sync`` through :func:`~nestlab.controller.workqueue.run_workers`)::

    class FooController:
        name = "foo"      # queue name, logs
        workers = 2       # keys synced concurrently (never the same key twice at once)

        def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
            self.client = client
            self.queue = WorkQueue(self.name)
            self.foos = informers.informer(FOOS)
            self.pods = informers.informer(PODS)
            self.foos.add_handler(EventHandler.enqueue(self.queue))  # every change: key of the Foo
            self.pods.add_handler(enqueue_controller(self.queue, "Foo"))  # pod change: key of its owner

        async def sync(self, key: str) -> None:
            foo = self.foos.get(key)
            if foo is None:
                return  # deleted: the garbage collector removes its pods
            pods = self.pods.list(split_key(key)[0])
            ...  # compare, create/delete through self.client; raise to be retried with backoff

    CONTROLLERS = [FooController]  # main.py's wiring: a plain list of such classes
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from nestlab.api import status
from nestlab.api.client import WATCH_IDLE_S, ApiClient, watch_timeout
from nestlab.api.resources import Resource
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]

WATCH_SECONDS = 240
"""Shortest timeoutSeconds of a watch request; each one asks for between this and twice it, at
random (:func:`~nestlab.api.client.watch_timeout`, as upstream's reflector does with 5 minutes), so
the informers of every process do not come back together. Kept modest so a watch the read timeout
cannot catch (a server that keeps the connection but stops sending) still ends within minutes."""
IDLE_SECONDS = WATCH_IDLE_S
"""Longest silence tolerated on a watch before the connection is presumed dead: four of the
server's BOOKMARK intervals (2 s), so a loaded server is not mistaken for a dead one. Against a
server that sends no bookmarks a quiet watch is merely resumed this often (one request)."""
BACKOFF_MAX = 5.0
"""Longest wait between two failed attempts to list or watch (doubling from 0.5 s, with jitter).
Upstream's reflector waits up to 30 s; here a failover (VIP move, etcd election) lasts seconds and
the next pod must start as fast as before it, so every informer is back within ~5 s of the API.
A retry during an outage is one refused connection or one fast 503: cheap even for every informer."""


def key_of(obj: Obj) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects), client-go's MetaNamespaceKey."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    return f"{namespace}/{meta.get('name', '')}" if namespace else str(meta.get("name", ""))


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a key (namespace "" for cluster-scoped)."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any (at most one is allowed)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


@dataclass(frozen=True)
class EventHandler:
    """What to call when an object is added, updated or deleted (each optional, all synchronous).

    Handlers run inside the informer's loop: keep them to enqueuing keys.
    """

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    """Called with (old, new)."""
    on_delete: Callable[[Obj], None] | None = None
    """Called with the last state known (possibly stale when the delete was seen only by a relist)."""

    @staticmethod
    def enqueue(queue: WorkQueue) -> EventHandler:
        """A handler adding the changed object's own key to ``queue`` on every event."""
        return EventHandler(
            on_add=lambda obj: queue.add(key_of(obj)),
            on_update=lambda _old, new: queue.add(key_of(new)),
            on_delete=lambda obj: queue.add(key_of(obj)),
        )


def enqueue_controller(queue: WorkQueue, kind: str) -> EventHandler:
    """A handler adding the key of the controller (of ``kind``) owning a changed object.

    On update both the old and the new controller are enqueued, so a pod moving from one owner
    to another (or released) wakes both, as upstream's ``updatePod`` does.
    """

    def owner_key(obj: Obj) -> str | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != kind:
            return None
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        return f"{namespace}/{ref.get('name', '')}" if namespace else str(ref.get("name", ""))

    def add(obj: Obj) -> None:
        if (found := owner_key(obj)) is not None:
            queue.add(found)

    def update(old: Obj, new: Obj) -> None:
        for found in {owner_key(old), owner_key(new)}:
            if found is not None:
                queue.add(found)

    return EventHandler(on_add=add, on_update=update, on_delete=add)


class Informer:
    """List+watch of one kind into a cache; ``run()`` until cancelled."""

    def __init__(
        self,
        client: ApiClient,
        resource: Resource,
        namespace: str = "",
        *,
        watch_seconds: int = WATCH_SECONDS,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.watch_seconds = watch_seconds
        self.idle = idle
        self.synced = asyncio.Event()
        """Set once the first list is in the cache (wait for it before trusting ``list``)."""
        self.resource_version = ""
        """The last resourceVersion seen (list, event or bookmark): where a resumed watch starts."""
        self._cache: dict[str, Obj] = {}
        self._handlers: list[EventHandler] = []
        self._received = 0  # watch events and bookmarks so far: progress resets the backoff

    # -- reading the cache -------------------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        """The cached object at ``namespace/name`` (treat it as read-only: copy before editing)."""
        return self._cache.get(key)

    def list(self, namespace: str = "") -> list[Obj]:
        """Cached objects (of ``namespace`` when given), read-only like ``get``."""
        if not namespace:
            return list(self._cache.values())
        prefix = namespace + "/"
        return [obj for key, obj in self._cache.items() if key.startswith(prefix)]

    def add_handler(self, handler: EventHandler) -> None:
        """Register ``handler``; objects already cached are replayed to it as adds."""
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in list(self._cache.values()):
                handler.on_add(obj)

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """List, then watch and resume for ever (until cancelled); never raises but CancelledError.

        A watch that ends or breaks is resumed from the last resourceVersion; 410 Gone lists
        again; other failures back off (0.5 s doubling to BACKOFF_MAX, reset by any progress).
        """
        relist, failures = True, 0
        while True:
            seen = self._received
            try:
                if relist:
                    await self._relist()
                    relist = False
                await self._watch()
                failures = 0
                continue
            except status.ApiError as exc:
                if exc.code == 410:
                    log.info(
                        "%s: resourceVersion %s expired, listing again",
                        self.resource.plural,
                        self.resource_version,
                    )
                    relist = True
                    continue
                why = exc.message
            except Exception as exc:  # a bug or a malformed object must not end the informer for good
                log.exception("%s: list/watch failed", self.resource.plural)
                why = repr(exc)
            failures = 1 if self._received != seen else failures + 1
            delay = min(BACKOFF_MAX, 0.5 * 2 ** min(failures - 1, 10)) * random.uniform(0.8, 1.2)  # noqa: S311
            log.warning(
                "%s: %s (retrying in %.1fs from resourceVersion %s)",
                self.resource.plural, why, delay, self.resource_version or "-",
            )  # fmt: skip
            await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listed = await self.client.list(self.resource, self.namespace)
        fresh = {key_of(obj): obj for obj in listed.get("items") or []}
        for obj in fresh.values():
            obj.setdefault("apiVersion", self.resource.group_version)
            obj.setdefault("kind", self.resource.kind)
        old = self._cache
        self._cache = dict(fresh)
        self.resource_version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._dispatch("ADDED", None, obj)
            elif _rv(before) != _rv(obj):
                self._dispatch("MODIFIED", before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._dispatch("DELETED", obj, obj)
        self.synced.set()

    async def _watch(self) -> None:
        events = self.client.watch(
            self.resource,
            self.namespace,
            since=self.resource_version,
            timeout=watch_timeout(self.watch_seconds),
            bookmarks=True,
            idle=self.idle,
        )
        async for kind, obj in events:
            self._received += 1
            version = _rv(obj)
            if kind == "BOOKMARK":
                self.resource_version = version or self.resource_version
                continue
            self.apply(kind, obj)

    def apply(self, kind: str, obj: Obj) -> None:
        """Apply one watch event to the cache and call the handlers (public for tests and fakes)."""
        key = key_of(obj)
        version = _rv(obj)
        if version:
            self.resource_version = version
        before = self._cache.get(key)
        if kind == "DELETED":
            self._cache.pop(key, None)
            self._dispatch("DELETED", before, obj)
            return
        obj.setdefault("apiVersion", self.resource.group_version)
        obj.setdefault("kind", self.resource.kind)
        self._cache[key] = obj
        self._dispatch("ADDED" if before is None else "MODIFIED", before, obj)

    def _dispatch(self, kind: str, old: Obj | None, new: Obj) -> None:
        for handler in self._handlers:
            try:
                if kind == "ADDED" and handler.on_add is not None:
                    handler.on_add(new)
                elif kind == "MODIFIED" and handler.on_update is not None:
                    handler.on_update(old or new, new)
                elif kind == "DELETED" and handler.on_delete is not None:
                    handler.on_delete(new)
            except Exception:
                log.exception("%s: a %s handler failed on %s", self.resource.plural, kind, key_of(new))


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class InformerFactory:
    """One informer per kind, shared by all controllers of a leadership term."""

    def __init__(
        self, client: ApiClient, *, watch_seconds: int = WATCH_SECONDS, idle: float = IDLE_SECONDS
    ) -> None:
        self.client = client
        self.watch_seconds = watch_seconds
        self.idle = idle
        self._informers: dict[Resource, Informer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def informer(self, resource: Resource) -> Informer:
        """The shared informer of ``resource`` (created on first request, all namespaces)."""
        if resource not in self._informers:
            self._informers[resource] = Informer(
                self.client, resource, watch_seconds=self.watch_seconds, idle=self.idle
            )
        return self._informers[resource]

    def informers(self) -> Iterable[Informer]:
        """Every informer requested so far."""
        return self._informers.values()

    def start(self) -> None:
        """Start every informer not yet running (call after all controllers registered)."""
        running = len(self._tasks)
        for informer in list(self._informers.values())[running:]:
            task = asyncio.get_running_loop().create_task(
                informer.run(), name=f"informer-{informer.resource.plural}"
            )
            self._tasks.append(task)

    async def wait_synced(self) -> None:
        """Until every informer has its first list in cache."""
        await asyncio.gather(*(informer.synced.wait() for informer in self._informers.values()))

    async def stop(self) -> None:
        """Cancel every informer and wait for them to end."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class Controller(Protocol):
    """What the manager needs of a controller (see the module docstring for an example)."""

    name: str
    workers: int
    queue: WorkQueue

    async def sync(self, key: str) -> None:
        """Make the world match the desired state of the object at ``key``."""


ControllerFactory = Callable[[ApiClient, InformerFactory], Controller]
"""A controller class (or any callable) building one from the client and the shared informers."""
