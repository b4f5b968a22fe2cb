"""The EndpointSlice controller: EndpointSlices ``<svc>-<suffix>`` for every Service with a selector.

What the proxies and the cluster DNS read (``conditions.ready`` decides). Upstream's
EndpointSlice controller on the shared informers: Service and pod events enqueue Service keys as
for Endpoints (:class:`~nestlab.controller.endpoints.ServiceIndex`); an event on one of our slices
enqueues its Service (someone edited or deleted it). ``sync`` plans the fewest writes
(:func:`~nestlab.controller.endpointslicing.plan`) and applies them creates first, deletes last; a
cache that has not shown our last writes yet makes the sync wait for them instead of writing
duplicates (:class:`~nestlab.controller.endpointTracker`). The slices are owned by their
Service (the garbage collector would remove them), and are also deleted here as soon as the
Service is gone, loses its selector or turns ExternalName (upstream leaves those to the garbage
collector or to nobody; here consumers must never see endpoints of a Service that has none).

:func:`apply_plan` and :func:`slices_of` are shared with :mod:`nestlab.controller.endpointslicemirroring`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nestlab.api import status as api_status
from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTSLICES, PODS, SERVICES
from nestlab.controller import endpointset as eps
from nestlab.controller import endpointslicing as slicing
from nestlab.controller.endpoints import ServiceIndex
from nestlab.controller.endpointtracker import Tracker
from nestlab.controller.informer import EventHandler, Informer, InformerFactory, split_key
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def owner_key(slice_: Obj, managed_by: str) -> str | None:
    """``namespace/service`` of a slice managed by ``managed_by`` (None for anyone else's)."""
    meta = slice_.get("metadata") or {}
    labels = meta.get("labels") or {}
    service = labels.get(slicing.SERVICE_NAME_LABEL)
    if labels.get(slicing.MANAGED_BY_LABEL) != managed_by or not service:
        return None
    return f"{meta.get('namespace', '')}/{service}"


def slice_handler(queue: WorkQueue, managed_by: str) -> EventHandler:
    """Enqueue the Service of a slice ``managed_by`` one controller (both owners when the labels
    moved it from one Service or manager to another)."""

    def changed(slice_: Obj) -> None:
        if (key := owner_key(slice_, managed_by)) is not None:
            queue.add(key)

    def updated(old: Obj, new: Obj) -> None:
        for key in {owner_key(old, managed_by), owner_key(new, managed_by)}:
            if key is not None:
                queue.add(key)

    return EventHandler(on_add=changed, on_update=updated, on_delete=changed)


def slices_of(slices: Informer, key: str, managed_by: str) -> list[Obj]:
    """The cached slices of Service ``key`` that ``managed_by`` owns."""
    namespace, _ = split_key(key)
    return [s for s in slices.list(namespace) if owner_key(s, managed_by) == key]


def cached_slice(slices: Informer, key: str) -> Callable[[str], Obj | None]:
    """Look a slice of ``key``'s namespace up by name (for :meth:`Tracker.stale`)."""
    namespace, _ = split_key(key)
    return lambda name: slices.get(f"{namespace}/{name}")


async def apply_plan(client: ApiClient, tracker: Tracker, key: str, plan: slicing.SlicePlan) -> None:
    """Create, then update, then delete (a vanished slice is fine); each write recorded in
    ``tracker``. A refusal (409 on a stale resourceVersion included) propagates, to be retried."""
    namespace, _ = split_key(key)
    for new in plan.creates:
        made = await client.create(ENDPOINTSLICES, namespace, new)
        tracker.wrote(key, made)
        log.info("created endpointslice %s/%s", namespace, made["metadata"]["name"])
    for changed in plan.updates:
        tracker.wrote(key, await client.replace(ENDPOINTSLICES, namespace, changed))
        log.debug("updated endpointslice %s/%s", namespace, changed["metadata"]["name"])
    for gone in plan.deletes:
        name = gone["metadata"]["name"]
        try:
            await client.delete(ENDPOINTSLICES, namespace, name)
        except api_status.ApiError as exc:
            if exc.code != 404:
                raise
        tracker.deleted(key, name)
        log.info("deleted endpointslice %s/%s", namespace, name)


class EndpointSliceController:
    """Writes the EndpointSlices of every Service with a selector (upstream EndpointSlice controller)."""

    name = "endpointslice"
    workers = 2

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.tracker = Tracker()
        self.index = ServiceIndex()
        self.services = informers.informer(SERVICES)
        self.pods = informers.informer(PODS)
        self.slices = informers.informer(ENDPOINTSLICES)
        self.services.add_handler(self.index.service_handler(self.queue))
        self.pods.add_handler(self.index.pod_handler(self.queue))
        self.slices.add_handler(slice_handler(self.queue, slicing.SLICE_CONTROLLER))

    async def sync(self, key: str) -> None:
        """Bring Service ``key``'s slices in line with its pods; raises ApiError to be retried."""
        service = self.services.get(key)
        existing = slices_of(self.slices, key, slicing.SLICE_CONTROLLER)
        if service is None or not eps.is_managed(service):
            if service is None:
                self.tracker.forget(key)
            if existing:
                await apply_plan(self.client, self.tracker, key, slicing.SlicePlan([], [], existing))
            return
        if self.tracker.stale(key, cached_slice(self.slices, key)):
            self.queue.add_after(key, 1.0)  # the watch event re-enqueues it first, normally
            return
        namespace, _ = split_key(key)
        groups = slicing.groups_for_service(service, self.pods.list(namespace))
        plan = slicing.plan(groups, existing, slicing.service_slice_meta(service), placeholder=True)
        if not plan.empty:
            await apply_plan(self.client, self.tracker, key, plan)
