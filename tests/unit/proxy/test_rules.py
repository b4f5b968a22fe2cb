"""The rendered nftables commands mean what the proxy intends (checked through a strict model)."""

from __future__ import annotations

import dataclasses

import pytest

from nestlab.proxy import rules
from nestlab.proxy.desired import Endpoint, ServicePort
from tests.unit.proxy.nftmodel import RefusedError, load

NETWORK = rules.HostNetwork("nlpods", "198.19.0.0/16", "198.18.0.0/24", "198.19.1.0/24")
A, B, C = Endpoint("198.19.1.2", 8080), Endpoint("198.19.2.2", 8080), Endpoint("198.19.3.2", 8080)


def port(name: str = "web", *endpoints: Endpoint, ip: str = "198.18.32.5", **changes: object) -> ServicePort:
    base = ServicePort("demo", name, "http", "tcp", 80, (ip,), tuple(endpoints))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


WEB = port("web", A, B)
API = port("api", C, ip="198.18.32.6")
LB_IP = "198.18.8.5"
GUARDED = port(
    "web", A, B, addresses=("198.18.32.5", LB_IP), load_balancer_ips=(LB_IP,), source_ranges=("10.0.0.0/8",)
)


def test_full_table_hooks_the_services_map_and_isolation() -> None:
    table = load(rules.full(NETWORK, [WEB]))
    assert table.chains["nat-prerouting"] == ["jump services"]
    assert table.chains["nat-output"] == ["jump services"]
    assert table.chains["services"] == ["ip daddr . meta l4proto . th dport vmap @service-ips"]
    assert table.maps["service-ips"] == {"198.18.32.5 . tcp . 80": f"goto {rules.svc_chain(WEB)}"}
    masquerade = table.chains["masquerading"]
    assert "ct status dnat ip saddr != 198.19.0.0/16 masquerade fully-random" in masquerade
    assert (
        "ct status dnat ip saddr 198.19.1.0/24 ip daddr 198.19.1.0/24 masquerade fully-random" in masquerade
    )
    assert 'iifname "nlpods" jump pod-guard' in table.chains["filter-input"]
    assert "ip saddr 198.19.0.0/16 jump pod-guard" in table.chains["filter-input"]
    assert 'iifname "nlpods" ip daddr 198.18.0.0/24 jump pod-guard' in table.chains["filter-forward"]
    guard = table.chains["pod-guard"]
    assert guard[:2] == ["ct state established,related return", "ct status dnat return"]
    assert guard[2].startswith("counter drop")


def test_other_hosts_pods_are_guarded_on_input_whatever_the_interface() -> None:
    """A pod on another host reaching this host's pod gateway (198.19.1.1:22) arrives by the
    management interface with a pod source, not by the bridge: only the pod-source rule guards it
    (the issue's pods reaching another host's SSH), and it runs before anything accepts."""
    chain = load(rules.full(NETWORK, [])).chains["filter-input"]
    bridge, pods = 'iifname "nlpods" jump pod-guard', "ip saddr 198.19.0.0/16 jump pod-guard"
    assert bridge in chain
    assert pods in chain
    assert not [rule for rule in chain if "accept" in rule]
    assert [rule for rule in chain if "pod-guard" in rule] == [bridge, pods]


def test_source_ranges_guard_the_ingress_ips_before_dnat() -> None:
    commands = rules.full(NETWORK, [GUARDED])
    table = load(commands)
    for hook in ("prerouting", "output"):
        assert (
            f"add chain ip nestlab filter-{hook}-pre-dnat "
            f"{{ type filter hook {hook} priority -110; policy accept; }}" in commands
        )
        assert table.chains[f"filter-{hook}-pre-dnat"] == ["jump firewall-check"]
    assert table.chains["firewall-check"] == ["ip daddr . meta l4proto . th dport vmap @firewall-ips"]
    firewall = rules.fw_chain(GUARDED)
    assert table.maps["firewall-ips"] == {f"{LB_IP} . tcp . 80": f"goto {firewall}"}  # not the ClusterIP
    assert table.chains[firewall] == [
        'ip saddr != { 10.0.0.0/8 } counter drop comment "outside loadBalancerSourceRanges"'
    ]
    assert set(table.maps["service-ips"]) == {"198.18.32.5 . tcp . 80", f"{LB_IP} . tcp . 80"}


def test_no_source_ranges_no_firewall_and_unusable_ranges_drop_everyone() -> None:
    open_port = dataclasses.replace(GUARDED, source_ranges=None)
    table = load(rules.full(NETWORK, [open_port]))
    assert table.maps["firewall-ips"] == {}
    assert not [name for name in table.chains if name.startswith("fw-")]
    closed = dataclasses.replace(GUARDED, source_ranges=())
    table = load(rules.full(NETWORK, [closed]))
    assert table.chains[rules.fw_chain(closed)] == ['counter drop comment "outside loadBalancerSourceRanges"']
    no_ingress = dataclasses.replace(GUARDED, load_balancer_ips=())  # no LB address yet: nothing to guard
    assert load(rules.full(NETWORK, [no_ingress])).maps["firewall-ips"] == {}


def test_source_ranges_apply_with_no_endpoints_too() -> None:
    empty = dataclasses.replace(GUARDED, endpoints=())
    table = load(rules.full(NETWORK, [empty]))
    assert table.maps["firewall-ips"] == {f"{LB_IP} . tcp . 80": f"goto {rules.fw_chain(empty)}"}
    assert f"{LB_IP} . tcp . 80" in table.maps["no-endpoint-services"]


def test_full_table_replaces_the_old_one_in_one_transaction() -> None:
    commands = rules.full(NETWORK, [WEB])
    assert commands[:3] == ["add table ip nestlab", "delete table ip nestlab", "add table ip nestlab"]
    table = load(commands)
    table.apply(rules.full(NETWORK, [API]))  # the second load removes WEB entirely
    assert table.maps["service-ips"] == {"198.18.32.6 . tcp . 80": f"goto {rules.svc_chain(API)}"}
    assert not [name for name in table.chains if name.startswith("ep-") and name != rules.ep_chain(API, C)]


def test_endpoints_are_spread_with_numgen_to_dnat_chains() -> None:
    table = load(rules.full(NETWORK, [WEB]))
    first, second = rules.ep_chain(WEB, A), rules.ep_chain(WEB, B)
    assert table.chains[rules.svc_chain(WEB)] == [
        f"numgen random mod 2 vmap {{ 0 : goto {first}, 1 : goto {second} }}"
    ]
    assert table.chains[first] == ["meta l4proto tcp dnat to 198.19.1.2:8080"]
    assert table.chains[second] == ["meta l4proto tcp dnat to 198.19.2.2:8080"]


def test_one_endpoint_needs_no_numgen() -> None:
    table = load(rules.full(NETWORK, [API]))
    assert table.chains[rules.svc_chain(API)] == [f"goto {rules.ep_chain(API, C)}"]


def test_client_ip_affinity_checks_the_sets_before_numgen() -> None:
    sticky = dataclasses.replace(WEB, affinity_timeout=600)
    table = load(rules.full(NETWORK, [sticky]))
    first, second = rules.affinity_set(sticky, A), rules.affinity_set(sticky, B)
    assert table.sets[first] == table.sets[second]
    assert "timeout 600s" in table.sets[first]
    assert "dynamic,timeout" in table.sets[first]
    chain = table.chains[rules.svc_chain(sticky)]
    assert chain[:2] == [
        f"ip saddr @{first} goto {rules.ep_chain(sticky, A)}",
        f"ip saddr @{second} goto {rules.ep_chain(sticky, B)}",
    ]
    assert chain[2].startswith("numgen random mod 2")
    assert table.chains[rules.ep_chain(sticky, A)][0] == f"update @{first} {{ ip saddr }}"


def test_a_port_without_endpoints_is_rejected_not_proxied() -> None:
    empty = port("empty", ip="198.18.32.7", protocol="udp", port=53)
    table = load(rules.full(NETWORK, [empty]))
    assert table.maps["no-endpoint-services"] == {"198.18.32.7 . udp . 53": "goto reject-chain"}
    assert table.maps["service-ips"] == {}
    assert rules.svc_chain(empty) not in table.chains
    assert table.chains["reject-chain"][0].startswith("counter reject")
    for hook in ("filter-input", "filter-forward", "filter-output"):
        assert "ip daddr . meta l4proto . th dport vmap @no-endpoint-services" in table.chains[hook]


def test_names_are_short_stable_and_distinct() -> None:
    assert rules.svc_chain(WEB) == rules.svc_chain(
        port("web", C, ip="198.18.32.9")
    )  # endpoints, IP: same chain
    assert rules.svc_chain(WEB) != rules.svc_chain(port("web", port_name="https"))
    assert rules.svc_chain(WEB) != rules.svc_chain(dataclasses.replace(WEB, namespace="other"))
    assert rules.ep_chain(WEB, A) != rules.ep_chain(WEB, B)
    assert len(rules.svc_chain(WEB)) <= 16
    assert len(rules.ep_chain(WEB, A)) <= 16


STATES = {
    "two endpoints": (WEB,),
    "one endpoint": (port("web", A),),
    "another endpoint": (port("web", C),),
    "no endpoints": (port("web"),),
    "affinity": (dataclasses.replace(WEB, affinity_timeout=60),),
    "longer affinity": (dataclasses.replace(WEB, affinity_timeout=120),),
    "new address": (port("web", A, B, ip="198.18.32.99"),),
    "renamed port": (port("web", A, B, port_name="www"),),
    "udp": (port("web", A, B, protocol="udp"),),
    "two ports": (WEB, port("web", A, port_name="https", port=443)),
    "source ranges": (GUARDED,),
    "other source ranges": (dataclasses.replace(GUARDED, source_ranges=("10.0.0.0/8", "192.168.0.0/16")),),
    "closed ranges": (dataclasses.replace(GUARDED, source_ranges=()),),
    "ranges, no endpoints": (dataclasses.replace(GUARDED, endpoints=()),),
    "deleted": (),
}


@pytest.mark.parametrize("before", list(STATES))
@pytest.mark.parametrize("after", list(STATES))
def test_an_update_gives_the_table_a_full_rebuild_gives(before: str, after: str) -> None:
    table = load(rules.full(NETWORK, [API, *STATES[before]]))
    table.apply(rules.update(STATES[before], STATES[after]))  # RefusedError if nft would refuse it
    expected = load(rules.full(NETWORK, [API, *STATES[after]]))
    assert (table.chains, table.sets, table.maps) == (expected.chains, expected.sets, expected.maps)


def test_an_update_touches_only_that_service() -> None:
    commands = rules.update([WEB], [port("web", A)])
    others = {rules.svc_chain(API), rules.ep_chain(API, C)}
    assert commands
    assert not [command for command in commands if any(name in command for name in others)]
    assert not [command for command in commands if "table" in command.split()[:2]]


def test_removing_one_endpoint_deletes_its_chain_and_affinity_set() -> None:
    sticky = dataclasses.replace(WEB, affinity_timeout=60)
    fewer = dataclasses.replace(sticky, endpoints=(A,))
    commands = rules.update([sticky], [fewer])
    assert f"flush chain ip nestlab {rules.svc_chain(sticky)}" in commands
    assert f"delete chain ip nestlab {rules.ep_chain(sticky, B)}" in commands
    assert f"delete set ip nestlab {rules.affinity_set(sticky, B)}" in commands
    assert not [c for c in commands if rules.ep_chain(sticky, A) in c and "goto" not in c]  # kept as is


def test_removing_the_last_endpoint_moves_the_port_to_the_reject_map() -> None:
    table = load(rules.full(NETWORK, [port("web", A)]))
    table.apply(rules.update([port("web", A)], [port("web")]))
    assert not [name for name in table.chains if name.startswith(("svc-", "ep-"))]
    assert table.maps["service-ips"] == {}
    assert table.maps["no-endpoint-services"] == {"198.18.32.5 . tcp . 80": "goto reject-chain"}


def test_nothing_changed_means_no_transaction() -> None:
    assert rules.update([WEB], [port("web", B, A)]) == []


def test_the_model_refuses_what_nft_refuses() -> None:
    table = load(rules.full(NETWORK, [WEB]))
    with pytest.raises(RefusedError):
        table.apply([f"delete chain ip nestlab {rules.ep_chain(WEB, A)}"])  # still referenced
    with pytest.raises(RefusedError):
        table.apply(["delete element ip nestlab service-ips { 198.18.32.77 . tcp . 80 }"])
