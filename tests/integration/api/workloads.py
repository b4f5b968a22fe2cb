"""Harness for the workload-controller integration tests: controllers in-process, a fake kubelet.

:class:`LoopThread` runs an asyncio loop in a thread so the tests stay plain synchronous code
(``apiserver.request`` + ``wait_until``) while the REAL controllers run against the REAL API
server. There are no node agents here: :class:`FakeKubelet` is one more controller on the same
informers that marks every pod of its namespace Running and Ready, as a kubelet would report.
:class:`Observer` evaluates a probe (ready pods, pod templates present) after every watch event,
so a dip below a floor during a rollout cannot slip between two polls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import PODS
from nestlab.controller.informer import ControllerFactory, EventHandler, InformerFactory, key_of, split_key
from nestlab.controller.manager import Term
from nestlab.controller.pods import is_active, is_ready
from nestlab.controller.workqueue import WorkQueue
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer

Obj = dict[str, Any]
T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread; ``run`` a coroutine on it from test code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="controllers", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what still runs, let closing transports finish, then stop and close the loop."""

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # aiohttp's graceful shutdown: closed TLS transports release their sockets on later
            # loop iterations; stopping the loop at once would leak them (ResourceWarning).
            await asyncio.sleep(0.5)

        try:
            self.run(drain(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def credentials(apiserver: ApiServer, url: str = "") -> Credentials:
    return Credentials(url or apiserver.url, apiserver.pki.ca, ADMIN_TOKEN)


class FakeKubelet:
    """Marks the pods of namespaces starting with ``namespace`` Running and Ready (unless broken)."""

    name = "fake-kubelet"
    workers = 2

    def __init__(self, client: ApiClient, informers: InformerFactory, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.broken_images = {"registry.invalid/never-ready:1"}
        """Pods running these images never become ready (a broken release)."""
        self.queue = WorkQueue(self.name)
        self.pods = informers.informer(PODS)
        self.pods.add_handler(EventHandler.enqueue(self.queue))

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        pod = self.pods.get(key)
        if (
            not namespace.startswith(self.namespace)
            or pod is None
            or not is_active(pod)
            or is_ready(pod)
            or {c.get("image") for c in pod["spec"].get("containers") or []} & self.broken_images
        ):
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": stamp}
        patch = {"status": {"phase": "Running", "conditions": [ready], "startTime": stamp}}
        await self.client.patch(PODS, namespace, name, patch, "status")


class Harness:
    """The controllers of one test module, with a fake kubelet, on a private loop thread."""

    def __init__(self, apiserver: ApiServer, factories: Sequence[ControllerFactory], namespace: str) -> None:
        self.thread = LoopThread()
        self.client = ApiClient(credentials(apiserver))
        self.informers = InformerFactory(self.client)
        self.kubelet = FakeKubelet(self.client, self.informers, namespace)
        self.term = Term(self.client, [*factories, lambda _c, _i: self.kubelet], self.informers)
        self.thread.run(self._start())

    async def _start(self) -> None:
        self.term.start()
        await asyncio.wait_for(self.informers.wait_synced(), 30)

    def close(self) -> None:
        try:
            self.thread.run(self.term.stop())
            self.thread.run(self.client.close())
        finally:
            self.thread.stop()


class Observer:
    """After every pod event in ``namespace``: ``probe(pods)``; keeps the extremes once armed."""

    def __init__(self, harness: Harness, namespace: str, probe: Callable[[list[Obj]], int]) -> None:
        self.namespace, self.probe = namespace, probe
        self.pods = harness.informers.informer(PODS)
        self.minimum: int | None = None
        self.maximum: int | None = None
        self.current = 0
        self.armed = False
        harness.thread.run(self._register())

    async def _register(self) -> None:
        self.pods.add_handler(
            EventHandler(lambda _o: self._count(), lambda _o, _n: self._count(), lambda _o: self._count())
        )

    def _count(self) -> None:
        self.current = self.probe(self.pods.list(self.namespace))
        if self.armed:
            self.minimum = self.current if self.minimum is None else min(self.minimum, self.current)
            self.maximum = self.current if self.maximum is None else max(self.maximum, self.current)

    def arm(self) -> None:
        """Start recording the extremes from now on."""
        self.minimum = self.maximum = self.current
        self.armed = True


def ready_pods(app: str) -> Callable[[list[Obj]], int]:
    """Probe: ready, active pods labelled ``app``."""

    def count(pods: list[Obj]) -> int:
        return sum(
            1
            for p in pods
            if (p["metadata"].get("labels") or {}).get("app") == app and is_active(p) and is_ready(p)
        )

    return count


def template_hashes(app: str) -> Callable[[list[Obj]], int]:
    """Probe: how many pod templates (pod-template-hash values) the pods labelled ``app`` come from."""

    def count(pods: list[Obj]) -> int:
        labels = [p["metadata"].get("labels") or {} for p in pods]
        return len({lab.get("pod-template-hash") for lab in labels if lab.get("app") == app})

    return count


def names(items: list[Obj]) -> list[str]:
    return sorted(key_of(i) for i in items)
