"""The proxy loop on fake informers and a fake nft: one full rebuild at start, then one small
transaction per changed Service, bursts coalesced, and a rebuild after a refused transaction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from nestlab.api.client import ApiClient
from nestlab.api.resources import ENDPOINTSLICES, SERVICES
from nestlab.controller.informer import Informer
from nestlab.proxy import rules
from nestlab.proxy.nft import Nft, NftError
from nestlab.proxy.proxy import Proxy
from nestlab.runtime import proc
from tests.unit.proxy.nftmodel import RefusedError, Table

NETWORK = rules.HostNetwork("nlpods", "198.19.0.0/16", "198.18.0.0/24", "198.19.1.0/24")
Obj = dict[str, Any]


class FakeNft:
    """Records every ``nft -f -`` transaction and plays it on the strict model; can refuse."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []
        self.table = Table()
        self.refuse = 0
        self.table_present = True

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
    ) -> proc.Result:
        if list(argv) == ["nft", "-f", "-"]:
            assert stdin is not None
            if self.refuse:
                self.refuse -= 1
                raise proc.ProcessError("nft -f - exited 1: Error: No such file or directory")
            commands = stdin.splitlines()
            try:
                self.table.apply(commands)
            except RefusedError as exc:  # what nft -f says when the kernel refuses the batch
                raise proc.ProcessError(f"nft -f - exited 1: Error: {exc}") from exc
            self.transactions.append(commands)
            return proc.Result(tuple(argv), 0, "", "")
        assert list(argv) == ["nft", "list", "tables"], argv
        listing = "table ip other\n" + ("table ip nestlab\n" if self.table_present else "")
        return proc.Result(tuple(argv), 0, listing, "")


def service(name: str, ip: str) -> Obj:
    spec = {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    return {"metadata": {"namespace": "demo", "name": name, "resourceVersion": "1"}, "spec": spec}


def endpoint_slice(service_name: str, *ips: str, version: str = "1") -> Obj:
    return {
        "metadata": {
            "namespace": "demo",
            "name": f"{service_name}-abc",
            "resourceVersion": version,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


def make_proxy(fake: FakeNft) -> Proxy:
    client = cast(ApiClient, object())  # never used: the caches are filled through Informer.apply
    services, slices = Informer(client, SERVICES), Informer(client, ENDPOINTSLICES)
    services.apply("ADDED", service("web", "198.18.32.5"))
    services.apply("ADDED", service("api", "198.18.32.6"))
    slices.apply("ADDED", endpoint_slice("web", "198.19.1.2", "198.19.2.2"))
    slices.apply("ADDED", endpoint_slice("api", "198.19.3.2"))
    services.synced.set()
    slices.synced.set()
    return Proxy(services, slices, Nft(run=fake), NETWORK, "esx-01", check_every=0.01)


async def drain(proxy: Proxy) -> list[str]:
    """Sync every queued key once, as the worker would; the keys synced."""
    synced = []
    while len(proxy.queue):
        key = await proxy.queue.get()
        assert key is not None
        try:
            await proxy.sync(key)
        finally:
            proxy.queue.done(key)
        synced.append(key)
    return synced


def test_start_rebuilds_the_table_once_from_the_caches() -> None:
    fake = FakeNft()

    async def scenario() -> None:
        proxy = make_proxy(fake)
        await proxy.start()
        assert len(fake.transactions) == 1
        assert fake.transactions[0][:3] == [
            "add table ip nestlab",
            "delete table ip nestlab",
            "add table ip nestlab",
        ]
        assert set(proxy.applied) == {"demo/web", "demo/api"}
        await drain(proxy)  # the initial adds were queued: nothing differs, so nothing is sent
        assert len(fake.transactions) == 1

    asyncio.run(scenario())
    assert set(fake.table.maps["service-ips"]) == {"198.18.32.5 . tcp . 80", "198.18.32.6 . tcp . 80"}


def test_a_burst_of_slice_changes_is_one_small_transaction() -> None:
    fake = FakeNft()

    async def scenario() -> Proxy:
        proxy = make_proxy(fake)
        await proxy.start()
        await drain(proxy)
        for version in range(2, 7):  # five updates before the worker gets to them
            proxy.slices.apply("MODIFIED", endpoint_slice("web", "198.19.1.2", version=str(version)))
        assert await drain(proxy) == ["demo/web"]
        return proxy

    proxy = asyncio.run(scenario())
    assert len(fake.transactions) == 2
    incremental = fake.transactions[1]
    api_port = proxy.applied["demo/api"][0]
    assert not [c for c in incremental if rules.svc_chain(api_port) in c or "table" in c.split()[:2]]
    assert len(fake.table.chains[rules.svc_chain(proxy.applied["demo/web"][0])]) == 1


def test_a_deleted_service_leaves_nothing_behind() -> None:
    fake = FakeNft()

    async def scenario() -> Proxy:
        proxy = make_proxy(fake)
        await proxy.start()
        await drain(proxy)
        proxy.services.apply("DELETED", service("web", "198.18.32.5"))
        await drain(proxy)
        return proxy

    proxy = asyncio.run(scenario())
    assert set(proxy.applied) == {"demo/api"}
    assert set(fake.table.maps["service-ips"]) == {"198.18.32.6 . tcp . 80"}
    assert len([name for name in fake.table.chains if name.startswith("ep-")]) == 1


def test_a_refused_transaction_is_retried_as_a_full_rebuild() -> None:
    fake = FakeNft()

    async def scenario() -> Proxy:
        proxy = make_proxy(fake)
        await proxy.start()
        await drain(proxy)
        fake.refuse = 1
        proxy.slices.apply("MODIFIED", endpoint_slice("web", "198.19.1.2", version="2"))
        with pytest.raises(NftError, match="refused"):
            await drain(proxy)
        assert proxy.stale
        await proxy.sync("demo/web")  # the retry
        return proxy

    proxy = asyncio.run(scenario())
    assert not proxy.stale
    assert fake.transactions[-1][0] == "add table ip nestlab"
    assert len(proxy.applied["demo/web"][0].endpoints) == 1


def test_a_vanished_table_is_rebuilt() -> None:
    fake = FakeNft()

    async def scenario() -> None:
        proxy = make_proxy(fake)
        await proxy.start()
        fake.table_present = False
        watcher = asyncio.create_task(proxy.watch_table())
        deadline = time.monotonic() + 10
        while proxy.transactions < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        watcher.cancel()
        assert proxy.transactions >= 2

    asyncio.run(scenario())
    assert fake.transactions[-1][0] == "add table ip nestlab"


def test_a_host_without_the_table_gets_isolation_before_the_api_answers() -> None:
    fake = FakeNft()
    fake.table_present = False

    async def scenario() -> None:
        proxy = make_proxy(fake)
        proxy.services.synced.clear()  # the API has not answered yet
        starting = asyncio.create_task(proxy.start())
        deadline = time.monotonic() + 10
        while not fake.transactions and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert fake.table.chains["pod-guard"]
        assert fake.table.maps["service-ips"] == {}
        assert not starting.done()
        proxy.services.synced.set()
        await starting
        assert len(fake.table.maps["service-ips"]) == 2

    asyncio.run(scenario())


def test_an_address_moving_between_services_heals_through_a_rebuild() -> None:
    fake = FakeNft()

    async def scenario() -> Proxy:
        proxy = make_proxy(fake)
        await proxy.start()
        await drain(proxy)
        # "api" is deleted and "www" takes its ClusterIP; the worker happens to see "www" first
        proxy.services.apply("DELETED", service("api", "198.18.32.6"))
        proxy.services.apply("ADDED", service("www", "198.18.32.6"))
        proxy.slices.apply("ADDED", endpoint_slice("www", "198.19.4.2"))
        with pytest.raises(NftError):
            await proxy.sync("demo/www")  # nft refuses: the element still sends to api's chain
        await proxy.sync("demo/www")  # the retry rebuilds the table
        await proxy.sync("demo/api")
        return proxy

    proxy = asyncio.run(scenario())
    assert set(proxy.applied) == {"demo/web", "demo/www"}
    www = proxy.applied["demo/www"][0]
    assert fake.table.maps["service-ips"]["198.18.32.6 . tcp . 80"] == f"goto {rules.svc_chain(www)}"
