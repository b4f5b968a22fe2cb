"""The Endpoints controller: keeps v1 Endpoints ``<svc>`` listing the pods a Service selects.

Upstream's endpoint controller on the shared informers: a Service event enqueues its key; a pod
event enqueues the Services of the pod's namespace whose selectors match the pod before or after
the change (a per-namespace index of selectors keeps that cheap, and a pod update that changes
nothing endpoints depend on enqueues nothing). ``sync`` computes the canonical Endpoints from the
caches (:mod:`nestlab.controller.endpointset`) and writes only when they differ semantically, so a
busy namespace causes no write storm. Writes are compare-and-swap; a 409 (someone wrote first, or
a stale cache) is retried by the queue. A deleted Service's Endpoints are deleted; selectorless
and ExternalName Services are left alone (their Endpoints are written by others: the API server
for ``default/kubernetes``, nestlab-dns for ``kube-system/kube-dns``).

:class:`ServiceIndex` is shared with :mod:`nestlab.controller.endpointslices`.
"""

from __future__ import annotations

import logging
from typing import Any

from nestlab.api import status as api_status
from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTS, PODS, SERVICES
from nestlab.controller import endpointset as eps
from nestlab.controller.endpointtracker import Tracker
from nestlab.controller.informer import EventHandler, InformerFactory, key_of, split_key
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class ServiceIndex:
    """The Services of each namespace, to find the ones selecting a pod without scanning them all.

    Fed by the services informer (:meth:`service_handler`); :meth:`pod_handler` turns a pod event
    into the keys of the managed Services selecting the pod (old or new state).
    """

    def __init__(self) -> None:
        self._by_namespace: dict[str, dict[str, Obj]] = {}

    def service_handler(self, queue: WorkQueue) -> EventHandler:
        """Track every Service and enqueue its key on each change."""

        def put(service: Obj) -> None:
            namespace, name = split_key(key_of(service))
            self._by_namespace.setdefault(namespace, {})[name] = service
            queue.add(key_of(service))

        def drop(service: Obj) -> None:
            namespace, name = split_key(key_of(service))
            self._by_namespace.get(namespace, {}).pop(name, None)
            queue.add(key_of(service))

        return EventHandler(on_add=put, on_update=lambda _old, new: put(new), on_delete=drop)

    def managed(self, key: str) -> bool:
        """Whether the Service at ``key`` exists and has its endpoints computed by controllers."""
        namespace, name = split_key(key)
        service = self._by_namespace.get(namespace, {}).get(name)
        return service is not None and eps.is_managed(service)

    def selecting(self, pod: Obj) -> list[str]:
        """Keys of the managed Services in the pod's namespace whose selector matches the pod."""
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        return [
            key_of(service)
            for service in self._by_namespace.get(namespace, {}).values()
            if eps.is_managed(service) and eps.selects(service, pod)
        ]

    def pod_handler(self, queue: WorkQueue) -> EventHandler:
        """Enqueue the Services a pod event can change (none for an update endpoints ignore)."""

        def changed(pod: Obj) -> None:
            for key in self.selecting(pod):
                queue.add(key)

        def updated(old: Obj, new: Obj) -> None:
            if _labels(old) == _labels(new) and eps.endpoint_fingerprint(old) == eps.endpoint_fingerprint(
                new
            ):
                return
            for key in {*self.selecting(old), *self.selecting(new)}:
                queue.add(key)

        return EventHandler(on_add=changed, on_update=updated, on_delete=changed)


def _labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


class EndpointsController:
    """Writes the Endpoints of every Service with a selector (upstream EndpointController)."""

    name = "endpoint"
    workers = 2

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.tracker = Tracker()
        self.index = ServiceIndex()
        self.services = informers.informer(SERVICES)
        self.pods = informers.informer(PODS)
        self.endpoints = informers.informer(ENDPOINTS)
        self.services.add_handler(self.index.service_handler(self.queue))
        self.pods.add_handler(self.index.pod_handler(self.queue))
        # Someone deleted or edited a managed Service's Endpoints: write them back. Endpoints of
        # other Services are not ours: never enqueued from here (nor deleted when orphaned).
        self.endpoints.add_handler(
            EventHandler(on_update=lambda _old, new: self._endpoints_changed(new),
                         on_delete=self._endpoints_changed)
        )  # fmt: skip

    def _endpoints_changed(self, endpoints: Obj) -> None:
        if self.index.managed(key := key_of(endpoints)):
            self.queue.add(key)

    async def sync(self, key: str) -> None:
        """Bring Endpoints ``key`` in line with Service ``key``; raises ApiError to be retried."""
        namespace, name = split_key(key)
        service = self.services.get(key)
        current = self.endpoints.get(key)
        if service is None:
            self.tracker.forget(key)
            if current is not None:
                await self._delete(namespace, name)
            return
        if not eps.is_managed(service):
            return
        if self.tracker.stale(key, lambda _name: self.endpoints.get(key)):
            self.queue.add_after(key, 1.0)  # the watch event re-enqueues it first, normally
            return
        wanted = eps.desired_endpoints(service, self.pods.list(namespace), current)
        if wanted is None:
            return
        if current is None:
            written = await self.client.create(ENDPOINTS, namespace, wanted)
            log.info("created endpoints %s", key)
        else:
            written = await self.client.replace(ENDPOINTS, namespace, wanted)
            log.debug("updated endpoints %s", key)
        self.tracker.wrote(key, written)

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(ENDPOINTS, namespace, name)
        except api_status.ApiError as exc:
            if exc.code != 404:
                raise
        log.info("deleted endpoints %s/%s: its service is gone", namespace, name)
