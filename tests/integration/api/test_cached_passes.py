"""The scheduler on informer caches against the REAL API server, as nestlab-controller runs it.

Passes follow each other every 20 ms, on caches fed by a real watch. Every pod must be bound
exactly once (one ``Scheduled`` Event each, no binding refused as a conflict), the pods bound
must count on their hosts (two simulated hosts of three pods each take six pods three and three,
and a seventh finds no room), and the pod without room is said so once. On loopback the watch
mostly keeps up with the passes; a cache that lags behind a pass's own bindings is forced in
tests/unit/controller/test_views.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from nestlab.api.client import ApiClient
from nestlab.controller.informer import InformerFactory
from nestlab.controller.scheduler import Scheduler
from nestlab.controller.views import Cached
from nestlab.sim import hollow
from nestlab.sim.hosts import Fleet
from tests.integration.api.conftest import ApiServer, wait_until
from tests.integration.api.workloads import LoopThread, credentials

pytestmark = pytest.mark.integration

NS = "cached-passes"
SCHEDULER = "cached-test-scheduler"
PASS_EVERY_S = 0.02  # passes back to back: a pass may start before the watch brought the last bindings
Obj = dict[str, Any]


def _pod(name: str) -> Obj:
    spec: Obj = {
        "schedulerName": SCHEDULER,
        "containers": [{"name": "c", "image": "busybox:1.36"}],
        "tolerations": [dict(t) for t in hollow.TOLERATIONS],
        "nodeSelector": {hollow.LABEL: "true"},
    }
    return {"metadata": {"name": name}, "spec": spec}


class CachedScheduler:
    """A scheduler on its own informers, passing every PASS_EVERY_S until stopped; counts conflicts."""

    def __init__(self, client: ApiClient) -> None:
        self.informers = InformerFactory(client)
        self.scheduler = Scheduler(client, name=SCHEDULER, view=Cached(self.informers))
        self.placed: list[tuple[str, str | None, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.informers.start()
        await self.informers.wait_synced()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            for placed in await self.scheduler.pass_once():
                self.placed.append((placed.pod, placed.node, placed.message))
            await asyncio.sleep(PASS_EVERY_S)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.scheduler.flush()
        await self.informers.stop()


def test_passes_on_lagging_caches_bind_each_pod_once_and_count_what_they_bound(
    apiserver: ApiServer, loop: LoopThread
) -> None:
    names = hollow.names(2, "cachedp")
    fleet = Fleet(lambda: ApiClient(credentials(apiserver)), names, max_pods=3)
    client = ApiClient(credentials(apiserver))
    apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    loop.run(fleet.start())
    running = CachedScheduler(client)
    try:
        loop.run(running.start())
        for index in range(7):
            assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", _pod(f"p{index}"))[0] == 201

        def bound() -> list[Obj]:
            items = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]["items"]
            return [p for p in items if p["spec"].get("nodeName")]

        wait_until(lambda: len(bound()) == 6, "six of the seven pods bound")
        wait_until(
            lambda: any(node is None and "Too many pods" in why for _, node, why in running.placed),
            "the seventh pod refused for want of room",
        )
        loop.run(running.stop())
        assert Counter(p["spec"]["nodeName"] for p in bound()) == dict.fromkeys(names, 3)
        conflicts = [entry for entry in running.placed if "already" in entry[2]]
        assert conflicts == []  # no pod bound twice (the second binding would be refused 409)
        assert sorted(pod for pod, node, _ in running.placed if node) == sorted(
            p["metadata"]["name"] for p in bound()
        )
        events = apiserver.request("GET", f"/api/v1/namespaces/{NS}/events")[1]["items"]
        scheduled = Counter(e["involvedObject"]["name"] for e in events if e["reason"] == "Scheduled")
        assert set(scheduled.values()) == {1}
        assert len(scheduled) == 6
        failed = [e for e in events if e["reason"] == "FailedScheduling"]
        assert len(failed) == 1  # said once, though many passes saw the pod still without room
    finally:
        loop.run(running.stop())
        loop.run(fleet.stop())
        loop.run(client.close())
        for index in range(7):
            apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/p{index}?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")
