"""Every long-lived client kind survives a failover of the API behind a relay: nothing lost, nothing twice.

The lab's clients reach the API through a VIP. When the VIP moves, the connections they hold lead
nowhere (no FIN, no RST: a half-open path) while new connections reach the new holder. Here a TCP
relay this test controls plays the VIP in front of two REAL nestlab-apiserver processes sharing
the session's REAL etcd cluster. The test cuts it: every open connection stops forwarding but
stays open, and new connections go to the second API server. Then it creates objects and checks
that each client kind (a controller informer, a host agent's pod watch, the service proxy, the
DNS feed) gets each object created after the cut through a new connection to the second server:
the informers exactly once, having resumed from their last resourceVersion; the agent after a new
list of its pods (it lists again whenever a watch ends, see nestlab.agent.main.watch_loop).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import main as agent_main
from nestlab.api import encryption
from nestlab.api.client import WATCH_IDLE_S, Obj
from nestlab.api.resources import ENDPOINTSLICES, PODS, SERVICES
from nestlab.controller.informer import EventHandler, Informer, InformerFactory, key_of
from nestlab.dns.feeder import Feeder, FeederConfig
from nestlab.dns.records import Change, Record
from nestlab.proxy import rules
from nestlab.proxy.nft import Nft
from nestlab.proxy.proxy import Proxy
from nestlab.runtime import proc
from tests.integration.api.conftest import (
    ENCRYPTION_KEY,
    ENCRYPTION_KEY_NAME,
    ApiServer,
    EtcdMember,
    Pki,
    start_apiserver,
    wait_until,
)
from tests.integration.api.relay import CountingClient, Relay
from tests.integration.api.workloads import LoopThread, credentials

pytestmark = pytest.mark.integration
NS = "failover"
NODE = "esx-01"
NETWORK = rules.HostNetwork("nlpods", "198.19.0.0/16", "198.18.0.0/24", "198.19.1.0/24")
RECOVERY_S = 6 * WATCH_IDLE_S  # poll deadline: a client that resumes at all does so long before


class RecordingAgent:
    """The host agent as its watch loop sees it: every sync, in order."""

    def __init__(self) -> None:
        self.added: Counter[str] = Counter()
        self.records: dict[str, Obj] = {}
        self.tasks: dict[str, Obj] = {}

    async def adopt(self, items: Mapping[str, Obj]) -> None:
        self.records.update(items)

    async def sync(self, kind: str, obj: Obj) -> None:
        # the agent watches every namespace's pods on its node: other modules of the suite leave
        # pods on esx-01 too (the skip this test had: it saw their "elsewhere" pod)
        if kind == "ADDED" and obj["metadata"].get("namespace") == NS:
            self.added[str(obj["metadata"].get("name"))] += 1


@dataclass
class FakeUnbound:
    """unbound's local zone, as the feeder drives it (``apply`` and ``listing``)."""

    records: set[Record] = field(default_factory=set)

    def apply(self, change: Change) -> None:
        self.records = {r for r in self.records if r.name not in change.remove} | set(change.add)

    def listing(self) -> list[Record]:
        return sorted(self.records, key=lambda r: (r.name, r.type, r.data))

    def names(self) -> set[str]:
        return {r.name for r in self.records}


def fake_nft(
    argv: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = True,
) -> proc.Result:
    """nft that takes every transaction (the rules themselves are the proxy's unit tests' business)."""
    listing = "table ip nestlab\n" if list(argv) == ["nft", "list", "tables"] else ""
    return proc.Result(tuple(argv), 0, listing, "")


@dataclass
class Clients:
    """One client per kind, each with its own connection pool, as each is its own process in a lab."""

    informer_client: CountingClient
    informer: Informer
    informer_adds: Counter[str]
    agent_client: CountingClient
    agent: RecordingAgent
    proxy_client: CountingClient
    proxy: Proxy
    dns_client: CountingClient
    unbound: FakeUnbound
    factories: list[InformerFactory]
    tasks: list[asyncio.Task[Any]]

    @property
    def all(self) -> list[CountingClient]:
        return [self.informer_client, self.agent_client, self.proxy_client, self.dns_client]


async def start_clients(apiserver: ApiServer, url: str) -> Clients:
    def client() -> CountingClient:
        return CountingClient(credentials(apiserver, url))

    informer_client, agent_client, proxy_client, dns_client = client(), client(), client(), client()
    informer = Informer(informer_client, PODS, NS)
    informer_adds: Counter[str] = Counter()
    informer.add_handler(EventHandler(on_add=lambda obj: informer_adds.update([key_of(obj)])))
    agent = RecordingAgent()
    proxy_informers = InformerFactory(proxy_client)
    proxy = Proxy(
        proxy_informers.informer(SERVICES),
        proxy_informers.informer(ENDPOINTSLICES),
        Nft(run=fake_nft),
        NETWORK,
        NODE,
    )
    dns_informers = InformerFactory(dns_client)
    unbound = FakeUnbound()
    feeder = Feeder(dns_informers, unbound, FeederConfig())  # type: ignore[arg-type]
    proxy_informers.start()
    dns_informers.start()
    tasks = [
        asyncio.create_task(informer.run()),
        asyncio.create_task(agent_main.watch_loop(agent, agent_client, NODE)),  # type: ignore[arg-type]
        asyncio.create_task(proxy.run()),
        asyncio.create_task(feeder.run()),
    ]
    return Clients(
        informer_client=informer_client,
        informer=informer,
        informer_adds=informer_adds,
        agent_client=agent_client,
        agent=agent,
        proxy_client=proxy_client,
        proxy=proxy,
        dns_client=dns_client,
        unbound=unbound,
        factories=[proxy_informers, dns_informers],
        tasks=tasks,
    )


async def stop_clients(clients: Clients) -> None:
    for task in clients.tasks:
        task.cancel()
    await asyncio.gather(*clients.tasks, return_exceptions=True)
    for factory in clients.factories:
        await factory.stop()
    for client in clients.all:
        await client.close()


@pytest.fixture(scope="module")
def second_apiserver(
    pki: Pki, etcd_cluster: list[EtcdMember], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Another nestlab-apiserver on the same etcd (the VIP's other holder): its URL."""
    directory = tmp_path_factory.mktemp("apiserver-b")
    at_rest = directory / "encryption-config.yaml"
    at_rest.write_text(encryption.render(ENCRYPTION_KEY_NAME, ENCRYPTION_KEY))
    url, process, log = start_apiserver(
        pki, [m.client_url for m in etcd_cluster], directory, "--encryption-provider-config", str(at_rest)
    )
    try:
        yield url
    finally:
        process.stop()
    assert "Traceback" not in log.read_text()


@pytest.fixture
def namespace(apiserver: ApiServer) -> Iterator[str]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    try:
        yield NS
    finally:
        for index in range(3):
            apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/p{index}?gracePeriodSeconds=0")
            apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/services/s{index}")
            apiserver.request(
                "DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/s{index}-a"
            )
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def create_objects(apiserver: ApiServer, index: int) -> None:
    """Pod p<index> on the agent's node, Service s<index> with one ready endpoint."""
    pod = {
        "metadata": {"name": f"p{index}"},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]},
    }
    service = {"metadata": {"name": f"s{index}"}, "spec": {"ports": [{"name": "http", "port": 80}]}}
    endpoint_slice = {
        "metadata": {"name": f"s{index}-a", "labels": {"kubernetes.io/service-name": f"s{index}"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"198.19.1.{10 + index}"], "conditions": {"ready": True}}],
    }
    for path, body in (
        (f"/api/v1/namespaces/{NS}/pods", pod),
        (f"/api/v1/namespaces/{NS}/services", service),
        (f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices", endpoint_slice),
    ):
        code, answer = apiserver.request("POST", path, body)
        assert code == 201, answer


def seen_everywhere(clients: Clients, index: int) -> bool:
    """Every client kind holds object ``index``: pod in informer and agent, Service in proxy and DNS."""
    return (
        clients.informer.get(f"{NS}/p{index}") is not None
        and clients.agent.added[f"p{index}"] > 0
        and f"{NS}/s{index}" in clients.proxy.applied
        and f"s{index}.{NS}.svc.cluster.local." in clients.unbound.names()
    )


def test_every_client_kind_resumes_through_the_moved_vip_with_nothing_lost_or_twice(
    apiserver: ApiServer, second_apiserver: str, namespace: str
) -> None:
    thread = LoopThread()
    first_port = int(apiserver.url.rsplit(":", 1)[1])
    second_port = int(second_apiserver.rsplit(":", 1)[1])
    relay = Relay(first_port)
    relay_port = thread.run(relay.start())
    clients = thread.run(start_clients(apiserver, f"https://127.0.0.1:{relay_port}"))
    try:
        create_objects(apiserver, 0)
        wait_until(lambda: seen_everywhere(clients, 0), "every client sees p0/s0 before the cut", 60)
        resuming = [clients.informer_client, clients.proxy_client, clients.dns_client]
        lists_before = [c.lists for c in resuming]
        agent_lists = clients.agent_client.lists
        assert relay.accepted[second_port] == 0

        thread.loop.call_soon_threadsafe(relay.cut, second_port)
        cut_at = time.monotonic()
        create_objects(apiserver, 1)  # written while every client's connection is half-open
        wait_until(lambda: seen_everywhere(clients, 1), "every client sees p1/s1 after the cut", RECOVERY_S)
        recovered_s = time.monotonic() - cut_at
        create_objects(apiserver, 2)  # and the resumed watches keep flowing
        wait_until(lambda: seen_everywhere(clients, 2), "every client sees p2/s2", RECOVERY_S)

        print(f"all four client kinds saw the object created after the cut {recovered_s:.1f} s later")
        assert relay.accepted[second_port] >= 4  # each client came back through a new connection
        assert [c.lists for c in resuming] == lists_before  # informers resumed, never listed again
        assert clients.agent_client.lists > agent_lists  # the agent lists again after a watch ends
        assert set(clients.agent.added) == {"p0", "p1", "p2"}  # nothing lost (a list replays ADDED)
        assert clients.informer_adds == Counter({f"{NS}/p0": 1, f"{NS}/p1": 1, f"{NS}/p2": 1})
    finally:
        thread.run(stop_clients(clients))
        thread.run(relay.close())
        thread.stop()
