"""Reading the lab's health from raw readings: HAProxy stats, ip addr, etcdctl JSON, Nodes."""

from __future__ import annotations

import json
from typing import Any

from nestlab.drills import health

STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status
supervisor-api,FRONTEND,,,0,1,2000,5,0,0,0,0,0,,,,,OPEN
supervisor-api,cp-1,0,0,0,1,,2,0,0,,0,,0,0,0,0,UP
supervisor-api,cp-2,0,0,0,1,,2,0,0,,0,,0,0,0,0,UP
supervisor-api,cp-3,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN
supervisor-api,BACKEND,0,0,0,1,200,5,0,0,0,0,,0,0,0,0,UP
"""
IP = (
    "2: host0    inet 198.18.100.11/24 brd 198.18.100.255 scope global host0\\  valid_lft forever\n"
    "2: host0    inet 198.18.100.5/24 scope global secondary host0\\  valid_lft forever\n"
)
MEMBERS = json.dumps(
    {"members": [{"ID": 11, "name": "cp-1"}, {"ID": 22, "name": "cp-2"}, {"ID": 33, "name": "cp-3"}]}
)


def node(name: str, ready: str = "True", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def test_backends_up_reads_the_status_column() -> None:
    assert health.backends_up(STAT) == {"cp-1", "cp-2"}
    assert health.backends_up("") == set()


def test_lb_problems_name_the_lb_and_the_servers_down() -> None:
    problems = health.lb_problems({"lb-1": STAT, "lb-2": None}, ["cp-1", "cp-2", "cp-3"])
    assert problems == ["HAProxy on lb-1 does not see cp-3 UP", "lb-2 does not answer over SSH"]


def test_vip_holders() -> None:
    assert health.holds_vip(IP, "198.18.100.5")
    assert not health.holds_vip(IP, "198.18.100.50")
    assert health.vip_problem(["lb-1"], "198.18.100.5") is None
    assert health.vip_problem([], "198.18.100.5") == "no load balancer holds the VIP 198.18.100.5"
    assert "on 2 load balancers" in str(health.vip_problem(["lb-1", "lb-2"], "198.18.100.5"))


def test_etcd_health_counts_healthy_endpoints() -> None:
    out = json.dumps(
        [
            {"endpoint": "https://198.18.100.22:2379", "health": True},
            {"endpoint": "https://198.18.100.23:2379", "health": False, "error": "context deadline exceeded"},
        ]
    )
    assert health.etcd_healthy(out) == {"https://198.18.100.22:2379"}
    assert health.etcd_healthy("Error: unhealthy cluster") == set()


def test_etcd_leader_maps_the_id_to_a_member_name() -> None:
    status = json.dumps([{"Endpoint": "https://127.0.0.1:2379", "Status": {"leader": 22}}])
    assert health.etcd_leader(status, MEMBERS) == "cp-2"


def test_no_leader_or_garbage_is_none() -> None:
    assert health.etcd_leader(json.dumps([{"Status": {"leader": 0}}]), MEMBERS) is None
    assert health.etcd_leader("", MEMBERS) is None
    assert health.etcd_leader("[]", "not json") is None


def test_node_problems() -> None:
    nodes = [
        node("esx-01"),
        node("esx-02", "Unknown"),
        node("esx-03", unschedulable=True, taints=[{"key": health.ATTESTATION_TAINT}]),
    ]
    hosts = ["esx-01", "esx-02", "esx-03", "esx-04"]
    assert health.node_problems(nodes, hosts) == [
        "Node esx-02 is not Ready",
        "Node esx-03 is cordoned (`nestlab host maintenance exit esx-03`)",
        "host esx-04 has no Node (its agent has not registered)",
    ]
    assert "Node esx-03 is tainted nestlab.dev/attestation-failed" in health.node_problems(
        nodes, hosts, trust=True
    )


def test_stopped_nodes() -> None:
    assert health.stopped_nodes({"cp-1": "running", "cp-2": "stopped"}) == ["node cp-2 is stopped"]
    assert health.stopped_nodes({"cp-1": "absent", "cp-2": "stopped"}) == [
        "none of its 2 nodes runs (`nestlab up` starts them)"
    ]
