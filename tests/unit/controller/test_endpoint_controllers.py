"""The Endpoints, EndpointSlice and mirroring controllers' syncs over a fake API: what they write,
that they write nothing when nothing changed, wait for a stale cache, and which events enqueue what."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES, Resource
from nestlab.controller import endpointslicing as slicing
from nestlab.controller.endpoints import EndpointsController
from nestlab.controller.endpointslicemirroring import EndpointSliceMirroringController
from nestlab.controller.endpointslices import EndpointSliceController
from nestlab.controller.informer import InformerFactory
from tests.unit.controller.test_endpointset import pod, service

Obj = dict[str, Any]


class FakeClient:
    """Objects by (plural, namespace, name) with etcd-like resourceVersions; records every write."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.revision = 100
        self.conflict = False

    def _stamp(self, obj: Obj) -> Obj:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        return copy.deepcopy(obj)

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{self.revision:05d}"
        key = (resource.plural, namespace, meta["name"])
        if key in self.objects:
            raise status.ApiError(409, "AlreadyExists", f'{resource.plural} "{meta["name"]}" already exists')
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[key] = stored
        self.writes.append(("create", resource.plural, meta["name"]))
        return self._stamp(stored)

    async def replace(self, resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        key = (resource.plural, namespace, obj["metadata"]["name"])
        held = self.objects.get(key)
        if (
            self.conflict
            or held is None
            or held["metadata"]["resourceVersion"] != obj["metadata"].get("resourceVersion")
        ):
            raise status.ApiError(409, "Conflict", "the object has been modified")
        self.objects[key] = copy.deepcopy(obj)
        self.writes.append(("replace", resource.plural, obj["metadata"]["name"]))
        return self._stamp(self.objects[key])

    async def delete(self, resource: Resource, namespace: str, name: str, grace: int | None = None) -> Obj:
        self.writes.append(("delete", resource.plural, name))
        if self.objects.pop((resource.plural, namespace, name), None) is None:
            raise status.ApiError(404, "NotFound", name)
        return {}


Scenario = Callable[[FakeClient, InformerFactory], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        client = FakeClient()
        await scenario(client, InformerFactory(cast(ApiClient, client)))

    asyncio.run(main())


def show(informers: InformerFactory, client: FakeClient, resource: Resource) -> None:
    """Deliver the fake server's objects of ``resource`` to the informer, as its watch would."""
    informer = informers.informer(resource)
    for (plural, _, _), obj in list(client.objects.items()):
        if plural == resource.plural:
            informer.apply("MODIFIED", copy.deepcopy(obj))
    for obj in informer.list():
        key = (resource.plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
        if key not in client.objects:
            informer.apply("DELETED", obj)


def drain(queue: Any) -> set[str]:
    keys: set[str] = set()
    while len(queue):
        keys.add(queue._order.pop(0))
    queue._dirty.clear()
    return keys


def test_endpoints_written_once_then_only_on_change() -> None:
    async def scenario(client: FakeClient, informers: InformerFactory) -> None:
        ctl = EndpointsController(cast(ApiClient, client), informers)
        informers.informer(SERVICES).apply("ADDED", service())
        pods = informers.informer(PODS)
        pods.apply("ADDED", pod("a", "198.19.1.5"))
        pods.apply("ADDED", pod("b", "198.19.1.6"))
        assert drain(ctl.queue) == {"demo/web"}
        await ctl.sync("demo/web")
        assert client.writes == [("create", "endpoints", "web")]
        await ctl.sync("demo/web")  # the cache has not shown the write: wait, do not create again
        assert len(client.writes) == 1
        show(informers, client, ENDPOINTS)
        await ctl.sync("demo/web")
        assert len(client.writes) == 1  # nothing changed: nothing written
        drain(ctl.queue)
        unready = pod("b", "198.19.1.6", ready=False)
        pods.apply("MODIFIED", unready)
        assert drain(ctl.queue) == {"demo/web"}
        await ctl.sync("demo/web")
        assert client.writes[-1] == ("replace", "endpoints", "web")
        (subset,) = client.objects[("endpoints", "demo", "web")]["subsets"]
        assert [a["ip"] for a in subset["notReadyAddresses"]] == ["198.19.1.6"]
        # an update endpoints do not depend on enqueues nothing
        restarted = copy.deepcopy(unready)
        restarted["status"]["containerStatuses"] = [{"name": "c", "restartCount": 3}]
        pods.apply("MODIFIED", restarted)
        assert drain(ctl.queue) == set()
        # a pod of another app enqueues nothing either
        pods.apply("ADDED", pod("x", "198.19.1.9", labels={"app": "db"}))
        assert drain(ctl.queue) == set()

    run(scenario)


def test_endpoints_conflict_is_raised_for_a_retry() -> None:
    async def scenario(client: FakeClient, informers: InformerFactory) -> None:
        ctl = EndpointsController(cast(ApiClient, client), informers)
        informers.informer(SERVICES).apply("ADDED", service())
        await ctl.sync("demo/web")
        show(informers, client, ENDPOINTS)
        informers.informer(PODS).apply("ADDED", pod("a", "198.19.1.5"))
        client.conflict = True
        with pytest.raises(status.ApiError) as caught:
            await ctl.sync("demo/web")
        assert caught.value.code == 409

    run(scenario)


def test_endpoints_deleted_with_the_service_and_selectorless_left_alone() -> None:
    async def scenario(client: FakeClient, informers: InformerFactory) -> None:
        ctl = EndpointsController(cast(ApiClient, client), informers)
        services = informers.informer(SERVICES)
        services.apply("ADDED", service())
        await ctl.sync("demo/web")
        show(informers, client, ENDPOINTS)
        services.apply("DELETED", service())
        await ctl.sync("demo/web")
        assert client.writes[-1] == ("delete", "endpoints", "web")
        # hand-written Endpoints of a selectorless Service, or of no Service yet: never touched
        bare = service(selector={}, name="db")
        services.apply("ADDED", bare)
        hand: Obj = {"metadata": {"name": "db", "namespace": "demo", "resourceVersion": "5"},
                "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}  # fmt: skip
        drain(ctl.queue)
        informers.informer(ENDPOINTS).apply("ADDED", copy.deepcopy(hand))
        orphan = copy.deepcopy(hand)
        orphan["metadata"]["name"] = "later"
        informers.informer(ENDPOINTS).apply("ADDED", orphan)
        assert drain(ctl.queue) == set()
        writes = len(client.writes)
        await ctl.sync("demo/db")
        assert len(client.writes) == writes

    run(scenario)


def test_slices_created_once_and_rewritten_on_readiness_change() -> None:
    async def scenario(client: FakeClient, informers: InformerFactory) -> None:
        ctl = EndpointSliceController(cast(ApiClient, client), informers)
        informers.informer(SERVICES).apply("ADDED", service())
        pods = informers.informer(PODS)
        pods.apply("ADDED", pod("a", "198.19.1.5"))
        await ctl.sync("demo/web")
        ((verb, plural, name),) = client.writes
        assert (verb, plural) == ("create", "endpointslices")
        assert name.startswith("web-")
        await ctl.sync("demo/web")  # stale cache: no duplicate slice
        assert len(client.writes) == 1
        show(informers, client, ENDPOINTSLICES)
        assert drain(ctl.queue) == {"demo/web"}  # our slice's event wakes its Service
        await ctl.sync("demo/web")
        assert len(client.writes) == 1
        pods.apply("MODIFIED", pod("a", "198.19.1.5", ready=False))
        await ctl.sync("demo/web")
        assert client.writes[-1] == ("replace", "endpointslices", name)
        (endpoint,) = client.objects[("endpointslices", "demo", name)]["endpoints"]
        assert endpoint["conditions"] == {"ready": False, "serving": False, "terminating": False}
        # the Service loses its selector: its controller-made slices go
        show(informers, client, ENDPOINTSLICES)
        informers.informer(SERVICES).apply("MODIFIED", service(selector={}))
        await ctl.sync("demo/web")
        assert client.writes[-1] == ("delete", "endpointslices", name)

    run(scenario)


def test_mirroring_follows_the_endpoints_and_the_service() -> None:
    async def scenario(client: FakeClient, informers: InformerFactory) -> None:
        ctl = EndpointSliceMirroringController(cast(ApiClient, client), informers)
        services, endpoints = informers.informer(SERVICES), informers.informer(ENDPOINTS)
        services.apply("ADDED", service(selector={}, name="kubernetes"))
        hand: Obj = {"metadata": {"name": "kubernetes", "namespace": "demo", "uid": "ep1", "resourceVersion": "3"},
                "subsets": [{"addresses": [{"ip": "198.18.0.10"}],
                             "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}  # fmt: skip
        endpoints.apply("ADDED", copy.deepcopy(hand))
        assert drain(ctl.queue) == {"demo/kubernetes"}
        await ctl.sync("demo/kubernetes")
        ((_verb, _, name),) = client.writes
        made = client.objects[("endpointslices", "demo", name)]
        assert made["metadata"]["labels"][slicing.MANAGED_BY_LABEL] == slicing.MIRROR_CONTROLLER
        assert made["endpoints"] == [{"addresses": ["198.18.0.10"], "conditions": {"ready": True}}]
        show(informers, client, ENDPOINTSLICES)
        await ctl.sync("demo/kubernetes")
        assert len(client.writes) == 1
        hand["subsets"][0]["addresses"].append({"ip": "198.18.0.11"})
        endpoints.apply("MODIFIED", copy.deepcopy(hand))
        await ctl.sync("demo/kubernetes")
        assert client.writes[-1] == ("replace", "endpointslices", name)
        show(informers, client, ENDPOINTSLICES)
        services.apply("MODIFIED", service(name="kubernetes"))  # gains a selector: not mirrored
        assert drain(ctl.queue) >= {"demo/kubernetes"}
        await ctl.sync("demo/kubernetes")
        assert client.writes[-1] == ("delete", "endpointslices", name)

    run(scenario)
