"""The LoadBalancer service controller against the REAL API server and etcd.

The controller runs in-process on its informer (:class:`~tests.integration.api.workloads.LoopThread`
and :class:`~nestlab.controller.manager.Term`, as in production) with a pool of six addresses. Other
test modules may leave LoadBalancer Services in their namespaces, and this controller gives them
addresses from the same pool too, so the exhaustion test counts what the pool really holds instead
of assuming it is empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller.informer import InformerFactory
from nestlab.controller.loadbalancer import factory
from nestlab.controller.manager import Term
from nestlab.proxy.edgeproxy import EdgeProxy
from nestlab.proxy.nft import Nft
from tests.integration.api.conftest import NODE_TOKEN, ApiServer, wait_until
from tests.integration.api.workloads import LoopThread, credentials

pytestmark = pytest.mark.integration
NS = "loadbalancer-it"
CORE = f"/api/v1/namespaces/{NS}"
POOL = IPv4Network("198.18.8.0/29")  # .1 .. .6
Obj = dict[str, Any]


class Controller:
    """The LoadBalancer controller on its own term."""

    def __init__(self, apiserver: ApiServer) -> None:
        self.thread = LoopThread()
        self.client = ApiClient(credentials(apiserver))
        self.informers = InformerFactory(self.client)
        self.term = Term(self.client, [factory(POOL)], self.informers)
        self.thread.run(self._start())

    async def _start(self) -> None:
        self.term.start()
        await self.informers.wait_synced()

    def close(self) -> None:
        try:
            self.thread.run(self.term.stop())
            self.thread.run(self.client.close())
        finally:
            self.thread.stop()


@pytest.fixture(scope="module")
def controller(apiserver: ApiServer) -> Iterator[Controller]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    running = Controller(apiserver)
    try:
        yield running
    finally:
        running.close()
        listed = apiserver.request("GET", f"{CORE}/services")[1]
        for item in listed.get("items", []) if isinstance(listed, dict) else []:
            apiserver.request("DELETE", f"{CORE}/services/{item['metadata']['name']}")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def create(apiserver: ApiServer, name: str, **spec: Any) -> None:
    body = {"metadata": {"name": name}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec}}
    code, answer = apiserver.request("POST", f"{CORE}/services", body)
    assert code == 201, answer


def delete(apiserver: ApiServer, name: str) -> None:
    code, answer = apiserver.request("DELETE", f"{CORE}/services/{name}")
    assert code == 200, answer.get("message") if isinstance(answer, dict) else answer


def ingress(apiserver: ApiServer, name: str) -> list[str]:
    code, service = apiserver.request("GET", f"{CORE}/services/{name}")
    assert code == 200, service
    return [i["ip"] for i in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def wait_address(apiserver: ApiServer, name: str) -> str:
    found: list[str] = []

    def assigned() -> bool:
        found[:] = ingress(apiserver, name)
        return bool(found)

    wait_until(assigned, f"an ingress address for service {name}", timeout=20)
    assert len(found) == 1, found
    assert IPv4Address(found[0]) in POOL, found
    return found[0]


def events(apiserver: ApiServer, name: str) -> list[tuple[str, str, str]]:
    code, listed = apiserver.request("GET", f"{CORE}/events")
    assert code == 200, listed
    return [
        (e["type"], e["reason"], e["message"]) for e in listed["items"] if e["involvedObject"]["name"] == name
    ]


def used_addresses(apiserver: ApiServer) -> set[str]:
    """Every pool address any LoadBalancer Service of the cluster shows."""
    code, listed = apiserver.request("GET", "/api/v1/services")
    assert code == 200, listed
    return {
        i["ip"]
        for s in listed["items"]
        if s["spec"].get("type") == "LoadBalancer"
        for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if IPv4Address(i["ip"]) in POOL
    }


def test_address_assigned_shown_by_kubectl_and_freed(
    controller: Controller, apiserver: ApiServer, kubectl: Any
) -> None:
    name = f"web-{kubectl.version.replace('.', '')}"
    create(apiserver, name)
    address = wait_address(apiserver, name)
    wanted = {
        ("Normal", "EnsuringLoadBalancer", "Ensuring load balancer"),
        ("Normal", "EnsuredLoadBalancer", "Ensured load balancer"),
    }
    wait_until(
        lambda: wanted <= set(events(apiserver, name)), "upstream's Ensuring/Ensured events", timeout=20
    )
    shown = kubectl("get", "svc", name, "-n", NS).stdout.splitlines()
    header, row = shown[0].split(), shown[1].split()
    assert row[header.index("EXTERNAL-IP")] == address, shown
    delete(apiserver, name)
    # freed: it was the lowest free address, so it is the next Service's again
    wait_until(lambda: address not in used_addresses(apiserver), f"{address} released", timeout=20)
    create(apiserver, f"{name}-again")
    assert wait_address(apiserver, f"{name}-again") == address
    delete(apiserver, f"{name}-again")


def test_type_change_releases_the_address(controller: Controller, apiserver: ApiServer) -> None:
    create(apiserver, "flip")
    wait_address(apiserver, "flip")
    # the LoadBalancer-only fields are cleared by hand (upstream's API server drops them itself)
    patch = {
        "spec": {"type": "ClusterIP", "externalTrafficPolicy": None, "allocateLoadBalancerNodePorts": None}
    }
    code, answer = apiserver.request(
        "PATCH", f"{CORE}/services/flip", patch, content_type="application/merge-patch+json"
    )
    assert code == 200, answer.get("message") if isinstance(answer, dict) else answer
    wait_until(lambda: ingress(apiserver, "flip") == [], "service flip's ingress cleared", timeout=20)
    wait_until(
        lambda: ("Normal", "DeletedLoadBalancer", "Deleted load balancer") in events(apiserver, "flip"),
        "a DeletedLoadBalancer event",
        timeout=20,
    )
    delete(apiserver, "flip")


def test_exhausted_pool_leaves_the_service_pending_until_an_address_frees(
    controller: Controller, apiserver: ApiServer
) -> None:
    ours: list[str] = []
    for index in range(len(list(POOL.hosts())) + 1):  # one more than the pool can ever give
        name = f"fill-{index}"
        create(apiserver, name)
        ours.append(name)

        def settled(name: str = name) -> bool:
            failed = any(reason == "SyncLoadBalancerFailed" for _, reason, _ in events(apiserver, name))
            return bool(ingress(apiserver, name)) or failed

        wait_until(settled, f"service {name} assigned or refused", timeout=20)
        if not ingress(apiserver, name):
            break
    pending = ours[-1]
    assert ingress(apiserver, pending) == []
    assert len(used_addresses(apiserver)) == len(list(POOL.hosts()))  # refused only when truly full
    (warning,) = [e for e in events(apiserver, pending) if e[1] == "SyncLoadBalancerFailed"]
    assert warning[0] == "Warning"
    assert warning[2].startswith(f"Error syncing load balancer: no free address in the ingress pool {POOL}")
    kubectl_row = apiserver.request("GET", f"{CORE}/services/{pending}")[1]
    assert kubectl_row["status"]["loadBalancer"] == {}  # pending, as `kubectl get svc` shows <pending>
    freed = ingress(apiserver, ours[0])[0]
    delete(apiserver, ours[0])
    assert wait_address(apiserver, pending) == freed
    for name in ours[1:]:
        delete(apiserver, name)


class RecordingNft(Nft):
    """Keeps the transactions instead of running nft (the real rules are tested in netns)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def apply(self, commands: Sequence[str]) -> None:
        self.commands.extend(commands)


def test_edge_follows_the_api_as_a_node(controller: Controller, apiserver: ApiServer) -> None:
    """nestlab-edge's loop against the real API with a node's identity (what the lb nodes hold):
    it may list and watch Services and EndpointSlices, rebuilds at start, then follows changes."""
    nft = RecordingNft()
    client = ApiClient(Credentials(apiserver.url, apiserver.pki.ca, NODE_TOKEN))
    proxy = EdgeProxy(client, POOL, nft)
    stop = asyncio.Event()
    task = controller.thread.run(_start(proxy, stop))
    try:
        wait_until(lambda: not proxy.stale, "the edge's first full rebuild", timeout=20)
        assert nft.commands[0].startswith("add table ip nestlab-edge")
        create(apiserver, "edge-web")
        address = wait_address(apiserver, "edge-web")
        endpoint_slice = {
            "metadata": {"name": "edge-web-x", "labels": {"kubernetes.io/service-name": "edge-web"}},
            "addressType": "IPv4",
            "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["198.19.1.5"], "conditions": {"ready": True}}],
        }
        slices = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
        code, answer = apiserver.request("POST", slices, endpoint_slice)
        assert code == 201, answer
        chain = f"svc/{NS}/edge-web/tcp/80"
        element = f"add element ip nestlab-edge service-ports {{ {address} . tcp . 80 : goto {chain} }}"
        dnat = f'add rule ip nestlab-edge {chain} meta l4proto tcp dnat ip to 198.19.1.5:8080 comment "{NS}/edge-web"'
        wait_until(
            lambda: element in nft.commands and dnat in nft.commands, "the service's rules", timeout=20
        )
        delete(apiserver, "edge-web")
        apiserver.request("DELETE", f"{slices}/edge-web-x")
        wait_until(
            lambda: f"delete chain ip nestlab-edge {chain}" in nft.commands, "the rules removed", timeout=20
        )
    finally:
        controller.thread.loop.call_soon_threadsafe(stop.set)
        controller.thread.run(_finish(task, client))


async def _start(proxy: EdgeProxy, stop: asyncio.Event) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(proxy.run(stop))


async def _finish(task: asyncio.Task[None], client: ApiClient) -> None:
    await asyncio.wait_for(task, 30)
    await client.close()
