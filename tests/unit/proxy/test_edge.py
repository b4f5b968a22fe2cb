"""The edge's pure parts: which ports a LoadBalancer Service gets, the nft text, flags and routes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from ipaddress import IPv4Network
from typing import Any

import pytest

from nestlab.errors import UsageError
from nestlab.proxy.desired import SOURCE_RANGES_ANNOTATION, Endpoint
from nestlab.proxy.edge import EdgePort, edge_ports, render_delete, render_full, render_update
from nestlab.proxy.edgemain import parse_args
from nestlab.proxy.edgeproxy import install_routes, parse_routes
from nestlab.runtime import proc

Obj = dict[str, Any]
POOL = IPv4Network("198.18.8.0/24")


def service(*, kind: str = "LoadBalancer", ingress: tuple[str, ...] = ("198.18.8.5",), **spec: Any) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {
            "type": kind,
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
            ],
            **spec,
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
    }


SLICE = {
    "metadata": {"name": "web-x", "namespace": "demo", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "ports": [
        {"name": "http", "port": 8080, "protocol": "TCP"},
        {"name": "dns", "port": 5353, "protocol": "UDP"},
    ],
    "endpoints": [
        {"addresses": ["198.19.1.5"], "conditions": {"ready": True}},
        {"addresses": ["198.19.2.7"]},  # ready unset: ready
        {"addresses": ["198.19.3.9"], "conditions": {"ready": False}},
    ],
}


def test_ports_of_a_load_balancer_service() -> None:
    http, dns = edge_ports(service(), [SLICE], POOL)
    assert http == EdgePort(
        "demo",
        "web",
        "http",
        "tcp",
        80,
        ("198.18.8.5",),
        (Endpoint("198.19.1.5", 8080), Endpoint("198.19.2.7", 8080)),
    )
    assert (dns.protocol, dns.port, dns.endpoints[0].port) == ("udp", 53, 5353)
    assert http.chain == "svc/demo/web/tcp/80"
    assert http.key == "demo/web:http"


def test_nothing_for_other_types_classes_pending_or_foreign_addresses() -> None:
    assert edge_ports(service(kind="ClusterIP"), [SLICE], POOL) == ()
    assert edge_ports(service(loadBalancerClass="example.com/lb"), [SLICE], POOL) == ()
    assert edge_ports(service(ingress=()), [SLICE], POOL) == ()
    # a status naming an address outside the pool (the API VIP, say) is never programmed
    assert edge_ports(service(ingress=("198.18.0.10",)), [SLICE], POOL) == ()
    (http, _) = edge_ports(service(ingress=("198.18.0.10", "198.18.8.7")), [SLICE], POOL)
    assert http.ips == ("198.18.8.7",)


def test_source_ranges() -> None:
    (http, _) = edge_ports(service(loadBalancerSourceRanges=["10.0.0.0/8", " 192.168.1.0/24"]), [SLICE], POOL)
    assert http.source_ranges == ("10.0.0.0/8", "192.168.1.0/24")
    assert edge_ports(service(loadBalancerSourceRanges=["nonsense"]), [SLICE], POOL) == ()  # closed, not open


def test_source_ranges_annotation_when_the_field_is_empty() -> None:
    annotated = service()
    annotated["metadata"]["annotations"] = {SOURCE_RANGES_ANNOTATION: " 192.168.1.0/24 , 10.0.0.0/8"}
    (http, _) = edge_ports(annotated, [SLICE], POOL)
    assert http.source_ranges == ("10.0.0.0/8", "192.168.1.0/24")
    annotated["spec"]["loadBalancerSourceRanges"] = ["172.16.0.0/12"]  # the field wins
    (http, _) = edge_ports(annotated, [SLICE], POOL)
    assert http.source_ranges == ("172.16.0.0/12",)


P1, P2 = Endpoint("198.19.1.5", 8080), Endpoint("198.19.2.7", 8080)


def port(*endpoints: Endpoint, ips: tuple[str, ...] = ("198.18.8.5",), number: int = 80) -> EdgePort:
    return EdgePort("demo", "web", "http", "tcp", number, ips, endpoints)


def test_full_render_replaces_the_table_in_one_transaction() -> None:
    commands = render_full(POOL, [port(P1, P2), port(number=443)])
    text = "\n".join(commands)
    assert commands[0].startswith(
        "add table ip nestlab-edge\ndelete table ip nestlab-edge\ntable ip nestlab-edge {"
    )
    assert "ct status dnat ct original ip daddr 198.18.8.0/24 masquerade" in text
    assert "ip daddr 198.18.8.0/24 meta l4proto tcp reject with tcp reset" in text
    assert (
        "add rule ip nestlab-edge svc/demo/web/tcp/80 meta l4proto tcp dnat ip to numgen random mod 2 "
        'map { 0 : 198.19.1.5 . 8080, 1 : 198.19.2.7 . 8080 } comment "demo/web:http"'
    ) in commands
    assert (
        "add element ip nestlab-edge service-ports { 198.18.8.5 . tcp . 443 : goto svc/demo/web/tcp/443 }"
        in commands
    )
    assert not any("svc/demo/web/tcp/443" in c and "dnat" in c for c in commands)  # no endpoint: no DNAT


def test_single_endpoint_and_source_ranges_render() -> None:
    ranged = EdgePort("demo", "web", "", "udp", 53, ("198.18.8.5",), (P1,), ("10.0.0.0/8",))
    commands = render_full(POOL, [ranged])
    assert (
        'add rule ip nestlab-edge svc/demo/web/udp/53 ip saddr != { 10.0.0.0/8 } drop comment "demo/web"'
        in commands
    )
    assert (
        'add rule ip nestlab-edge svc/demo/web/udp/53 meta l4proto udp dnat ip to 198.19.1.5:8080 comment "demo/web"'
        in commands
    )


def test_update_orders_element_removal_before_chain_deletion() -> None:
    old = [port(P1, P2), port(P1, number=443)]
    new = [port(P2, ips=("198.18.8.6",))]
    commands = render_update(old, new)
    assert set(commands[:2]) == {
        "delete element ip nestlab-edge service-ports { 198.18.8.5 . tcp . 80 }",
        "delete element ip nestlab-edge service-ports { 198.18.8.5 . tcp . 443 }",
    }
    assert (
        "add element ip nestlab-edge service-ports { 198.18.8.6 . tcp . 80 : goto svc/demo/web/tcp/80 }"
        in commands
    )
    assert commands[-1] == "delete chain ip nestlab-edge svc/demo/web/tcp/443"
    assert render_update(new, list(new)) == []


def test_update_of_endpoints_only_rewrites_the_chain() -> None:
    commands = render_update([port(P1)], [port(P1, P2)])
    assert commands[:2] == [
        "add chain ip nestlab-edge svc/demo/web/tcp/80",
        "flush chain ip nestlab-edge svc/demo/web/tcp/80",
    ]
    assert not any("element" in c for c in commands)
    assert render_delete() == ["add table ip nestlab-edge", "delete table ip nestlab-edge"]


def test_pod_routes() -> None:
    routes = parse_routes(["198.19.2.0/24=198.18.0.22", "198.19.1.0/24=198.18.0.21"])
    calls: list[list[str]] = []

    def run(argv: Sequence[str], *, timeout: float, **_: Any) -> proc.Result:
        calls.append(list(argv))
        return proc.Result(tuple(argv), 0, "", "")

    install_routes(routes, run=run)
    assert calls == [
        ["ip", "route", "replace", "198.19.1.0/24", "via", "198.18.0.21"],
        ["ip", "route", "replace", "198.19.2.0/24", "via", "198.18.0.22"],
    ]
    for bad in ("198.19.1.0/24", "198.19.1.1/24=198.18.0.21", "198.19.1.0/24=gateway"):
        with pytest.raises(ValueError, match="--pod-route"):
            parse_routes([bad])


def test_flags() -> None:
    base = [
        "--api-server",
        "https://198.18.0.10:6443",
        "--cert",
        "c",
        "--key",
        "k",
        "--ingress-cidr",
        "198.18.8.0/24",
    ]
    options = parse_args([*base, "--pod-route", "198.19.1.0/24=198.18.0.21"])
    assert options.pool == POOL
    assert options.routes == {IPv4Network("198.19.1.0/24"): "198.18.0.21"}
    with pytest.raises(UsageError, match="--ingress-cidr"):
        parse_args([*base[:-1], "198.18.8.1/24"])
    with pytest.raises(UsageError, match="SUBNET=VIA"):
        parse_args([*base, "--pod-route", "198.19.1.0/24"])
    with pytest.raises(UsageError, match="requires a user"):
        parse_args(["--api-server", "https://x:6443", "--ingress-cidr", "198.18.8.0/24"])


def test_client_ip_affinity_renders_sets_and_endpoint_chains() -> None:
    (http, _) = edge_ports(service(sessionAffinity="ClientIP"), [SLICE], POOL)
    assert http.affinity_timeout == 10800  # upstream's default
    (short, _) = edge_ports(
        service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
        [SLICE],
        POOL,
    )
    commands = render_update([], [short])
    aff = "aff/demo/web/tcp/80/198.19.1.5/8080/60"
    ep = "ep/demo/web/tcp/80/198.19.1.5/8080"
    assert (
        f"add set ip nestlab-edge {aff} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}" in commands
    )
    assert f'add rule ip nestlab-edge {ep} update @{aff} {{ ip saddr }} comment "demo/web:http"' in commands
    assert (
        f'add rule ip nestlab-edge svc/demo/web/tcp/80 ip saddr @{aff} goto {ep} comment "demo/web:http"'
        in commands
    )
    assert any(
        "numgen random mod 2 vmap { 0 : goto ep/demo/web/tcp/80/198.19.1.5/8080," in c for c in commands
    )
    # an endpoint leaves: its chain and set are deleted after the port chain stopped using them
    fewer = dataclasses.replace(short, endpoints=short.endpoints[1:])
    update = render_update([short], [fewer])
    assert update[-2:] == [f"delete chain ip nestlab-edge {ep}", f"delete set ip nestlab-edge {aff}"]
    assert update.index("flush chain ip nestlab-edge svc/demo/web/tcp/80") < len(update) - 2
