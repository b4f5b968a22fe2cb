"""EndpointSlice mirroring: slices for Services whose Endpoints someone else writes.

A Service without a selector gets no endpoints from the controllers; whoever knows its backends
writes its v1 Endpoints by hand: the API server for ``default/kubernetes`` (the API VIP),
nestlab-dns for ``kube-system/kube-dns`` (the live DNS nodes), a user for an external database.
The proxies and the DNS read EndpointSlices only, so, as upstream's EndpointSliceMirroring
controller, this one copies each such Endpoints object into slices labelled managed-by
``endpointslicemirroring-controller.k8s.io`` and owned by the Endpoints: rewritten when the
Endpoints change, deleted when the Endpoints or the Service go, when the Service gains a selector,
or when the Endpoints carry ``endpointslice.kubernetes.io/skip-mirror: "true"``.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from nestlab.controller import endpointset as eps
from nestlab.controller import endpointslicing as slicing
from nestlab.controller.endpointslices import apply_plan, cached_slice, slice_handler, slices_of
from nestlab.controller.endpointtracker import Tracker
from nestlab.controller.informer import EventHandler, InformerFactory, key_of
from nestlab.controller.workqueue import WorkQueue

Obj = dict[str, Any]


class EndpointSliceMirroringController:
    """Mirrors the Endpoints of selectorless Services into EndpointSlices (upstream's controller)."""

    name = "endpointslicemirroring"
    workers = 1

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.tracker = Tracker()
        self.services = informers.informer(SERVICES)
        self.endpoints = informers.informer(ENDPOINTS)
        self.slices = informers.informer(ENDPOINTSLICES)
        self.services.add_handler(
            EventHandler(
                on_add=self._service_event,
                on_update=self._service_updated,
                on_delete=self._service_event,
            )
        )
        self.endpoints.add_handler(
            EventHandler(
                on_add=self._endpoints_event,
                on_update=lambda old, new: self._endpoints_event(new, old),
                on_delete=self._endpoints_event,
            )
        )
        self.slices.add_handler(slice_handler(self.queue, slicing.MIRROR_CONTROLLER))

    def _service_event(self, service: Obj) -> None:
        if eps.selector_of(service) is None:
            self.queue.add(key_of(service))

    def _service_updated(self, old: Obj, new: Obj) -> None:
        if (eps.selector_of(old) is None) != (eps.selector_of(new) is None):
            self.queue.add(key_of(new))

    def _endpoints_event(self, endpoints: Obj, before: Obj | None = None) -> None:
        if slicing.should_mirror(endpoints) or slicing.should_mirror(before):
            self.queue.add(key_of(endpoints))

    async def sync(self, key: str) -> None:
        """Bring the mirrored slices of Endpoints ``key`` in line with it; raises ApiError to retry."""
        existing = slices_of(self.slices, key, slicing.MIRROR_CONTROLLER)
        endpoints = self.endpoints.get(key)
        service = self.services.get(key)
        mirrored = service is not None and eps.selector_of(service) is None
        if endpoints is None or not slicing.should_mirror(endpoints) or not mirrored:
            self.tracker.forget(key)
            if existing:
                await apply_plan(self.client, self.tracker, key, slicing.SlicePlan([], [], existing))
            return
        if self.tracker.stale(key, cached_slice(self.slices, key)):
            self.queue.add_after(key, 1.0)  # the watch event re-enqueues it first, normally
            return
        plan = slicing.plan(
            slicing.groups_for_endpoints(endpoints),
            existing,
            slicing.mirror_slice_meta(endpoints),
            max_per_slice=slicing.MAX_MIRRORED,
        )
        if not plan.empty:
            await apply_plan(self.client, self.tracker, key, plan)
