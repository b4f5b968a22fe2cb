"""The garbage collector: dependents follow their owners out, as kube-controller-manager's does.

Objects name their owners in ``metadata.ownerReferences``; the API server only marks deletions
(finalizers ``foregroundDeletion`` / ``orphan`` from DeleteOptions.propagationPolicy), and this
controller does the rest:

- background (the default): once every owner of an object is gone (absent, or its name now
  belongs to an object with another uid), the object is deleted;
- foreground: an owner with ``deletionTimestamp`` and the ``foregroundDeletion`` finalizer has its
  dependents deleted (foreground again when they have dependents of their own); once no dependent
  with ``blockOwnerDeletion`` is left, the finalizer is removed and the server deletes the owner;
- orphan: an owner with the ``orphan`` finalizer has its ownerReference removed from every
  dependent, then the finalizer, so the dependents stay.

An object with a live owner besides gone or deleting ones only loses the references to the latter.
The graph (owner uid -> dependents) is built from the shared informers of :data:`MONITORED`;
an owner the caches do not show is confirmed absent with a live GET before anything is deleted.
:func:`decide` is the pure decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nestlab.api import resources, status
from nestlab.api.client import ApiClient
from nestlab.api.resources import Resource
from nestlab.controller.informer import EventHandler, Informer, InformerFactory, key_of, split_key
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"
MONITORED: tuple[Resource, ...] = (
    resources.PODS, resources.REPLICASETS, resources.DEPLOYMENTS, resources.REPLICATION_CONTROLLERS,
    resources.STATEFULSETS, resources.CONTROLLER_REVISIONS, resources.JOBS, resources.CRONJOBS,
    resources.PDBS,
)  # fmt: skip
"""Kinds whose objects may be owners or dependents (upstream watches every deletable kind)."""

SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"


def classify(ref: Obj, owner: Obj | None) -> str:
    """An owner reference's state: ``dangling`` (owner absent or another uid), ``waiting`` (owner
    deleting its dependents first: foreground), else ``solid``."""
    meta = (owner or {}).get("metadata") or {}
    if owner is None or meta.get("uid") != ref.get("uid"):
        return DANGLING
    if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
        return WAITING
    return SOLID


@dataclass(frozen=True)
class Decision:
    """What to do with one object whose owners were looked at."""

    action: str
    """``keep``, ``drop-refs`` (remove the ``uids`` references) or ``delete``."""
    uids: tuple[str, ...] = ()
    policy: str = ""
    """propagationPolicy of the delete: Background, Foreground or Orphan."""


def decide(obj: Obj, states: dict[str, str], has_dependents: bool) -> Decision:
    """Upstream attemptToDeleteItem for ``obj`` given each owner uid's state (see :func:`classify`)."""
    meta = obj.get("metadata") or {}
    if not states:
        return Decision("keep")
    solid = [uid for uid, state in states.items() if state == SOLID]
    gone = tuple(uid for uid, state in states.items() if state != SOLID)
    if solid:
        return Decision("drop-refs", gone) if gone else Decision("keep")
    waiting = any(state == WAITING for state in states.values())
    if waiting and has_dependents:
        return Decision("delete", policy="Foreground")
    finalizers = meta.get("finalizers") or []
    if ORPHAN in finalizers:
        return Decision("delete", policy="Orphan")
    if FOREGROUND in finalizers:
        return Decision("delete", policy="Foreground")
    return Decision("delete", policy="Background")


def blocking(dependents: list[Obj], owner_uid: str) -> list[Obj]:
    """Dependents whose reference to ``owner_uid`` has blockOwnerDeletion (they hold up the owner)."""
    out = []
    for obj in dependents:
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        if any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in refs):
            out.append(obj)
    return out


def _resource_of(ref: Obj) -> Resource | None:
    for resource in resources.ALL:
        if resource.group_version == ref.get("apiVersion") and resource.kind == ref.get("kind"):
            return resource
    return None


class GarbageCollector:
    """Deletes orphaned dependents and finishes foreground/orphan deletions."""

    name = "garbagecollector"
    workers = 2

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.informers: dict[str, Informer] = {}
        self.dependents: dict[str, set[str]] = {}
        """owner uid -> queue keys of the objects naming it as owner."""
        self._refs: dict[str, set[str]] = {}
        for resource in MONITORED:
            informer = informers.informer(resource)
            self.informers[resource.plural + "." + resource.group] = informer
            informer.add_handler(self._handler(resource))

    # -- graph ------------------------------------------------------------------------------------------
    @staticmethod
    def _key(resource: Resource, obj: Obj) -> str:
        return f"{resource.plural}.{resource.group}|{key_of(obj)}"

    def _lookup(self, key: str) -> tuple[Informer, str]:
        kind, _, obj_key = key.partition("|")
        return self.informers[kind], obj_key

    def _handler(self, resource: Resource) -> EventHandler:
        def seen(obj: Obj) -> None:
            key = self._key(resource, obj)
            self._index(key, obj)
            self.queue.add(key)
            self._wake_dependents(obj)

        def updated(old: Obj, new: Obj) -> None:
            seen(new)

        def deleted(obj: Obj) -> None:
            key = self._key(resource, obj)
            self._index(key, None)
            self._wake_dependents(obj)
            for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
                for owner_key in self._owner_keys(ref, obj):
                    self.queue.add(owner_key)  # a foreground owner may be waiting for this one

        return EventHandler(seen, updated, deleted)

    def _index(self, key: str, obj: Obj | None) -> None:
        for uid in self._refs.pop(key, set()):
            self.dependents.get(uid, set()).discard(key)
        if obj is None:
            return
        uids = {r.get("uid", "") for r in (obj.get("metadata") or {}).get("ownerReferences") or []}
        self._refs[key] = uids
        for uid in uids:
            self.dependents.setdefault(uid, set()).add(key)

    def _wake_dependents(self, obj: Obj) -> None:
        for key in list(self.dependents.get((obj.get("metadata") or {}).get("uid", ""), ())):
            self.queue.add(key)

    def _owner_keys(self, ref: Obj, dependent: Obj) -> list[str]:
        resource = _resource_of(ref)
        if resource is None:
            return []
        namespace = (dependent.get("metadata") or {}).get("namespace", "") if resource.namespaced else ""
        name = ref.get("name", "")
        return [f"{resource.plural}.{resource.group}|{f'{namespace}/{name}' if namespace else name}"]

    def _dependents_of(self, uid: str) -> list[tuple[str, Obj]]:
        found = []
        for key in list(self.dependents.get(uid, ())):
            informer, obj_key = self._lookup(key)
            obj = informer.get(obj_key)
            if obj is not None:
                found.append((key, obj))
        return found

    # -- the sync ---------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        """Process the object at ``key``: finish its own foreground/orphan deletion, or collect it."""
        informer, obj_key = self._lookup(key)
        obj = informer.get(obj_key)
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            if ORPHAN in finalizers:
                await self._orphan_dependents(informer.resource, obj)
            elif FOREGROUND in finalizers:
                await self._delete_dependents(informer.resource, obj)
            return  # "being deleted" is a one-way trip: nothing else to decide
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        states = {ref.get("uid", ""): await self._state(ref, obj) for ref in refs}
        decision = decide(obj, states, bool(self.dependents.get(meta.get("uid", ""))))
        resource, (namespace, name) = informer.resource, split_key(obj_key)
        if decision.action == "drop-refs":
            kept = [r for r in refs if r.get("uid") not in decision.uids]
            await self._patch_refs(resource, obj, kept)
        elif decision.action == "delete":
            log.info("deleting %s %s: its owners are gone (%s)", resource.kind, obj_key, decision.policy)
            try:
                uid = meta.get("uid")
                await self.client.delete(resource, namespace, name, propagation=decision.policy, uid=uid)
            except status.ApiError as exc:
                if exc.code not in (404, 409):  # gone already, or the name belongs to a new object
                    raise

    async def _state(self, ref: Obj, dependent: Obj) -> str:
        resource = _resource_of(ref)
        if resource is None:
            what = f"{ref.get('apiVersion')} {ref.get('kind')}"
            log.warning(
                "ownerReference to a kind this server does not serve (%s): keeping the dependent", what
            )
            return SOLID
        namespace = (dependent.get("metadata") or {}).get("namespace", "") if resource.namespaced else ""
        cached = self.informers.get(resource.plural + "." + resource.group)
        name = str(ref.get("name", ""))
        owner = cached.get(f"{namespace}/{name}" if namespace else name) if cached is not None else None
        state = classify(ref, owner)
        if state != DANGLING:
            return state
        try:  # the caches may lag: only a live read proves an owner is gone
            owner = await self.client.get(resource, namespace, name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
            owner = None
        return classify(ref, owner)

    async def _patch_refs(self, resource: Resource, obj: Obj, refs: list[Obj]) -> None:
        meta = obj["metadata"]
        patch = {
            "metadata": {"ownerReferences": refs or None, "resourceVersion": meta.get("resourceVersion")}
        }
        try:
            await self.client.patch(resource, meta.get("namespace", ""), meta["name"], patch)
        except status.ApiError as exc:
            if exc.code != 404:
                raise  # 409: changed meanwhile, retried with backoff on the fresh copy

    async def _remove_finalizer(self, resource: Resource, obj: Obj, finalizer: str) -> None:
        meta = obj["metadata"]
        kept = [f for f in meta.get("finalizers") or [] if f != finalizer]
        patch = {"metadata": {"finalizers": kept or None, "resourceVersion": meta.get("resourceVersion")}}
        log.info("removing finalizer %s from %s %s", finalizer, resource.kind, key_of(obj))
        try:
            await self.client.patch(resource, meta.get("namespace", ""), meta["name"], patch)
        except status.ApiError as exc:
            if exc.code != 404:
                raise

    async def _orphan_dependents(self, resource: Resource, owner: Obj) -> None:
        """Orphan propagation: drop the owner from every dependent, then its ``orphan`` finalizer."""
        uid = owner["metadata"].get("uid", "")
        for key, dependent in self._dependents_of(uid):
            dependent_resource = self._lookup(key)[0].resource
            kept = [r for r in dependent["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            await self._patch_refs(dependent_resource, dependent, kept)
        await self._remove_finalizer(resource, owner, ORPHAN)

    async def _delete_dependents(self, resource: Resource, owner: Obj) -> None:
        """Foreground propagation: dependents go first; the finalizer goes once no blocking one is left."""
        uid = owner["metadata"].get("uid", "")
        dependents = self._dependents_of(uid)
        if not blocking([obj for _, obj in dependents], uid):
            await self._remove_finalizer(resource, owner, FOREGROUND)
            return
        for key, _ in dependents:
            self.queue.add(key)  # each is collected by its own sync (its owner is "waiting")
