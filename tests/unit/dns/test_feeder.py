"""The feeder on fake informers and a fake unbound-control: start resync, increments, repair after restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nestlab.api.resources import ENDPOINTSLICES, SERVICES
from nestlab.controller.informer import InformerFactory
from nestlab.dns.feeder import Feeder, FeederConfig
from nestlab.dns.records import Record, parse_record
from nestlab.dns.unbound import Unbound
from nestlab.runtime.proc import ProcessError, Result

Obj = dict[str, Any]
SOA = Record("cluster.local.", "SOA", "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5")
LOCALHOST = Record("localhost.", "A", "127.0.0.1", 10800)


class FakeControl:
    """unbound-control's local data commands over an in-memory record set."""

    def __init__(self, records: set[Record]) -> None:
        self.records = set(records)
        self.down = False
        self.calls: list[str] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = True,
    ) -> Result:
        command = argv[-1]
        self.calls.append(command)
        if self.down:
            raise ProcessError("unbound-control exited 1: error: connect: Connection refused")
        lines = [line for line in (stdin or "").splitlines() if line]
        if command == "local_datas":
            self.records |= {r for line in lines if (r := parse_record(line)) is not None}
        elif command == "local_datas_remove":
            self.records = {r for r in self.records if r.name not in lines}
        elif command == "list_local_data":
            text = "\n\n".join(f"{r.name}\t{r.ttl}\tIN\t{r.type}\t{r.data}" for r in self.records)
            return Result(tuple(argv), 0, text + "\n", "")
        return Result(tuple(argv), 0, "ok\n", "")

    def names(self) -> set[str]:
        return {r.name for r in self.records}


def service(name: str, cluster_ip: str = "None", namespace: str = "a") -> Obj:
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"clusterIP": cluster_ip},
    }


def endpoint_slice(service_name: str, *addresses: str, namespace: str = "a") -> Obj:
    return {
        "metadata": {
            "name": f"{service_name}-x",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
            "resourceVersion": "1",
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
    }


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        await asyncio.sleep(0.01)


def test_feeder_loads_follows_and_repairs() -> None:
    async def scenario() -> None:
        stale = Record("gone.a.svc.cluster.local.", "A", "198.18.32.9")
        control = FakeControl({SOA, LOCALHOST, stale})
        # never started: the test feeds events by hand, so no client is needed
        informers = InformerFactory(None)  # type: ignore[arg-type]
        feeder = Feeder(informers, Unbound(runner=control), FeederConfig(resync=0.2))
        services, slices = informers.informer(SERVICES), informers.informer(ENDPOINTSLICES)
        services.apply("ADDED", service("web", "198.18.32.5"))
        services.synced.set()
        slices.synced.set()
        task = asyncio.create_task(feeder.run())
        try:
            await asyncio.wait_for(feeder.synced.wait(), 5)
            # start: the stale record left by an earlier run is gone, config data untouched
            assert control.names() == {
                "cluster.local.",
                "localhost.",
                "web.a.svc.cluster.local.",
                "5.32.18.198.in-addr.arpa.",
            }
            assert feeder.healthy

            # a headless Service and its slice: the name appears; an endpoint leaves: its A goes
            services.apply("ADDED", service("db"))
            slices.apply("ADDED", endpoint_slice("db", "198.19.1.4", "198.19.1.5"))
            db = "db.a.svc.cluster.local."
            await until(
                lambda: {r.data for r in control.records if r.name == db} == {"198.19.1.4", "198.19.1.5"},
                "db A",
            )
            slices.apply(
                "MODIFIED",
                {
                    **endpoint_slice("db", "198.19.1.5"),
                    "metadata": {**endpoint_slice("db")["metadata"], "resourceVersion": "2"},
                },
            )
            await until(
                lambda: {r.data for r in control.records if r.name == db} == {"198.19.1.5"}, "db shrinks"
            )
            services.apply("DELETED", service("db"))
            await until(lambda: not any(db in r.name for r in control.records), "db removed")

            # unbound restarted and forgot everything: the periodic resync refills it
            control.records = {SOA}
            await until(lambda: "web.a.svc.cluster.local." in control.names(), "refill after restart")

            # unbound down: unhealthy (the Lease stops being renewed), healthy again once it is back
            control.down = True
            await until(lambda: not feeder.healthy, "unhealthy")
            control.down = False
            await until(lambda: feeder.healthy, "healthy again", timeout=10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
