"""The whole proxy against the REAL API server and the REAL kernel: a Service and its
EndpointSlice created through the API reach the host namespace's rules, an endpoint removed in
the API leaves them through one incremental transaction, and a restarted proxy rebuilds the table
while the rules keep answering. The proxy authenticates as a node (token of system:node:esx-07),
so this also proves nodes may list and watch Services and EndpointSlices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import ENDPOINTSLICES, NAMESPACES, SERVICES
from nestlab.controller.informer import InformerFactory
from nestlab.proxy.proxy import Proxy
from tests.integration.api.conftest import ADMIN_TOKEN, NODE_TOKEN, ApiServer
from tests.integration.proxy.netns import POD_PORT, PODS, NetLab, netlab

pytestmark = [pytest.mark.integration, pytest.mark.root]
__all__ = ["netlab"]  # a fixture, imported so that pytest finds it here

NS = "proxy-it"
DEADLINE_S = 30.0  # for a change to reach the rules on a loaded machine; never asserted on


def endpoint_slice(*pods: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-x1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
        "endpoints": [{"addresses": [PODS[pod]], "conditions": {"ready": True}} for pod in pods],
    }


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not seen within {DEADLINE_S:g}s")


def test_api_changes_reach_the_rules_incrementally_and_survive_a_restart(
    apiserver: ApiServer, netlab: NetLab, tmp_path: Path
) -> None:
    admin = ApiClient(Credentials(apiserver.url, apiserver.pki.ca, ADMIN_TOKEN))
    node = ApiClient(Credentials(apiserver.url, apiserver.pki.ca, NODE_TOKEN))

    async def answers(address: str, count: int = 20) -> set[str]:
        return set(await asyncio.to_thread(netlab.fetch, "p3", f"http://{address}/who", count, 2.0))

    async def start_proxy() -> tuple[Proxy, InformerFactory, asyncio.Task[None]]:
        informers = InformerFactory(node)
        proxy = Proxy(
            informers.informer(SERVICES),
            informers.informer(ENDPOINTSLICES),
            netlab.nft,
            netlab.network,
            "esx-07",
        )
        informers.start()
        return proxy, informers, asyncio.create_task(proxy.run())

    async def stop_proxy(informers: InformerFactory, task: asyncio.Task[None]) -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()

    async def scenario() -> None:
        await admin.create(NAMESPACES, "", {"metadata": {"name": NS}})
        spec = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": POD_PORT}]}
        created = await admin.create(SERVICES, NS, {"metadata": {"name": "web"}, "spec": spec})
        address = f"{created['spec']['clusterIP']}:80"
        await admin.create(ENDPOINTSLICES, NS, endpoint_slice("p1", "p2"))

        proxy, informers, task = await start_proxy()
        try:
            await eventually(lambda: _equals(answers(address), {"p1", "p2"}), "both endpoints answering")
            before = proxy.transactions
            current = await admin.get(ENDPOINTSLICES, NS, "web-x1")
            current["endpoints"] = current["endpoints"][:1]  # p1 only
            await admin.replace(ENDPOINTSLICES, NS, current)
            await eventually(lambda: _equals(answers(address), {"p1"}), "only p1 answering")
            assert proxy.transactions - before <= 2  # incremental transactions, not a reload per event
            assert not proxy.stale
        finally:
            await stop_proxy(informers, task)

        assert await answers(address) == {"p1"}  # no proxy running: the rules stay in the kernel

        current = await admin.get(ENDPOINTSLICES, NS, "web-x1")
        await admin.replace(ENDPOINTSLICES, NS, {**current, "endpoints": endpoint_slice("p2")["endpoints"]})
        proxy, informers, task = await start_proxy()  # the restart rebuilds from the API
        try:
            await eventually(lambda: _equals(answers(address), {"p2"}), "the restarted proxy's rules")
        finally:
            await stop_proxy(informers, task)
            await admin.delete(NAMESPACES, "", NS)
            await admin.close()
            await node.close()

    asyncio.run(scenario())


async def _equals(value: Awaitable[set[str]], expected: set[str]) -> bool:
    return await value == expected
