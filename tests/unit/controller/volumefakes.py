"""Fakes for the provisioner and attacher unit tests: an API that writes into the informers' caches
(merge patches included) and records Events, and an in-memory datastore."""

from __future__ import annotations

import copy
import itertools
from typing import Any, Protocol, cast

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import EVENTS, Resource
from nestlab.controller.informer import InformerFactory
from nestlab.controller.workqueue import WorkQueue
from nestlab.datastore.client import VolumeInfo
from nestlab.datastore.errors import DatastoreError, VolumeConflictError

Obj = dict[str, Any]
_UIDS = itertools.count(1)


def merge(target: Obj, patch: Obj) -> Obj:
    """RFC 7386 merge patch."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Queued(Protocol):
    """A controller as :func:`drain` drives it: its work queue and its sync."""

    queue: WorkQueue

    async def sync(self, key: str) -> None: ...


async def drain(controller: Queued) -> None:
    """Sync every key the controller's queue holds, until it is empty (what its workers would do)."""
    while len(controller.queue):
        key = await controller.queue.get()
        assert key is not None
        try:
            await controller.sync(key)
        finally:
            controller.queue.done(key)


class FakeApi:
    """Writes go straight into the informers (as the watch would bring them back)."""

    def __init__(self) -> None:
        self.informers = InformerFactory(cast(ApiClient, self))
        self.events: list[Obj] = []
        self.writes: list[tuple[str, str, str]] = []  # (verb, plural, name)

    def client(self) -> ApiClient:
        return cast(ApiClient, self)

    def _key(self, resource: Resource, namespace: str, name: str) -> str:
        return f"{namespace}/{name}" if resource.namespaced else name

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        if resource == EVENTS:
            self.events.append(obj)
            return obj
        made = copy.deepcopy(obj)
        meta = made.setdefault("metadata", {})
        if self.informers.informer(resource).get(self._key(resource, namespace, meta["name"])) is not None:
            raise status.ApiError(409, "AlreadyExists", f"{meta['name']} already exists")
        meta.setdefault("uid", f"uid-{next(_UIDS)}")
        if resource.namespaced:
            meta["namespace"] = namespace
        self.writes.append(("create", resource.plural, meta["name"]))
        self.informers.informer(resource).apply("ADDED", made)
        return made

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        found = self.informers.informer(resource).get(self._key(resource, namespace, name))
        if found is None:
            raise status.ApiError(404, "NotFound", f"{name} not found")
        return copy.deepcopy(found)

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        current = await self.get(resource, namespace, name)
        changed = merge(current, patch)
        self.writes.append(("patch" + (f"/{subresource}" if subresource else ""), resource.plural, name))
        self.informers.informer(resource).apply("MODIFIED", changed)
        return changed

    async def delete(
        self, resource: Resource, namespace: str, name: str, grace: int | None = None, **_: Any
    ) -> Obj:
        current = await self.get(resource, namespace, name)
        self.writes.append(("delete", resource.plural, name))
        self.informers.informer(resource).apply("DELETED", current)
        return current

    def reasons(self, name: str) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.events if e["involvedObject"]["name"] == name]


class FakeDatastore:
    """Volumes and attachments in memory; ``failing`` makes every call raise it."""

    def __init__(self) -> None:
        self.volumes: dict[str, VolumeInfo] = {}
        self.attached: dict[str, str] = {}  # volume id -> node
        self.calls: list[tuple[str, ...]] = []
        self.failing: DatastoreError | None = None

    def _check(self, *call: str) -> None:
        self.calls.append(call)
        if self.failing is not None:
            raise self.failing

    async def create_volume(self, name: str, size_bytes: int, fs_type: str = "ext4") -> VolumeInfo:
        self._check("create", name)
        for volume in self.volumes.values():
            if volume.name == name:
                return volume
        info = VolumeInfo(f"vol-{len(self.volumes):016x}", name, size_bytes, fs_type)
        self.volumes[info.id] = info
        return info

    async def delete_volume(self, volume_id: str) -> bool:
        self._check("delete", volume_id)
        if volume_id in self.attached:
            raise VolumeConflictError(f"volume {volume_id} is attached")
        return self.volumes.pop(volume_id, None) is not None

    async def attach(self, volume_id: str, node: str) -> str:
        self._check("attach", volume_id, node)
        self.attached[volume_id] = node
        return f"nbd://198.18.0.5:10809/{volume_id}-{node}"

    async def detach(self, volume_id: str) -> None:
        self._check("detach", volume_id)
        self.attached.pop(volume_id, None)
