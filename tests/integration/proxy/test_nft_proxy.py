"""The real rendered ruleset in a real kernel: ClusterIP spreading, incremental updates, affinity,
rejection without endpoints, loadBalancerSourceRanges on ingress IPs, and the baseline isolation of
pods (local ones and another host's) from the host's own ports, from pods, the host and a
management peer (see :mod:`tests.integration.proxy.netns` for the namespaces).
"""

from __future__ import annotations

import dataclasses

import pytest

from nestlab.proxy import rules
from nestlab.proxy.desired import Endpoint, ServicePort
from tests.integration.proxy.netns import (
    CLIENT,
    CLIENT_PORT,
    GATEWAY,
    HOST_MGMT,
    HOST_PORT,
    POD_PORT,
    PODS,
    REMOTE_POD,
    NetLab,
    netlab,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]
__all__ = ["netlab"]  # the fixture, imported so that pytest finds it here

WEB_IP, STICKY_IP, EMPTY_IP, HOST_SVC_IP, MGMT_SVC_IP = (f"10.96.0.{n}" for n in (10, 11, 12, 20, 21))
RANGED_IP, LB_IP = "10.96.0.30", "10.66.0.100"  # a LoadBalancer ingress IP is on the management network
SSH, AGENT = 22, 10250  # the host's own services a pod must never reach (here: HTTP servers, no sshd)
REQUESTS = 30  # both endpoints unseen in 30 random picks: probability 2 * 2**-30
DROP_TIMEOUT_S = 2.0  # a dropped SYN is retried for longer; this is how long a probe waits for it


def port(name: str, address: str, *endpoints: Endpoint, affinity: int | None = None) -> ServicePort:
    return ServicePort("demo", name, "http", "tcp", 80, (address,), tuple(endpoints), affinity)


P1, P2 = Endpoint(PODS["p1"], POD_PORT), Endpoint(PODS["p2"], POD_PORT)
WEB = port("web", WEB_IP, P1, P2)
STICKY = port("sticky", STICKY_IP, P1, P2, affinity=300)
EMPTY = port("empty", EMPTY_IP)
HOST_SVC = port("host", HOST_SVC_IP, Endpoint(GATEWAY, HOST_PORT))
MGMT_SVC = port("mgmt", MGMT_SVC_IP, Endpoint(CLIENT, CLIENT_PORT))
ALL = [WEB, STICKY, EMPTY, HOST_SVC, MGMT_SVC]


@pytest.fixture
def programmed(netlab: NetLab) -> NetLab:
    """The host namespace with the whole table for ``ALL`` freshly loaded."""
    netlab.nft.apply(rules.full(netlab.network, ALL))
    return netlab


def answers(lab: NetLab, ns: str, address: str, count: int = REQUESTS) -> list[str]:
    return lab.fetch(ns, f"http://{address}/who", count)


@pytest.mark.parametrize(
    "client",
    ["p3", "p1", "c", "h"],
    ids=["pod-on-the-bridge", "pod-reaching-itself", "management-peer", "host-output-hook"],
)
def test_cluster_ip_is_spread_over_every_endpoint(programmed: NetLab, client: str) -> None:
    assert set(answers(programmed, client, WEB_IP)) == {"p1", "p2"}


def test_incremental_update_removes_one_endpoint_then_rejects(programmed: NetLab) -> None:
    one = dataclasses.replace(WEB, endpoints=(P1,))
    commands = rules.update([WEB], [one])
    assert all(rules.svc_chain(STICKY) not in command for command in commands)
    programmed.nft.apply(commands)
    assert set(answers(programmed, "p3", WEB_IP)) == {"p1"}
    assert set(answers(programmed, "p3", STICKY_IP)) <= {"p1", "p2"}  # the others still work

    none = dataclasses.replace(WEB, endpoints=())
    programmed.nft.apply(rules.update([one], [none]))
    assert answers(programmed, "p3", WEB_IP, 3) == ["ERR:ConnectionRefusedError"] * 3

    programmed.nft.apply(rules.update([none], [WEB]))
    assert set(answers(programmed, "p3", WEB_IP)) == {"p1", "p2"}


def test_service_without_endpoints_is_refused_at_once(programmed: NetLab) -> None:
    for client in ("p3", "c", "h"):
        assert answers(programmed, client, EMPTY_IP, 2) == ["ERR:ConnectionRefusedError"] * 2


def test_client_ip_affinity_sticks_to_one_endpoint(programmed: NetLab) -> None:
    assert len(set(answers(programmed, "p3", STICKY_IP))) == 1
    assert len(set(answers(programmed, "c", STICKY_IP))) == 1
    remembered = [
        element["elem"]["val"] if isinstance(element, dict) else element  # dynamic: {"elem": {"val": ..}}
        for item in programmed.nft.listing()
        if "set" in item and item["set"]["name"].startswith("aff-")
        for element in item["set"].get("elem") or []
    ]
    assert PODS["p3"] in remembered
    assert set(answers(programmed, "p3", WEB_IP)) == {"p1", "p2"}  # affinity is per Service


def test_pods_reach_the_host_and_management_only_through_services(netlab: NetLab) -> None:
    netlab.nft.apply([f"add table {rules.FAMILY_TABLE}", f"delete table {rules.FAMILY_TABLE}"])
    host, mgmt = f"http://{GATEWAY}:{HOST_PORT}/who", f"http://{CLIENT}:{CLIENT_PORT}/who"
    assert netlab.fetch("p3", host) == ["host"]  # without the rules the pod reaches both: the test can fail
    assert netlab.fetch("p3", mgmt) == ["mgmt"]

    netlab.nft.apply(rules.full(netlab.network, ALL))
    for url in (host, f"http://{HOST_MGMT}:{HOST_PORT}/who", mgmt):
        assert netlab.fetch("p3", url, 1, DROP_TIMEOUT_S) == ["ERR:TimeoutError"], url
    assert answers(netlab, "p3", HOST_SVC_IP, 2) == ["host", "host"]
    assert answers(netlab, "p3", MGMT_SVC_IP, 2) == ["mgmt", "mgmt"]
    assert netlab.fetch("c", f"http://{PODS['p1']}:{POD_PORT}/who") == ["p1"]  # management -> pods stays open
    assert netlab.fetch("h", f"http://{PODS['p2']}:{POD_PORT}/who") == ["p2"]
    assert netlab.fetch("p3", f"http://{PODS['p1']}:{POD_PORT}/who") == ["p1"]  # pod to pod stays open


@pytest.fixture(scope="module")
def host_ports(netlab: NetLab) -> NetLab:
    """The host namespace also listening on SSH's and the agent's ports."""
    for number, who in ((SSH, "ssh"), (AGENT, "agent")):
        netlab.serve("h", "0.0.0.0", number, who)
        netlab.wait_answer("c", f"http://{HOST_MGMT}:{number}/who")
    return netlab


def test_no_pod_reaches_the_hosts_ssh_or_agent_on_its_pod_gateway(host_ports: NetLab) -> None:
    """A local pod (by the bridge) and another host's pod (by the management network, pod source
    address) both target the pod gateway's SSH and agent ports: both dropped."""
    lab = host_ports
    lab.nft.apply([f"add table {rules.FAMILY_TABLE}", f"delete table {rules.FAMILY_TABLE}"])
    for number in (SSH, AGENT):  # without the rules both get in: the test can fail
        assert lab.connect("p3", GATEWAY, number) == "open", number
        assert lab.connect("c", GATEWAY, number, source=REMOTE_POD) == "open", number

    lab.nft.apply(rules.full(lab.network, ALL))
    for number in (SSH, AGENT):
        assert lab.connect("p3", GATEWAY, number, timeout=DROP_TIMEOUT_S) == "ERR:TimeoutError", number
        remote = lab.connect("c", GATEWAY, number, source=REMOTE_POD, timeout=DROP_TIMEOUT_S)
        assert remote == "ERR:TimeoutError", f"another host's pod reached the pod gateway's port {number}"
        assert lab.connect("c", GATEWAY, number) == "open", number  # the management network still does


def served(lab: NetLab, ns: str, address: str, count: int) -> bool:
    """Whether every one of ``count`` fetches from ``ns`` was answered by a pod behind the Service."""
    got = answers(lab, ns, address, count)
    return len(got) == count and set(got) <= {"p1", "p2"}


def test_source_ranges_drop_other_clients_at_the_ingress_ip_not_the_cluster_ip(programmed: NetLab) -> None:
    lab = programmed
    ranged = dataclasses.replace(
        port("ranged", RANGED_IP, P1, P2),
        addresses=(RANGED_IP, LB_IP),
        load_balancer_ips=(LB_IP,),
        source_ranges=(f"{PODS['p1']}/32", f"{HOST_MGMT}/32"),
    )
    lab.nft.apply(rules.update([], [ranged]))
    assert served(lab, "p1", LB_IP, 4)  # inside the ranges: a pod and the host
    assert served(lab, "h", LB_IP, 4)
    assert lab.fetch("p3", f"http://{LB_IP}/who", 1, DROP_TIMEOUT_S) == ["ERR:TimeoutError"]
    assert served(lab, "p3", RANGED_IP, 4)  # the ClusterIP stays open, as upstream

    narrower = dataclasses.replace(ranged, source_ranges=(f"{PODS['p1']}/32",))  # an incremental change
    lab.nft.apply(rules.update([ranged], [narrower]))
    assert lab.fetch("h", f"http://{LB_IP}/who", 1, DROP_TIMEOUT_S) == ["ERR:TimeoutError"]
    assert served(lab, "p1", LB_IP, 2)

    opened = dataclasses.replace(narrower, source_ranges=None)
    lab.nft.apply(rules.update([narrower], [opened]))
    assert served(lab, "p3", LB_IP, 4)
