"""A watch whose connection silently dies is noticed within seconds and resumed, not relisted.

After the API VIP moved, every controller watch used to hang until its timeoutSeconds (minutes).
Here a TCP proxy we control sits between an informer and the REAL API server; it "moves the VIP":
every existing connection stops forwarding (no FIN, no RST: a half-open path) while new
connections work. The informer must notice the silence (its idle read timeout), open a new watch
from the last resourceVersion it saw, and deliver what changed meanwhile, without listing again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from nestlab.api.client import ApiClient, Obj
from nestlab.api.resources import PODS
from nestlab.controller.informer import Informer
from tests.integration.api.conftest import ApiServer, wait_until
from tests.integration.api.relay import CountingClient, Relay
from tests.integration.api.workloads import LoopThread, credentials

pytestmark = pytest.mark.integration
NS = "hang"
IDLE = 2.0  # seconds of silence before the informer gives a connection up
WATCH_SECONDS = 600  # the old behaviour to beat: only this would end a hung watch


@pytest.fixture
def namespace(apiserver: ApiServer) -> Iterator[str]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    try:
        yield NS
    finally:
        for name in ("before", "after"):
            apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def pod(name: str) -> Obj:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}}


def test_a_silently_dead_watch_is_resumed_within_seconds(apiserver: ApiServer, namespace: str) -> None:
    thread = LoopThread()
    port = int(apiserver.url.rsplit(":", 1)[1])
    proxy = Relay(port)
    proxy_port = thread.run(proxy.start())
    client = CountingClient(credentials(apiserver, f"https://127.0.0.1:{proxy_port}"))
    informer = Informer(client, PODS, namespace, watch_seconds=WATCH_SECONDS, idle=IDLE)
    task = thread.run(_start(informer))
    try:
        assert apiserver.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod("before"))[0] == 201
        wait_until(
            lambda: informer.get(f"{namespace}/before") is not None, "informer sees pod before", timeout=30
        )
        connections = proxy.accepted[port]
        proxy.cut()  # the VIP moved: old paths are dead, new connections reach the new holder
        assert apiserver.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod("after"))[0] == 201
        # Without the idle timeout nothing would arrive before WATCH_SECONDS (10 minutes).
        wait_until(
            lambda: informer.get(f"{namespace}/after") is not None, "informer sees pod after", timeout=60
        )
        assert proxy.accepted[port] > connections  # a new connection carried the new watch
        assert client.lists == 1  # resumed from the last resourceVersion, not listed again
    finally:
        thread.run(_stop(task, client, proxy))
        thread.stop()


async def _start(informer: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 30)
    return task


async def _stop(task: asyncio.Task[None], client: ApiClient, proxy: Relay) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    await proxy.close()
