"""Run simulated hosts against a real API server: register, heartbeat, report bound pods Running.

Each :class:`SimHost` does what a node agent does towards the API and nothing towards a machine:
it creates its Node (refusing to take over a Node that is not simulated), posts its status, renews
its Lease in ``kube-node-lease`` every quarter of the Lease's duration, and watches the pods bound
to it (``fieldSelector=spec.nodeName=<host>``), as kubemark's hollow kubelet does. A new pod is
reported Running at once through pods/status (:func:`nestlab.sim.hollow.running`); a pod being
deleted is confirmed gone (grace 0), as an agent does once its VM stopped. A watch that breaks
resumes from the last resourceVersion it saw, and re-lists only on 410; one list of every
pod per :data:`RESYNC_S` for the whole fleet catches what a watch that went quiet did not bring.

A :class:`Fleet` runs N of them, each with its own API client (its own connections, as N agents
would have), counts what it reported and when, and on :meth:`Fleet.stop` removes every trace:
the pods still bound to its hosts, the Leases and the Nodes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nestlab.agent.node import LEASE_DURATION_S, LEASE_NAMESPACE, STRATEGIC_MERGE, lease_object, microtime
from nestlab.api import status as api_status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.resources import LEASES, NODES, PODS
from nestlab.sim import hollow

log = logging.getLogger(__name__)
Obj = dict[str, Any]
RENEW_EVERY_S = LEASE_DURATION_S / 4  # the agent's (and kubelet's) renewal period
WATCH_S = 300  # timeoutSeconds of each pod watch; it is re-opened from its last resourceVersion
RESYNC_S = 60.0  # one list of every pod for the fleet, in case a watch went quiet (kubelet: 1 min)
RETRY_S = 1.0  # pause after a failed request before trying again (the API may be failing over)
STATUS_IN_FLIGHT = 4  # pod status writes one host has in flight at once (a kubelet's are serial)
SETUP_IN_FLIGHT = 16  # hosts registered or removed at once
RETRIED = (429, 500, 503, 504)  # answers after which a status write is tried again (API busy or failing over)
WRITE_ATTEMPTS = 30  # with RETRY_S between them: rides out a control-plane failover of several seconds


class NotSimulatedError(Exception):
    """A Node of the name exists and is not simulated: a real host is never taken over."""


@dataclass
class Tally:
    """What a fleet reported, for the scale test's figures."""

    running: int = 0
    """Pods reported Running."""
    confirmed_gone: int = 0
    """Deleted pods confirmed gone (grace 0)."""
    failures: int = 0
    """Status writes or deletions the API refused with something other than 404/409."""
    last_running_at: float = 0.0
    """``time.monotonic()`` of the last pod reported Running."""
    held: int = 0
    """Pods bound and waiting for :meth:`Fleet.release` to be reported Running."""
    hosts_running: dict[str, int] = field(default_factory=dict)
    """Pods reported Running, per host."""


class SimHost:
    """One simulated host: its Node, Lease and pod watch over its own API client."""

    def __init__(
        self,
        client: ApiClient,
        name: str,
        tally: Tally,
        max_pods: int = hollow.MAX_PODS,
        reporting: asyncio.Event | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.tally = tally
        self.max_pods = max_pods
        self.reporting = reporting or _set(asyncio.Event())
        """Pods are reported Running only while this is set (see :meth:`Fleet.hold`)."""
        self._writes = asyncio.Semaphore(STATUS_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._handled: set[str] = set()
        """UIDs of the pods reported Running (or being reported): each is reported once."""

    async def register(self) -> None:
        """Create the Node (an existing simulated one is reused), post its status, create its Lease."""
        try:
            await self.client.create(NODES, "", hollow.node(self.name))
        except api_status.ApiError as exc:
            if exc.code != 409:
                raise
            if not hollow.is_simulated(await self.client.get(NODES, "", self.name)):
                raise NotSimulatedError(
                    f"Node {self.name} exists and is not a simulated host: choose another --prefix"
                ) from None
        await self.client.request(
            "PATCH",
            path_of(NODES, "", self.name, "status"),
            {"status": hollow.status(self.name, self.max_pods)},
            content_type=STRATEGIC_MERGE,
        )
        await self.renew()

    async def renew(self) -> None:
        """Renew (or create) the Lease, as the agent does."""
        patch = {"spec": {"holderIdentity": self.name, "renewTime": microtime()}}
        try:
            await self.client.patch(LEASES, LEASE_NAMESPACE, self.name, patch)
        except api_status.ApiError as exc:
            if exc.code != 404:
                raise
            await self.client.create(LEASES, LEASE_NAMESPACE, lease_object(self.name))

    async def heartbeat(self) -> None:
        """Renew the Lease every :data:`RENEW_EVERY_S` until cancelled (a failure is retried next time)."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                await self.renew()
            except api_status.ApiError as exc:
                log.warning("%s: lease renewal failed: %s", self.name, exc.message)

    async def serve(self) -> None:
        """Watch the pods bound here and act on each, until cancelled."""
        since = ""
        while True:
            try:
                async for _kind, pod in self.client.watch(
                    PODS, fields=f"spec.nodeName={self.name}", since=since, timeout=WATCH_S
                ):
                    since = (pod.get("metadata") or {}).get("resourceVersion", since)
                    self.act(pod)
            except api_status.ApiError as exc:
                if exc.code == 410:
                    since = ""  # compacted: re-list (a replay re-reports nothing already Running)
                else:
                    log.warning("%s: pod watch ended: %s", self.name, exc.message)
                    await asyncio.sleep(RETRY_S)

    def act(self, pod: Obj) -> None:
        """Report ``pod`` Running, or confirm it gone, unless that is done or under way."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if meta.get("deletionTimestamp"):
            work = self._confirm_gone(meta.get("namespace", ""), meta.get("name", ""))
        elif hollow.needs_running(pod) and uid not in self._handled:
            self._handled.add(uid)
            work = self._report_running(pod)
        else:
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report_running(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if not self.reporting.is_set():
            self.tally.held += 1
            try:
                await self.reporting.wait()
            finally:
                self.tally.held -= 1
        async with self._writes:
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    await self.client.patch(
                        PODS, meta["namespace"], meta["name"], hollow.running(pod), "status"
                    )
                    break
                except api_status.ApiError as exc:
                    if exc.code in (404, 409):
                        return  # deleted meanwhile
                    if exc.code not in RETRIED or attempt == WRITE_ATTEMPTS - 1:
                        self.tally.failures += 1
                        self._handled.discard(str(meta.get("uid", "")))  # the next resync tries again
                        log.warning(
                            "%s: reporting %s Running failed: %s", self.name, meta["name"], exc.message
                        )
                        return
                    await asyncio.sleep(RETRY_S)  # the API is failing over: the agent would retry too
        self.tally.running += 1
        self.tally.last_running_at = time.monotonic()
        self.tally.hosts_running[self.name] = self.tally.hosts_running.get(self.name, 0) + 1

    async def _confirm_gone(self, namespace: str, name: str) -> None:
        async with self._writes:
            try:
                await self.client.delete(PODS, namespace, name, grace=0)
            except api_status.ApiError as exc:
                if exc.code != 404:
                    self.tally.failures += 1
                return
        self.tally.confirmed_gone += 1

    async def settle(self) -> None:
        """Wait for the status writes and deletions already started."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def remove(self) -> None:
        """Delete what this host put in the API: its pods (grace 0), its Lease, its Node.

        Each step is retried while the API answers 5xx (a failover must not leave a simulated
        host among the lab's Nodes); a 404 means it is gone already."""
        listed = await _retried(lambda: self.client.list(PODS, fields=f"spec.nodeName={self.name}"))
        for pod in (listed or {}).get("items", []):
            namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            await _retried(functools.partial(self.client.delete, PODS, namespace, name, grace=0))
        await _retried(lambda: self.client.delete(LEASES, LEASE_NAMESPACE, self.name))
        await _retried(lambda: self.client.delete(NODES, "", self.name))


async def _retried(call: Callable[[], Awaitable[Obj]]) -> Obj | None:
    """``call()``, tried again after 5xx answers and lost write races (a delete racing a status
    write, on a server that does not retry that itself); None when it answered 404 (gone)."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return await call()
        except api_status.ApiError as exc:
            if exc.code == 404:
                return None
            raced = exc.code == 409 and "has been modified" in exc.message
            if (exc.code not in RETRIED and not raced) or attempt == WRITE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(RETRY_S)
    return None


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


async def _limited(limit: asyncio.Semaphore, work: Any) -> None:
    async with limit:
        await work


class Fleet:
    """N simulated hosts; ``async with Fleet(...)`` starts them and removes every trace at the end."""

    def __init__(
        self, connect: Callable[[], ApiClient], names: list[str], max_pods: int = hollow.MAX_PODS
    ) -> None:
        self.tally = Tally()
        self.reporting = _set(asyncio.Event())
        self.hosts = [SimHost(connect(), name, self.tally, max_pods, self.reporting) for name in names]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Register every host, then start its heartbeat and pod watch."""
        limit = asyncio.Semaphore(SETUP_IN_FLIGHT)
        await asyncio.gather(*(_limited(limit, host.register()) for host in self.hosts))
        loop = asyncio.get_running_loop()
        for host in self.hosts:
            self._tasks += [loop.create_task(host.heartbeat()), loop.create_task(host.serve())]
        self._tasks.append(loop.create_task(self.resync()))

    def hold(self) -> None:
        """Report nothing Running until :meth:`release`: the pods bound meanwhile wait, so that the
        scheduler can be measured alone (upstream's scheduler_perf binds to Nodes without kubelets)."""
        self.reporting.clear()

    def release(self) -> None:
        """Report what :meth:`hold` kept back, and everything after it, as before."""
        self.reporting.set()

    async def resync(self) -> None:
        """Every :data:`RESYNC_S`, one list of every pod, each handed to its host: what a watch that
        went quiet did not bring is reported then (the kubelet's periodic sync). One list for the
        whole fleet: the server filters a field selector after reading every pod, so a list per
        host would cost N times as much."""
        by_name = {host.name: host for host in self.hosts}
        while True:
            await asyncio.sleep(RESYNC_S)
            try:
                listed = await self.hosts[0].client.list(PODS)
            except api_status.ApiError as exc:
                log.warning("simulated hosts: resync failed: %s", exc.message)
                continue
            for pod in listed["items"]:
                host = by_name.get((pod.get("spec") or {}).get("nodeName", ""))
                if host is not None:
                    host.act(pod)

    async def stop(self) -> None:
        """Stop every loop, then delete the hosts' pods, Leases and Nodes; close the clients."""
        self.release()  # a held report would keep settle() waiting
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.gather(*(host.settle() for host in self.hosts))
        limit = asyncio.Semaphore(SETUP_IN_FLIGHT)
        try:  # every host is removed even when another's removal fails; the first failure is raised
            removed = await asyncio.gather(
                *(_limited(limit, host.remove()) for host in self.hosts), return_exceptions=True
            )
        finally:
            await asyncio.gather(*(host.client.close() for host in self.hosts))
        failed = [r for r in removed if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def __aenter__(self) -> Fleet:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
