"""The load balancer pair: HAProxy balancing to every API server, the VIP on exactly one of them."""

from __future__ import annotations

import lab
import pytest
import testinfra
from testinfra.host import Host

testinfra_hosts = lab.hosts("load-balancer")


def _servers(host: Host) -> dict[str, str]:
    """svname -> status of the supervisor-api backend's servers, from HAProxy's stats socket."""
    rows = host.check_output("/usr/local/sbin/haproxy-cmd show stat").splitlines()
    header = rows[0].lstrip("# ").split(",")
    out = {}
    for row in rows[1:]:
        fields = dict(zip(header, row.split(","), strict=False))
        if fields.get("pxname") == "supervisor-api" and fields.get("svname") not in ("FRONTEND", "BACKEND"):
            out[fields["svname"]] = fields["status"]
    return out


def test_haproxy_sees_every_api_server_up(host: Host) -> None:
    assert host.service("haproxy").is_running
    expected = {n["name"]: "UP" for n in lab.nodes("control-plane")}
    assert _servers(host) == expected


def test_haproxy_listens_on_the_api_port(host: Host) -> None:
    assert host.socket("tcp://0.0.0.0:6443").is_listening


def test_keepalived_runs(host: Host) -> None:
    assert host.service("keepalived").is_running
    assert host.service("keepalived").is_enabled


def test_vip_is_held_by_exactly_one_load_balancer(host: Host, request: pytest.FixtureRequest) -> None:
    vip = lab.plan()["vip"]
    ssh_config = request.config.getoption("ssh_config")
    holders = []
    for node in lab.nodes("load-balancer"):
        peer = host if node["name"] == host.backend.hostname else None
        peer = peer or testinfra.get_host(f"paramiko://{node['name']}", ssh_config=ssh_config)
        if f" {vip}/" in peer.check_output("ip -o -4 addr show"):
            holders.append(node["name"])
    assert len(holders) == 1, f"VIP {vip} held by {holders or 'no load balancer'}"


def test_api_answers_through_the_vip(host: Host) -> None:
    vip = lab.plan()["vip"]
    out = host.run(f"curl -sS --cacert /etc/nestlab/pki/ca.crt https://{vip}:6443/readyz")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_nestlab_edge_runs_with_its_table(host: Host) -> None:
    """LoadBalancer Services: nestlab-edge keeps table ip nestlab-edge on both load balancers."""
    edge = host.service("nestlab-edge")
    assert edge.is_running
    assert edge.is_enabled
    table = host.check_output("nft list table ip nestlab-edge")
    assert f"ip daddr {lab.plan()['networks']['ingress']} " in table
    assert host.sysctl("net.ipv4.ip_forward") == 1


def test_edge_routes_to_every_host_pod_subnet(host: Host) -> None:
    routes = host.check_output("ip -4 route show")
    for node in lab.nodes("host"):
        assert f"{node['podSubnet']} via {node['address']} " in routes, routes
