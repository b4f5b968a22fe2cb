"""Live feeder Leases -> kube-dns Endpoints: expiry, writes only on change, withdrawal."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.resources import ENDPOINTS, LEASES, NAMESPACES, Resource
from nestlab.controller.leader import micro_time
from nestlab.dns.presence import (
    Presence,
    PresenceConfig,
    endpoint_addresses,
    kube_dns_endpoints,
    lease_name,
    live_addresses,
)

Obj = dict[str, Any]
NOW = datetime(2026, 12, 5, 14, 0, 0, tzinfo=UTC)


def lease(name: str, holder: str, renewed: datetime, duration: int = 6) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "holderIdentity": holder,
            "renewTime": micro_time(renewed),
            "leaseDurationSeconds": duration,
        },
    }


def test_live_addresses_keeps_valid_feeder_leases_only() -> None:
    leases = [
        lease("nestlab-dns-cp-1", "198.18.0.11", NOW - timedelta(seconds=5)),  # valid for 1 s more
        lease("nestlab-dns-cp-2", "198.18.0.12", NOW - timedelta(seconds=6)),  # expired exactly now
        lease("nestlab-dns-cp-3", "not-an-address", NOW),
        lease("nestlab-scheduler", "198.18.0.13", NOW),  # not a feeder's
        {"metadata": {"name": "nestlab-dns-cp-4"}, "spec": {}},
    ]
    assert live_addresses(leases, NOW) == {"198.18.0.11"}


def test_endpoints_body_lists_sorted_addresses_on_both_dns_ports_and_keeps_metadata() -> None:
    current = {
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "resourceVersion": "9"},
        "subsets": [],
    }
    body = kube_dns_endpoints({"198.18.0.12", "198.18.0.9"}, current)
    assert body["metadata"]["resourceVersion"] == "9"
    assert body["metadata"]["labels"] == {"k8s-app": "kube-dns"}
    assert body["subsets"] == [
        {
            "addresses": [{"ip": "198.18.0.9"}, {"ip": "198.18.0.12"}],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
        }
    ]
    assert endpoint_addresses(body) == {"198.18.0.9", "198.18.0.12"}
    assert kube_dns_endpoints(set(), current)["subsets"] == []
    assert current["subsets"] == []  # not edited in place


class FakeApi:
    """Objects by (plural, name) with resourceVersions and compare-and-swap, counting writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.version = 0
        self.writes: list[tuple[str, str, str]] = []

    def _store(self, resource: Resource, obj: Obj) -> Obj:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(resource.plural, stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        if (resource.plural, name) not in self.objects:
            raise status.ApiError(404, "NotFound", f"{name} not found")
        return copy.deepcopy(self.objects[(resource.plural, name)])

    async def list(self, resource: Resource, namespace: str = "") -> Obj:
        return {"items": [copy.deepcopy(o) for (p, _), o in self.objects.items() if p == resource.plural]}

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        if resource == NAMESPACES:
            return obj
        if (resource.plural, obj["metadata"]["name"]) in self.objects:
            raise status.ApiError(409, "AlreadyExists", "exists")
        self.writes.append(("create", resource.plural, obj["metadata"]["name"]))
        return self._store(resource, obj)

    async def replace(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        key = (resource.plural, obj["metadata"]["name"])
        if key not in self.objects:
            raise status.ApiError(404, "NotFound", "gone")
        if obj["metadata"].get("resourceVersion") != self.objects[key]["metadata"]["resourceVersion"]:
            raise status.ApiError(409, "Conflict", "stale")
        self.writes.append(("replace", resource.plural, obj["metadata"]["name"]))
        return self._store(resource, obj)

    async def delete(self, resource: Resource, namespace: str, name: str) -> Obj:
        if self.objects.pop((resource.plural, name), None) is None:
            raise status.ApiError(404, "NotFound", "gone")
        return {}

    def endpoint_ips(self) -> frozenset[str]:
        return endpoint_addresses(self.objects.get(("endpoints", "kube-dns")))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def feeder(api: FakeApi, clock: Clock, node: str, address: str) -> Presence:
    return Presence(api, PresenceConfig(node, address), clock)  # type: ignore[arg-type]


def test_two_feeders_publish_both_then_a_silent_one_expires_and_a_clean_one_withdraws() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), Clock()
        one, two = feeder(api, clock, "cp-1", "198.18.0.11"), feeder(api, clock, "cp-2", "198.18.0.12")
        await one.tick()
        assert api.endpoint_ips() == {"198.18.0.11"}
        await two.tick()
        await one.tick()
        assert api.endpoint_ips() == {"198.18.0.11", "198.18.0.12"}
        assert api.objects[("leases", lease_name("cp-2"))]["spec"]["holderIdentity"] == "198.18.0.12"

        # steady state: renewals write the Leases, never the Endpoints
        api.writes.clear()
        for _ in range(3):
            clock.now += timedelta(seconds=2)
            await one.tick()
            await two.tick()
        assert [w for w in api.writes if w[1] == "endpoints"] == []
        assert len([w for w in api.writes if w[1] == "leases"]) == 6

        # cp-2 stops renewing (its node died): gone once its Lease expired, not before
        clock.now += timedelta(seconds=5)
        await one.tick()
        assert api.endpoint_ips() == {"198.18.0.11", "198.18.0.12"}
        clock.now += timedelta(seconds=2)
        await one.tick()
        assert api.endpoint_ips() == {"198.18.0.11"}

        # cp-2 comes back, then cp-1 shuts down cleanly: Lease deleted, address withdrawn at once
        await two.tick()
        assert api.endpoint_ips() == {"198.18.0.11", "198.18.0.12"}
        await one.withdraw()
        assert api.endpoint_ips() == {"198.18.0.12"}
        assert ("leases", lease_name("cp-1")) not in api.objects

    asyncio.run(scenario())


def test_an_endpoints_edit_by_hand_is_repaired_and_a_lost_race_retries() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), Clock()
        one = feeder(api, clock, "cp-1", "198.18.0.11")
        await one.tick()
        # someone empties the Endpoints: repaired on the next renewal
        api.objects[("endpoints", "kube-dns")]["subsets"] = []
        clock.now += timedelta(seconds=2)
        await one.tick()
        assert api.endpoint_ips() == {"198.18.0.11"}
        # another feeder writes between our read and our write: 409, no write, the next tick repairs
        real_get = api.get

        async def get_then_race(resource: Resource, namespace: str, name: str) -> Obj:
            found = await real_get(resource, namespace, name)
            if resource == ENDPOINTS:
                api._store(ENDPOINTS, kube_dns_endpoints({"198.18.0.12"}, found))
            return found

        api.get = get_then_race  # type: ignore[method-assign]
        assert not await one.reconcile(frozenset({"198.18.0.11"}))
        assert api.endpoint_ips() == {"198.18.0.12"}
        api.get = real_get  # type: ignore[method-assign]
        assert await one.reconcile(frozenset({"198.18.0.11"}))
        assert api.endpoint_ips() == {"198.18.0.11"}

    asyncio.run(scenario())


def test_a_lease_held_by_another_address_is_not_taken_until_it_expires() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), Clock()
        api._store(LEASES, lease(lease_name("cp-1"), "198.18.0.99", NOW))
        one = feeder(api, clock, "cp-1", "198.18.0.11")
        assert not await one.renew()
        await one.tick()
        assert ("endpoints", "kube-dns") not in api.objects
        clock.now += timedelta(seconds=7)
        assert await one.renew()
        assert api.objects[("leases", lease_name("cp-1"))]["spec"]["holderIdentity"] == "198.18.0.11"
        assert ENDPOINTS.plural == "endpoints"

    asyncio.run(scenario())
