"""Namespace lifecycle: the system namespaces every cluster has, and termination.

Deleting a namespace (a vSphere Namespace, in the lab) marks it Terminating, which refuses new
content; then everything in it is deleted (pods gracefully, through their node agents) and the
namespace goes last. The work survives an API server restart: any server resumes it at startup.

Every API server that receives the delete (and every one that starts while it is pending) sweeps,
so several sweepers can follow one termination. Each is bound to the namespace's uid: once the
name belongs to a newer namespace (deleted and created again), an old sweeper stops instead of
emptying or removing the new one, and the final removal is a compare on the revision it checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nestlab.api import status
from nestlab.api.resources import ALL, NAMESPACES, Resource
from nestlab.api.store import Obj, Store, now

log = logging.getLogger(__name__)
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
UNDELETABLE = ("default", "kube-system", "kube-public")
_POLL = 0.5  # seconds between sweeps while a namespace's content is going away

Create = Callable[[Resource, str, Any], Awaitable[Obj]]
Delete = Callable[[Resource, str, str, Obj], Awaitable[Obj]]


class NamespaceLifecycle:
    """Creates system namespaces and empties terminating ones (one sweeper per namespace uid)."""

    def __init__(self, store: Store, create: Create, delete: Delete) -> None:
        self.store = store
        self._create = create
        self._delete = delete
        self._sweepers: dict[str, asyncio.Task[None]] = {}

    async def terminate(self, ns: Obj) -> Obj:
        """Mark ``ns`` Terminating (403 for the system namespaces) and start emptying it."""
        name = ns["metadata"]["name"]
        if name in UNDELETABLE:
            raise status.admission_forbidden("namespaces", "", name, "this namespace may not be deleted")
        if not ns["metadata"].get("deletionTimestamp"):
            ns["metadata"]["deletionTimestamp"] = now()
            ns["status"] = {"phase": "Terminating"}
            ns = await self.store.replace(NAMESPACES, "", ns, int(ns["metadata"]["resourceVersion"]))
        if self.store.dry_run:
            return ns
        uid = str(ns["metadata"].get("uid", ""))
        if uid not in self._sweepers or self._sweepers[uid].done():
            task = asyncio.get_running_loop().create_task(self._sweep(name, uid))
            self._sweepers[uid] = task
            task.add_done_callback(self._forget)
        return ns

    def _forget(self, task: asyncio.Task[None]) -> None:
        for uid, sweeper in list(self._sweepers.items()):
            if sweeper is task:
                del self._sweepers[uid]

    async def _ours(self, name: str, uid: str) -> Obj | None:
        """The stored namespace ``name`` if it is still the terminating one with ``uid``, else None."""
        try:
            ns = await self.store.get(NAMESPACES, "", name)
        except status.ApiError as exc:
            if exc.code == 404:
                return None
            raise
        return ns if still_terminating(ns, uid) else None

    async def _sweep(self, name: str, uid: str) -> None:
        """Delete the content of namespace ``name`` (uid ``uid``) pass after pass, then the namespace.

        Each pass lists first and checks the namespace after: what it listed was in the
        terminating namespace, never in a newer one of the same name; each deletion carries the
        object's uid as a precondition, so a same-named successor is left alone."""
        try:
            while True:
                found: list[tuple[Resource, Obj]] = []
                for resource in (r for r in ALL if r.namespaced):
                    items, _ = await self.store.list(resource, name, lambda _obj: True)
                    found.extend((resource, item) for item in items)
                ns = await self._ours(name, uid)
                if ns is None:
                    return  # gone (another sweeper finished), or the name belongs to a new namespace
                if not found:
                    try:  # only if unchanged since checked: a compare on its mod revision
                        await self.store.remove(NAMESPACES, "", ns)
                    except status.ApiError as exc:
                        if exc.code != 409:
                            raise
                    else:
                        return
                for resource, item in found:
                    options = {"preconditions": {"uid": item["metadata"].get("uid")}}
                    try:
                        await self._delete(resource, name, item["metadata"]["name"], options)
                    except status.ApiError as exc:
                        if exc.code not in (404, 409):
                            raise
                await asyncio.sleep(_POLL)
        except status.ApiError as exc:
            if exc.code != 404:
                log.warning("namespace %s: cleanup stopped: %s (resumes on restart)", name, exc.message)

    async def bootstrap(self) -> None:
        """Create the system namespaces (AlreadyExists is fine: several servers start at once),
        then resume terminations a previous server left unfinished."""
        for name in SYSTEM_NAMESPACES:
            try:
                await self._create(NAMESPACES, "", {"metadata": {"name": name}})
            except status.ApiError as exc:
                if exc.code != 409:
                    raise
        terminating, _ = await self.store.list(
            NAMESPACES, "", lambda obj: bool(obj["metadata"].get("deletionTimestamp"))
        )
        for ns in terminating:
            await self.terminate(ns)

    async def close(self) -> None:
        """Stop the sweepers (another server, or this one restarted, resumes them)."""
        tasks = list(self._sweepers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def still_terminating(ns: Obj, uid: str) -> bool:
    """Whether ``ns`` is the namespace with ``uid`` and is being deleted (what a sweeper may remove)."""
    meta = ns.get("metadata") or {}
    return meta.get("uid") == uid and bool(meta.get("deletionTimestamp"))
