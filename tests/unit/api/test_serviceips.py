"""ClusterIP allocation: the pure range rules, then the registry and store on a fake etcd with transactions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from nestlab.api import resources as r
from nestlab.api import serviceips
from nestlab.api.clusterips import ClusterIPs, ensure_system_services
from nestlab.api.main import parse_args
from nestlab.api.registry import Registry
from nestlab.api.serviceips import ServiceRange
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from nestlab.errors import UsageError
from tests.unit.api.fake_etcd import FakeEtcd

RANGE = ServiceRange.parse("198.18.32.0/20")


def seeded(seed: int) -> random.Random:
    """A reproducible generator (picks spread addresses; nothing here is secret)."""
    return random.Random(seed)  # noqa: S311


def test_range_rules() -> None:
    assert RANGE.size == 4094
    assert RANGE.static_size == 255  # KEP-3070: 4094 // 16, between 16 and 256
    assert (RANGE.kubernetes_ip, RANGE.dns_ip) == ("198.18.32.1", "198.18.32.10")
    assert RANGE.contains("198.18.47.254")
    assert not RANGE.contains("198.18.32.0")  # network address
    assert not RANGE.contains("198.18.47.255")  # broadcast address
    assert not RANGE.contains("10.0.0.1")
    assert ServiceRange.parse("198.18.32.0/28").static_size == 0
    for bad in ("198.18.32.1/20", "fd00::/64", "198.18.32.0/29", "nonsense"):
        with pytest.raises(serviceips.RangeError):
            ServiceRange.parse(bad)


def test_requested_outside_the_range() -> None:
    (cause,) = serviceips.check_requested(RANGE, "10.96.0.5")
    assert cause.field == "spec.clusterIPs[0]"
    assert cause.message == (
        'Invalid value: "10.96.0.5": provided IP is not in the valid range. '
        "The range of valid IPs is 198.18.32.0/20"
    )
    assert serviceips.check_requested(RANGE, "198.18.33.1") == []


def test_dynamic_picks_skip_the_static_band_and_reserved_addresses() -> None:
    rng = seeded(7)
    picks = {serviceips.pick(RANGE, set(), rng) for _ in range(200)}
    lowest = min(int(str(p).split(".")[2]) * 256 + int(str(p).split(".")[3]) for p in picks)
    assert lowest > 32 * 256 + 255  # never in the static band while the dynamic band has room
    small = ServiceRange.parse("198.18.32.0/28")  # 14 addresses, no static band
    taken: set[str] = set()
    while (ip := serviceips.pick(small, taken, rng)) is not None:
        taken.add(ip)
    assert len(taken) == 12
    assert small.kubernetes_ip not in taken
    assert small.dns_ip not in taken


def test_full_dynamic_band_falls_back_to_the_static_band() -> None:
    mid = ServiceRange.parse("198.18.32.0/27")  # 30 addresses: static band 16, dynamic 14
    taken = {mid.address(o) for o in range(17, 31)}
    ip = serviceips.pick(mid, taken, seeded(1))
    assert ip is not None
    assert ip not in taken
    assert ip not in (mid.kubernetes_ip, mid.dns_ip)


# -- store and registry: a fake etcd that also answers multi-key transactions ------------------------
class TxnEtcd(FakeEtcd):
    async def write_all(
        self,
        *,
        absent: Sequence[str] = (),
        unchanged: Mapping[str, int] | None = None,
        puts: Mapping[str, bytes] | None = None,
        deletes: Sequence[str] = (),
    ) -> int | None:
        await asyncio.sleep(0)
        if any(key in self.data for key in absent):
            return None
        for key, revision in (unchanged or {}).items():
            if key not in self.data or self.data[key].mod_revision != revision:
                return None
        for key, value in (puts or {}).items():  # one revision per key is good enough for these tests
            await self._put(key, value)
        for key in deletes:
            if key in self.data:
                await self.delete(key, self.data[key].mod_revision)
        return self.rev


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


async def fresh(service_range: ServiceRange = RANGE) -> tuple[Registry, TxnEtcd]:
    etcd = TxnEtcd()
    registry = Registry(Store(etcd), (), ClusterIPs(etcd, service_range, seeded(3)))  # type: ignore[arg-type]
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
    return registry, etcd


def held(etcd: TxnEtcd) -> set[str]:
    return serviceips.held(list(etcd.data))


def test_allocates_holds_and_frees() -> None:
    async def scenario() -> None:
        registry, etcd = await fresh()
        made = await registry.create(r.SERVICES, "demo", service("web"))
        ip = made["spec"]["clusterIP"]
        assert RANGE.contains(ip)
        assert made["spec"]["clusterIPs"] == [ip]
        assert made["status"] == {"loadBalancer": {}}
        assert held(etcd) == {ip}
        with pytest.raises(ApiError) as taken:
            await registry.create(r.SERVICES, "demo", service("other", clusterIP=ip))
        assert taken.value.code == 422
        assert taken.value.message == (
            f'Service "other" is invalid: spec.clusterIPs[0]: Invalid value: "{ip}": '
            "provided IP is already allocated"
        )
        with pytest.raises(ApiError) as outside:
            await registry.create(r.SERVICES, "demo", service("other", clusterIP="10.0.0.1"))
        assert outside.value.code == 422
        assert "provided IP is not in the valid range" in outside.value.message
        await registry.delete(r.SERVICES, "demo", "web", {})
        assert held(etcd) == set()
        again = await registry.create(r.SERVICES, "demo", service("other", clusterIP=ip))
        assert again["spec"]["clusterIP"] == ip

    asyncio.run(scenario())


def test_concurrent_creates_get_distinct_addresses() -> None:
    async def scenario() -> None:
        small = ServiceRange.parse("198.18.32.0/27")  # a crowded range makes clashes likely
        registry, etcd = await fresh(small)
        # three API servers on one etcd, in a range so small that their picks clash
        servers = [Registry(registry.store, (), ClusterIPs(etcd, small, seeded(s))) for s in range(3)]  # type: ignore[arg-type]
        made = await asyncio.gather(
            *(servers[i % 3].create(r.SERVICES, "demo", service(f"s{i}")) for i in range(12))
        )
        ips = [m["spec"]["clusterIP"] for m in made]
        assert len(set(ips)) == 12
        assert held(etcd) == set(ips)

    asyncio.run(scenario())


def test_full_range_is_an_actionable_error() -> None:
    async def scenario() -> None:
        tiny = ServiceRange.parse("198.18.32.0/28")
        registry, _ = await fresh(tiny)
        for i in range(12):
            await registry.create(r.SERVICES, "demo", service(f"s{i}"))
        with pytest.raises(ApiError) as full:
            await registry.create(r.SERVICES, "demo", service("one-more"))
        assert full.value.code == 500
        assert "range is full" in full.value.message

    asyncio.run(scenario())


def test_updates_keep_move_and_release_the_address() -> None:
    async def scenario() -> None:
        registry, etcd = await fresh()
        made = await registry.create(r.SERVICES, "demo", service("web"))
        ip = made["spec"]["clusterIP"]
        replaced = await registry.update(
            r.SERVICES, "demo", "web", service("web", sessionAffinity="ClientIP")
        )
        assert replaced["spec"]["clusterIP"] == ip  # omitted on PUT: kept, as upstream
        with pytest.raises(ApiError) as moved:
            await registry.update(r.SERVICES, "demo", "web", service("web", clusterIP="198.18.40.1"))
        assert "field is immutable" in moved.value.message
        named = {
            "metadata": {"name": "web"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        }
        await registry.update(r.SERVICES, "demo", "web", named)
        assert held(etcd) == set()
        back = await registry.update(r.SERVICES, "demo", "web", service("web"))
        assert RANGE.contains(back["spec"]["clusterIP"])
        assert held(etcd) == {back["spec"]["clusterIP"]}
        dry = registry.dry_run()
        preview = await dry.create(r.SERVICES, "demo", service("preview"))
        assert RANGE.contains(preview["spec"]["clusterIP"])
        assert held(etcd) == {back["spec"]["clusterIP"]}

    asyncio.run(scenario())


def test_namespace_deletion_frees_addresses() -> None:
    async def scenario() -> None:
        registry, etcd = await fresh()
        await registry.create(r.SERVICES, "demo", service("web"))
        await registry.delete(r.NAMESPACES, "", "demo", {})
        for _ in range(200):
            if not held(etcd):
                break
            await asyncio.sleep(0.01)
        assert held(etcd) == set()
        await registry.close()

    asyncio.run(scenario())


def test_system_services_are_ensured_idempotently() -> None:
    async def scenario() -> None:
        registry, etcd = await fresh()
        await registry.bootstrap()
        for advertise in ("198.18.0.100", "198.18.0.100", "198.18.0.101"):
            await ensure_system_services(registry.create, registry.get, registry.update, RANGE, advertise)
        kubernetes = await registry.get(r.SERVICES, "default", "kubernetes")
        assert kubernetes["spec"]["clusterIP"] == "198.18.32.1"
        assert kubernetes["spec"]["ports"] == [
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
        ]
        assert "selector" not in kubernetes["spec"]
        assert kubernetes["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
        dns = await registry.get(r.SERVICES, "kube-system", "kube-dns")
        assert dns["spec"]["clusterIP"] == "198.18.32.10"
        assert [(p["name"], p["protocol"]) for p in dns["spec"]["ports"]] == [
            ("dns", "UDP"),
            ("dns-tcp", "TCP"),
        ]
        endpoints = await registry.get(r.ENDPOINTS, "default", "kubernetes")
        assert endpoints["subsets"][0]["addresses"] == [{"ip": "198.18.0.101"}]
        assert held(etcd) == {"198.18.32.1", "198.18.32.10"}
        with pytest.raises(ApiError) as missing:
            await registry.get(r.ENDPOINTS, "kube-system", "kube-dns")
        assert missing.value.code == 404
        await registry.close()

    asyncio.run(scenario())


# -- the API server's flags ---------------------------------------------------------------------------
BASE = ["--etcd-servers", "http://127.0.0.1:2379"]


def test_flags_default_and_reach_the_config() -> None:
    config = parse_args(BASE)
    assert (config.service_cluster_ip_range, config.advertise_address) == ("198.18.32.0/20", "")
    config = parse_args(
        [*BASE, "--service-cluster-ip-range=198.18.132.0/22", "--advertise-address=198.18.0.9"]
    )
    assert (config.service_cluster_ip_range, config.advertise_address) == ("198.18.132.0/22", "198.18.0.9")


@pytest.mark.parametrize(
    ("flag", "text"),
    [
        ("--service-cluster-ip-range=198.18.32.0/29", "too small"),
        ("--service-cluster-ip-range=fd00::/108", "IPv6"),
        ("--service-cluster-ip-range=198.18.32.7/20", "not a CIDR network address"),
        ("--advertise-address=lab-vip", "must be an IPv4 address"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(flag: str, text: str) -> None:
    with pytest.raises(UsageError, match=text) as refused:
        parse_args([*BASE, flag])
    assert flag.split("=", maxsplit=1)[0] in str(refused.value)


def test_a_held_system_address_is_reported_not_fatal() -> None:
    async def scenario() -> None:
        registry, _ = await fresh()
        await registry.bootstrap()
        await registry.create(r.SERVICES, "kube-system", service("squatter", clusterIP=RANGE.dns_ip))
        await ensure_system_services(registry.create, registry.get, registry.update, RANGE)
        assert (await registry.get(r.SERVICES, "default", "kubernetes"))["spec"][
            "clusterIP"
        ] == RANGE.kubernetes_ip
        with pytest.raises(ApiError) as missing:
            await registry.get(r.SERVICES, "kube-system", "kube-dns")
        assert missing.value.code == 404
        await registry.close()

    asyncio.run(scenario())
