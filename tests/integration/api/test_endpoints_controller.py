"""The Endpoints, EndpointSlice and mirroring controllers against the REAL API server and etcd.

The controllers run in-process on their informers (:class:`~tests.integration.api.workloads.LoopThread`
and :class:`~nestlab.controller.manager.Term`, as in production). There is no node agent: the test
writes each pod's status as the agent does (phase Running, podIP, the Ready condition) through
``pods/status``, and reads what the proxies and the DNS would read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTSLICES, Resource
from nestlab.controller.endpoints import EndpointsController
from nestlab.controller.endpointslicemirroring import EndpointSliceMirroringController
from nestlab.controller.endpointslices import EndpointSliceController
from nestlab.controller.informer import EventHandler, InformerFactory
from nestlab.controller.manager import Term
from tests.integration.api.conftest import ADVERTISE_ADDRESS, ApiServer, wait_until
from tests.integration.api.workloads import LoopThread, credentials

pytestmark = pytest.mark.integration
NS = "endpoints-it"
CORE = f"/api/v1/namespaces/{NS}"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
Obj = dict[str, Any]


class CountingClient(ApiClient):
    """The real client, counting the writes the controllers send."""

    writes = 0

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        self.writes += 1
        return await super().create(resource, namespace, obj)

    async def replace(self, resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        self.writes += 1
        return await super().replace(resource, namespace, obj, subresource)

    async def delete(self, resource: Resource, namespace: str, name: str, *args: Any, **kwargs: Any) -> Obj:
        self.writes += 1
        return await super().delete(resource, namespace, name, *args, **kwargs)


class Controllers:
    """The three endpoint controllers on one term; ``on_slice`` hooks the slices informer;
    ``syncs[(controller, key)]`` counts the syncs finished without error."""

    def __init__(self, apiserver: ApiServer) -> None:
        self.thread = LoopThread()
        self.client = CountingClient(credentials(apiserver))
        self.informers = InformerFactory(self.client)
        self.term = Term(
            self.client,
            [EndpointsController, EndpointSliceController, EndpointSliceMirroringController],
            self.informers,
        )
        self.syncs: dict[tuple[str, str], int] = {}
        for controller in self.term.controllers:
            controller.sync = self._counted(controller.name, controller.sync)  # type: ignore[method-assign,assignment]
        self.thread.run(self._start())

    def _counted(self, name: str, sync: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
        async def counted(key: str) -> None:
            await sync(key)
            self.syncs[(name, key)] = self.syncs.get((name, key), 0) + 1

        return counted

    async def _start(self) -> None:
        self.term.start()
        await self.informers.wait_synced()

    def on_slice(self, check: Callable[[Obj], bool]) -> tuple[threading.Event, list[float]]:
        """An event set (and the monotonic time recorded) when a slice event satisfies ``check``."""
        seen, when = threading.Event(), []

        def look(obj: Obj) -> None:
            if not seen.is_set() and check(obj):
                when.append(time.monotonic())
                seen.set()

        async def register() -> None:
            self.informers.informer(ENDPOINTSLICES).add_handler(
                EventHandler(on_add=look, on_update=lambda _old, new: look(new))
            )

        self.thread.run(register())
        return seen, when

    def close(self) -> None:
        try:
            self.thread.run(self.term.stop())
            self.thread.run(self.client.close())
        finally:
            self.thread.stop()


@pytest.fixture(scope="module")
def controllers(apiserver: ApiServer) -> Iterator[Controllers]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    running = Controllers(apiserver)
    try:
        yield running
    finally:
        running.close()
        for path in (f"{CORE}/services", f"{CORE}/pods", f"{CORE}/endpoints", SLICES):
            listed = apiserver.request("GET", path)[1]
            for item in listed.get("items", []) if isinstance(listed, dict) else []:
                apiserver.request("DELETE", f"{path}/{item['metadata']['name']}?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def get(apiserver: ApiServer, path: str) -> Obj:
    code, body = apiserver.request("GET", path)
    assert code == 200, body
    return dict(body)


def create(apiserver: ApiServer, path: str, obj: Obj) -> Obj:
    code, body = apiserver.request("POST", path, obj)
    assert code == 201, body
    return dict(body)


def make_service(apiserver: ApiServer, name: str, ports: list[Obj], selector: Obj | None, **spec: Any) -> Obj:
    body: Obj = {"ports": ports, **spec}
    if selector is not None:
        body["selector"] = selector
    return create(apiserver, f"{CORE}/services", {"metadata": {"name": name}, "spec": body})


def make_pod(apiserver: ApiServer, name: str, app: str, ports: list[Obj] | None = None) -> Obj:
    container: Obj = {"name": "c", "image": "nestlab/web:1"}
    if ports:
        container["ports"] = ports
    spec = {"nodeName": "esx-01", "containers": [container]}
    return create(
        apiserver, f"{CORE}/pods", {"metadata": {"name": name, "labels": {"app": app}}, "spec": spec}
    )


def set_status(apiserver: ApiServer, name: str, ip: str, ready: bool) -> None:
    """What the agent reports: Running, the pod's address, Ready once every container started."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp}
    patch = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [condition]}}
    code, body = apiserver.request(
        "PATCH", f"{CORE}/pods/{name}/status", patch, content_type="application/merge-patch+json"
    )
    assert code == 200, body


def slices_of(apiserver: ApiServer, service: str) -> list[Obj]:
    query = f"?labelSelector=kubernetes.io%2Fservice-name%3D{service}"
    return list(get(apiserver, SLICES + query)["items"])


def endpoint_states(apiserver: ApiServer, service: str) -> dict[str, bool]:
    """address -> conditions.ready over the Service's slices."""
    return {
        e["addresses"][0]: bool(e["conditions"].get("ready"))
        for s in slices_of(apiserver, service)
        for e in s.get("endpoints") or []
    }


def subsets(apiserver: ApiServer, service: str) -> list[Obj]:
    code, body = apiserver.request("GET", f"{CORE}/endpoints/{service}")
    return list(body.get("subsets") or []) if code == 200 else []


def addresses(apiserver: ApiServer, service: str, field: str = "addresses") -> list[str]:
    return sorted(a["ip"] for s in subsets(apiserver, service) for a in s.get(field) or [])


def two_ready_pods(apiserver: ApiServer, name: str, prefix: str) -> tuple[str, str]:
    """A Service ``name`` over its own pods ``name-1`` and ``name-2`` (``prefix``.11 and .12), both
    ready and in its Endpoints and slice: a test using it needs no other test to have run."""
    make_service(apiserver, name, [{"name": "http", "port": 80, "targetPort": 8080}], {"app": name})
    first, second = f"{prefix}.11", f"{prefix}.12"
    for index, ip in ((1, first), (2, second)):
        make_pod(apiserver, f"{name}-{index}", name)
        set_status(apiserver, f"{name}-{index}", ip, ready=True)
    wait_until(lambda: addresses(apiserver, name) == [first, second], f"endpoints of {name}")
    wait_until(lambda: endpoint_states(apiserver, name) == {first: True, second: True}, f"slice of {name}")
    return first, second


def test_ready_pods_appear_in_endpoints_and_slices(apiserver: ApiServer, controllers: Controllers) -> None:
    svc = make_service(apiserver, "web", [{"name": "http", "port": 80, "targetPort": 8080}], {"app": "web"})
    for index in (1, 2):
        make_pod(apiserver, f"web-{index}", "web")
        set_status(apiserver, f"web-{index}", f"198.19.1.{index + 10}", ready=True)
    make_pod(apiserver, "db-1", "db")
    set_status(apiserver, "db-1", "198.19.1.30", ready=True)
    wait_until(lambda: addresses(apiserver, "web") == ["198.19.1.11", "198.19.1.12"], "endpoints of web")
    wait_until(
        lambda: endpoint_states(apiserver, "web") == {"198.19.1.11": True, "198.19.1.12": True},
        "slice of web",
    )
    (subset,) = subsets(apiserver, "web")
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert {a["targetRef"]["name"] for a in subset["addresses"]} == {"web-1", "web-2"}
    (slice_,) = slices_of(apiserver, "web")
    meta = slice_["metadata"]
    assert meta["name"].startswith("web-")
    assert meta["labels"][MANAGED_BY] == "endpointslice-controller.k8s.io"
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Service", "web", svc["metadata"]["uid"])
    assert owner["controller"] is True
    assert owner["blockOwnerDeletion"] is True
    assert slice_["addressType"] == "IPv4"
    assert slice_["ports"][0]["port"] == 8080
    endpoint = next(e for e in slice_["endpoints"] if e["addresses"] == ["198.19.1.11"])
    assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert endpoint["nodeName"] == "esx-01"
    assert endpoint["targetRef"]["name"] == "web-1"


def test_not_ready_pod_moves_and_the_change_is_fast(apiserver: ApiServer, controllers: Controllers) -> None:
    first, second = two_ready_pods(apiserver, "flip", "198.19.3")

    def flipped(obj: Obj) -> bool:
        return any(
            e["addresses"] == [second] and e["conditions"].get("ready") is False
            for e in obj.get("endpoints") or []
        )

    seen, when = controllers.on_slice(flipped)
    started = time.monotonic()
    set_status(apiserver, "flip-2", second, ready=False)
    assert seen.wait(30), "the slice never showed flip-2 not ready"
    print(f"\npod status change -> EndpointSlice update seen by a watcher: {when[0] - started:.3f}s")
    wait_until(lambda: addresses(apiserver, "flip", "notReadyAddresses") == [second], "flip-2 not ready")
    assert addresses(apiserver, "flip") == [first]
    assert endpoint_states(apiserver, "flip") == {first: True, second: False}
    set_status(apiserver, "flip-2", second, ready=True)
    wait_until(lambda: addresses(apiserver, "flip") == [first, second], "flip-2 ready again")


def test_no_write_when_nothing_changed(apiserver: ApiServer, controllers: Controllers) -> None:
    """A Service event that changes no endpoint is synced by both controllers and writes nothing."""
    two_ready_pods(apiserver, "quiet", "198.19.4")
    key = f"{NS}/quiet"
    before = {name: controllers.syncs.get((name, key), 0) for name in ("endpoint", "endpointslice")}
    writes = controllers.client.writes
    patch = {"metadata": {"annotations": {"note": "touched"}}}
    code, body = apiserver.request(
        "PATCH", f"{CORE}/services/quiet", patch, content_type="application/merge-patch+json"
    )
    assert code == 200, body
    wait_until(
        lambda: all(controllers.syncs.get((name, key), 0) > count for name, count in before.items()),
        "both controllers synced quiet after the annotation",
    )
    assert controllers.client.writes == writes


def test_terminating_then_deleted_pod(apiserver: ApiServer, controllers: Controllers) -> None:
    first, second = two_ready_pods(apiserver, "term", "198.19.5")
    # a bound pod deleted gracefully stays, terminating, until its agent confirms (none here)
    code, body = apiserver.request("DELETE", f"{CORE}/pods/term-2")
    assert code == 200, body
    assert body["metadata"].get("deletionTimestamp"), body
    wait_until(lambda: addresses(apiserver, "term") == [first], "term-2 out of the Endpoints")
    assert addresses(apiserver, "term", "notReadyAddresses") == []

    def terminating() -> bool:
        found = [e for s in slices_of(apiserver, "term") for e in s.get("endpoints") or []
                 if e["addresses"] == [second]]  # fmt: skip
        return bool(found) and found[0]["conditions"] == {
            "ready": False,
            "serving": True,
            "terminating": True,
        }

    wait_until(terminating, "term-2 terminating in the slice (ready False, serving True)")
    # the agent confirms: the pod is gone
    assert apiserver.request("DELETE", f"{CORE}/pods/term-2?gracePeriodSeconds=0")[0] == 200
    wait_until(lambda: endpoint_states(apiserver, "term") == {first: True}, "term-2 out of the slice")
    assert addresses(apiserver, "term") == [first]


def test_named_target_port_resolves_per_pod(apiserver: ApiServer, controllers: Controllers) -> None:
    make_service(apiserver, "api", [{"name": "http", "port": 80, "targetPort": "web"}], {"app": "api"})
    make_pod(apiserver, "api-1", "api", [{"name": "web", "containerPort": 8080}])
    make_pod(apiserver, "api-2", "api", [{"name": "web", "containerPort": 9090}])
    make_pod(apiserver, "api-3", "api")  # no port named "web": in no subset, in a port-less slice
    for index in (1, 2, 3):
        set_status(apiserver, f"api-{index}", f"198.19.2.{index + 10}", ready=True)

    def ports_by_address() -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for subset in subsets(apiserver, "api"):
            for address in subset.get("addresses") or []:
                found.setdefault(address["ip"], []).extend(p["port"] for p in subset.get("ports") or [])
        return found

    wait_until(lambda: ports_by_address() == {"198.19.2.11": [8080], "198.19.2.12": [9090]}, "api endpoints")

    def slice_ports() -> dict[str, list[int]]:
        return {
            e["addresses"][0]: [p["port"] for p in s.get("ports") or []]
            for s in slices_of(apiserver, "api")
            for e in s.get("endpoints") or []
        }

    wait_until(
        lambda: slice_ports() == {"198.19.2.11": [8080], "198.19.2.12": [9090], "198.19.2.13": []},
        "api slices grouped by resolved port",
    )


def test_selectorless_service_gets_its_endpoints_mirrored(
    apiserver: ApiServer, controllers: Controllers
) -> None:
    make_service(apiserver, "external-db", [{"name": "pg", "port": 5432}], None)
    endpoints = {
        "metadata": {"name": "external-db", "labels": {"tier": "data"}},
        "subsets": [{"addresses": [{"ip": "198.18.0.50"}], "notReadyAddresses": [{"ip": "198.18.0.51"}],
                     "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}],
    }  # fmt: skip
    create(apiserver, f"{CORE}/endpoints", endpoints)
    wait_until(
        lambda: endpoint_states(apiserver, "external-db") == {"198.18.0.50": True, "198.18.0.51": False},
        "mirrored slice of external-db",
    )
    (slice_,) = slices_of(apiserver, "external-db")
    assert slice_["metadata"]["labels"][MANAGED_BY] == "endpointslicemirroring-controller.k8s.io"
    assert slice_["metadata"]["labels"]["tier"] == "data"
    assert slice_["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    current = get(apiserver, f"{CORE}/endpoints/external-db")
    current["subsets"][0]["addresses"].append({"ip": "198.18.0.52"})
    assert apiserver.request("PUT", f"{CORE}/endpoints/external-db", current)[0] == 200
    wait_until(lambda: endpoint_states(apiserver, "external-db").get("198.18.0.52") is True, "mirror updated")
    assert subsets(apiserver, "external-db")[0]["addresses"][0]["ip"] == "198.18.0.50"  # never rewritten
    assert apiserver.request("DELETE", f"{CORE}/services/external-db")[0] == 200
    wait_until(lambda: not slices_of(apiserver, "external-db"), "mirrored slice deleted with its service")


def test_the_kubernetes_service_is_mirrored(apiserver: ApiServer, controllers: Controllers) -> None:
    query = "?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes"

    def api_endpoints() -> list[str]:
        items = get(apiserver, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices" + query)["items"]
        return [a for s in items for e in s.get("endpoints") or [] for a in e["addresses"]]

    wait_until(lambda: api_endpoints() == [ADVERTISE_ADDRESS], "default/kubernetes mirrored")


def test_deleting_the_service_removes_its_endpoints_and_slices(
    apiserver: ApiServer, controllers: Controllers
) -> None:
    wait_until(lambda: bool(slices_of(apiserver, "api")), "api slices")
    assert apiserver.request("DELETE", f"{CORE}/services/api")[0] == 200
    wait_until(lambda: not subsets(apiserver, "api") and not slices_of(apiserver, "api"), "api cleaned up")
    code, _ = apiserver.request("GET", f"{CORE}/endpoints/api")
    assert code == 404
