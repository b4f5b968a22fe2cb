"""A watch whose connection silently dies is noticed within seconds and resumed, not relisted.

After the API VIP moved, every controller watch used to hang until its timeoutSeconds (minutes).
Here a TCP proxy we control sits between an informer and the REAL API server; it "moves the VIP":
every existing connection stops forwarding (no FIN, no RST: a half-open path) while new
connections work. The informer must notice the silence (its idle read timeout), open a new watch
from the last resourceVersion it saw, and deliver what changed meanwhile, without listing again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Obj
from nestlab.api.resources import PODS, Resource
from nestlab.controller.informer import Informer
from tests.integration.api.conftest import ApiServer, wait_until
from tests.integration.api.workloads import LoopThread, credentials

pytestmark = pytest.mark.integration
NS = "hang"
IDLE = 2.0  # seconds of silence before the informer gives a connection up
WATCH_SECONDS = 600  # the old behaviour to beat: only this would end a hung watch


class Proxy:
    """TCP forwarder to ``port``; ``blackhole()`` silences every connection open at that moment."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0
        self._open: list[dict[str, Any]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        state = {"dead": False}
        self._open.append(state)
        self._writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if not state["dead"]:  # a dead path swallows bytes: nothing arrives, nothing fails
                        dst.write(data)
                        await dst.drain()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def blackhole(self) -> None:
        for state in self._open:
            state["dead"] = True

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0)


class CountingClient(ApiClient):
    """Counts list requests: a resumed watch must not list again."""

    lists = 0

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj:
        self.lists += 1
        return await super().list(resource, namespace, labels=labels, fields=fields)


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
    proxy = Proxy(port)
    proxy_port = thread.run(proxy.start())
    client = CountingClient(credentials(apiserver, f"https://127.0.0.1:{proxy_port}"))
    informer = Informer(client, PODS, namespace, watch_seconds=WATCH_SECONDS, idle=IDLE)
    task = thread.run(_start(informer))
    try:
        assert apiserver.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod("before"))[0] == 201
        wait_until(
            lambda: informer.get(f"{namespace}/before") is not None, "informer sees pod before", timeout=30
        )
        connections = proxy.accepted
        proxy.blackhole()  # the VIP moved: old paths are dead, new connections reach the new holder
        assert apiserver.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod("after"))[0] == 201
        # Without the idle timeout nothing would arrive before WATCH_SECONDS (10 minutes).
        wait_until(
            lambda: informer.get(f"{namespace}/after") is not None, "informer sees pod after", timeout=60
        )
        assert proxy.accepted > connections  # a new connection carried the new watch
        assert client.lists == 1  # resumed from the last resourceVersion, not listed again
    finally:
        thread.run(_stop(task, client, proxy))
        thread.stop()


async def _start(informer: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 30)
    return task


async def _stop(task: asyncio.Task[None], client: ApiClient, proxy: Proxy) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    await proxy.close()
