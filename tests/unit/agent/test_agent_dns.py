"""The agent hands every pod its names (hostname, resolv.conf, hosts) from its DNS flags, with fakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nestlab.agent import main as agent_main
from nestlab.agent import poddns
from nestlab.agent.agent import Agent, AgentConfig
from nestlab.agent.node import NodeInfo, NodeReporter
from nestlab.runtime import control
from tests.unit.agent.test_agent_reconcile import FakeClient, FakeImages, Launches, pod, settle, short_tmp

__all__ = ["short_tmp"]  # the fixture
DONE: list[control.Event] = [control.Init(1), control.PodDone("web", "Succeeded")]


def run_pod(tmp: Path, dns: poddns.ClusterDns, spec: dict[str, object]) -> tuple[Launches, FakeClient]:
    client, launches = FakeClient(), Launches(DONE)
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    tmp.mkdir(exist_ok=True)
    resolv = tmp / "resolv.conf"
    resolv.write_text("nameserver 198.18.0.1\nsearch lab.example\n")
    config = AgentConfig(
        "esx-01", tmp / "state", "depot:5000", 2000, 1024, cluster_dns=dns, resolv_conf=resolv
    )
    agent = Agent(config, client, reporter, FakeImages(tmp), launcher=launches)  # type: ignore[arg-type]
    obj = pod()
    obj["spec"].update(spec)

    async def scenario() -> None:
        await agent.sync("ADDED", obj)
        await settle(agent)

    asyncio.run(scenario())
    return launches, client


def test_cluster_first_pods_get_the_cluster_dns_and_their_hosts_file(short_tmp: Path) -> None:
    dns = poddns.ClusterDns(("198.18.32.10",), "cluster.local")
    launches, client = run_pod(short_tmp, dns, {"hostname": "db-0", "subdomain": "db"})
    ((description, _),) = launches.launched
    assert description.hostname == "db-0"
    assert description.resolv_conf == (
        "search ns.svc.cluster.local svc.cluster.local cluster.local lab.example\n"
        "nameserver 198.18.32.10\noptions ndots:5\n"
    )
    assert description.hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert not [e for e in client.created if e["type"] == "Warning"]


def test_without_cluster_dns_the_pod_falls_back_to_the_node_with_a_warning(short_tmp: Path) -> None:
    launches, client = run_pod(short_tmp, poddns.ClusterDns(), {})
    ((description, _),) = launches.launched
    assert description.resolv_conf == "search lab.example\nnameserver 198.18.0.1\n"
    assert [e["reason"] for e in client.created if e["type"] == "Warning"] == ["MissingClusterDNS"]


def test_host_network_and_unformable_names_fail_the_pod(short_tmp: Path) -> None:
    dns = poddns.ClusterDns(("198.18.32.10",))
    launches, client = run_pod(short_tmp, dns, {"hostNetwork": True})
    assert launches.launched == []
    assert client.statuses[-1]["phase"] == "Failed"
    assert "spec.hostNetwork" in client.statuses[-1]["message"]

    spec = {"hostname": "h" * 40, "subdomain": "sub", "setHostnameAsFQDN": True}
    launches, client = run_pod(short_tmp / "fqdn", dns, spec)
    assert launches.launched == []
    assert client.statuses[-1]["reason"] == "CreateContainerConfigError"
    assert "is too long" in client.statuses[-1]["message"]


def test_dns_flags_like_the_kubelets() -> None:
    base = ["--api-server=https://x:6443", "--node-name=n", "--node-ip=1.2.3.4", "--registry=r:5000"]
    base += ["--initrd=/i", "--kernel=/k"]
    args = agent_main.parse_args([*base, "--cluster-dns=198.18.32.10", "--cluster-dns=10.0.0.10,10.0.0.11"])
    dns, resolv = agent_main.cluster_dns(args)
    assert dns == poddns.ClusterDns(("198.18.32.10", "10.0.0.10", "10.0.0.11"), "cluster.local")
    assert resolv == Path("/etc/resolv.conf")
    args = agent_main.parse_args([*base, "--cluster-domain=lab.local.", "--resolv-conf="])
    assert agent_main.cluster_dns(args) == (poddns.ClusterDns((), "lab.local"), None)
    with pytest.raises(SystemExit):
        agent_main.parse_args([*base, "--cluster-dns=kube-dns"])
