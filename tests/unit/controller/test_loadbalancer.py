"""The LoadBalancer service controller: pool allocation (pure) and its sync over a fake API."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network
from typing import Any, cast

import pytest

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import EVENTS, SERVICES, Resource
from nestlab.controller.informer import InformerFactory
from nestlab.controller.loadbalancer import (
    LoadBalancerController,
    allocate,
    holders,
    ingress_status,
    pool_address,
    wants_load_balancer,
)
from nestlab.controller.main import parse_args
from nestlab.errors import UsageError

Obj = dict[str, Any]
POOL = IPv4Network("198.18.8.0/29")  # .1 .. .6 usable


def svc(
    name: str,
    *,
    kind: str = "LoadBalancer",
    ip: str = "",
    requested: str = "",
    created: str = "2026-12-05T10:00:00Z",
) -> Obj:
    spec: Obj = {"type": kind, "ports": [{"port": 80, "protocol": "TCP"}]}
    if requested:
        spec["loadBalancerIP"] = requested
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "demo", "uid": f"uid-{name}", "creationTimestamp": created},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]} if ip else {}},
    }


# -- pure -------------------------------------------------------------------------------------
def test_only_default_class_load_balancers_are_ours() -> None:
    assert wants_load_balancer(svc("a"))
    assert not wants_load_balancer(svc("a", kind="ClusterIP"))
    other = svc("a")
    other["spec"]["loadBalancerClass"] = "example.com/other"
    assert not wants_load_balancer(other)


def test_pool_addresses_exclude_network_broadcast_and_outsiders() -> None:
    assert pool_address("198.18.8.1", POOL) == IPv4Address("198.18.8.1")
    assert pool_address("198.18.8.0", POOL) is None
    assert pool_address("198.18.8.7", POOL) is None
    assert pool_address("198.18.9.1", POOL) is None
    assert pool_address("not-an-ip", POOL) is None


def test_lowest_free_address_then_kept() -> None:
    held = holders([svc("a", ip="198.18.8.1"), svc("b", ip="198.18.8.3")], POOL)
    assert allocate(svc("c"), POOL, held).address == IPv4Address("198.18.8.2")
    assert allocate(svc("b", ip="198.18.8.3"), POOL, held).address == IPv4Address("198.18.8.3")


def test_an_address_shown_twice_stays_with_the_older_service() -> None:
    older = svc("old", ip="198.18.8.1", created="2026-12-05T09:00:00Z")
    newer = svc("new", ip="198.18.8.1", created="2026-12-05T11:00:00Z")
    held = holders([newer, older], POOL)
    assert held[IPv4Address("198.18.8.1")] == "demo/old"
    assert allocate(newer, POOL, held).address == IPv4Address("198.18.8.2")


def test_requested_address_given_when_free_refused_otherwise() -> None:
    held = holders([svc("a", ip="198.18.8.1")], POOL)
    assert allocate(svc("b", requested="198.18.8.5"), POOL, held).address == IPv4Address("198.18.8.5")
    taken = allocate(svc("b", requested="198.18.8.1"), POOL, held)
    assert taken.address is None
    assert taken.failure == "requested loadBalancerIP 198.18.8.1 is already assigned to service demo/a"
    outside = allocate(svc("b", requested="10.0.0.1"), POOL, held)
    assert outside.failure == "requested loadBalancerIP 10.0.0.1 is not in the ingress pool 198.18.8.0/29"


def test_exhausted_pool_and_missing_pool_say_why() -> None:
    held = holders([svc(f"s{i}", ip=f"198.18.8.{i}") for i in range(1, 7)], POOL)
    full = allocate(svc("late"), POOL, held)
    assert full.address is None
    assert full.failure == "no free address in the ingress pool 198.18.8.0/29 (6 in use)"
    assert "--ingress-cidr" in allocate(svc("x"), None, {}).failure


def test_status_patches() -> None:
    assert ingress_status(IPv4Address("198.18.8.2")) == {"loadBalancer": {"ingress": [{"ip": "198.18.8.2"}]}}
    assert ingress_status(None) == {"loadBalancer": {"ingress": None}}


def test_ingress_cidr_flag() -> None:
    base = ["--server", "https://127.0.0.1:6443", "--client-certificate", "c", "--client-key", "k"]
    assert parse_args(base).ingress_cidr is None
    assert parse_args([*base, "--ingress-cidr", "198.18.8.0/24"]).ingress_cidr == IPv4Network("198.18.8.0/24")
    with pytest.raises(UsageError, match=r"--ingress-cidr 198\.18\.8\.1/24: .*host bits set"):
        parse_args([*base, "--ingress-cidr", "198.18.8.1/24"])


# -- the controller over a fake API ------------------------------------------------------------
class FakeClient:
    """Applies status patches to the informer's objects the way the API would, records Events."""

    def __init__(self) -> None:
        self.informers: InformerFactory | None = None
        self.events: list[tuple[str, str, str, str]] = []
        self.patches: list[tuple[str, Obj]] = []
        self.missing: set[str] = set()

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        assert resource is EVENTS
        self.events.append((obj["involvedObject"]["name"], obj["type"], obj["reason"], obj["message"]))
        return obj

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        assert (resource, subresource) == (SERVICES, "status")
        if name in self.missing:
            raise status.ApiError(404, "NotFound", f'services "{name}" not found')
        self.patches.append((name, patch))
        return {}


def controller(pool: IPv4Network | None = POOL) -> tuple[LoadBalancerController, FakeClient, InformerFactory]:
    client = FakeClient()
    informers = InformerFactory(cast(ApiClient, client))
    return LoadBalancerController(cast(ApiClient, client), informers, pool), client, informers


def reasons(client: FakeClient, name: str) -> list[str]:
    return [reason for who, _, reason, _ in client.events if who == name]


def test_sync_assigns_distinct_addresses_before_the_cache_shows_them() -> None:
    async def scenario() -> None:
        lb, client, informers = controller()
        for name in ("a", "b"):
            informers.informer(SERVICES).apply("ADDED", svc(name))
        await lb.sync("demo/a")
        await lb.sync("demo/b")  # the cache still shows a without its address
        assert client.patches == [
            ("a", {"status": ingress_status(IPv4Address("198.18.8.1"))}),
            ("b", {"status": ingress_status(IPv4Address("198.18.8.2"))}),
        ]
        assert reasons(client, "a") == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]

    asyncio.run(scenario())


def test_an_address_already_in_status_is_kept_without_writes() -> None:
    async def scenario() -> None:
        lb, client, informers = controller()
        informers.informer(SERVICES).apply("ADDED", svc("a", ip="198.18.8.4"))
        await lb.sync("demo/a")
        assert client.patches == []
        assert client.events == []

    asyncio.run(scenario())


def test_exhaustion_warns_once_and_a_deletion_wakes_the_waiting_service() -> None:
    async def scenario() -> None:
        lb, client, informers = controller(IPv4Network("198.18.8.0/30"))  # .1 and .2
        services = informers.informer(SERVICES)
        services.apply("ADDED", svc("a", ip="198.18.8.1"))
        services.apply("ADDED", svc("b", ip="198.18.8.2"))
        services.apply("ADDED", svc("c"))
        await lb.sync("demo/c")
        await lb.sync("demo/c")
        assert client.events == [
            (
                "c",
                "Warning",
                "SyncLoadBalancerFailed",
                "Error syncing load balancer: no free address in the ingress pool 198.18.8.0/30 (2 in use)",
            )
        ]
        assert client.patches == []
        while len(lb.queue):  # drain the adds the informer queued
            key = await lb.queue.get()
            assert key is not None
            lb.queue.done(key)
        services.apply("DELETED", svc("a", ip="198.18.8.1"))
        key = await lb.queue.get()
        assert key == "demo/a"
        lb.queue.done(key)
        await lb.sync("demo/a")  # gone: frees .1 and wakes c
        woken = await lb.queue.get()
        assert woken == "demo/c"
        lb.queue.done(woken)
        await lb.sync("demo/c")
        assert client.patches == [("c", {"status": ingress_status(IPv4Address("198.18.8.1"))})]

    asyncio.run(scenario())


def test_changing_type_releases_the_address() -> None:
    async def scenario() -> None:
        lb, client, informers = controller()
        informers.informer(SERVICES).apply("ADDED", svc("a", kind="ClusterIP", ip="198.18.8.1"))
        await lb.sync("demo/a")
        assert client.patches == [("a", {"status": {"loadBalancer": {"ingress": None}}})]
        assert reasons(client, "a") == ["DeletedLoadBalancer"]
        informers.informer(SERVICES).apply("MODIFIED", svc("b", kind="ClusterIP"))
        await lb.sync("demo/b")  # nothing to release: no write
        assert len(client.patches) == 1

    asyncio.run(scenario())


def test_requested_address_in_use_warns_and_leaves_status_alone() -> None:
    async def scenario() -> None:
        lb, client, informers = controller()
        informers.informer(SERVICES).apply("ADDED", svc("a", ip="198.18.8.3"))
        informers.informer(SERVICES).apply("ADDED", svc("b", requested="198.18.8.3"))
        await lb.sync("demo/b")
        assert client.patches == []
        assert reasons(client, "b") == ["SyncLoadBalancerFailed"]
        assert "already assigned to service demo/a" in client.events[0][3]

    asyncio.run(scenario())


def test_without_a_pool_services_stay_pending_with_a_warning() -> None:
    async def scenario() -> None:
        lb, client, informers = controller(None)
        informers.informer(SERVICES).apply("ADDED", svc("a"))
        await lb.sync("demo/a")
        assert client.patches == []
        assert "--ingress-cidr" in client.events[0][3]

    asyncio.run(scenario())


def test_a_service_deleted_before_its_write_is_not_an_error() -> None:
    async def scenario() -> None:
        lb, client, informers = controller()
        informers.informer(SERVICES).apply("ADDED", svc("a"))
        client.missing.add("a")
        await lb.sync("demo/a")  # 404: its delete event will follow

    asyncio.run(scenario())
