"""Is the lab whole? The readings a drill takes before it breaks anything and after it restores.

Pure: each function turns one raw reading (HAProxy's stats CSV, ``ip -o addr``, etcdctl's JSON,
the API's Node list, the substrate's node states) into the problems it shows, as sentences an
administrator can act on. :meth:`nestlab.drills.lab.DrillLab.health` takes the readings; an empty
list of problems means healthy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from nestlab.drills.timeline import condition

Obj = dict[str, Any]
BACKEND = "supervisor-api"  # the HAProxy backend of the API servers (roles/load_balancer)
ATTESTATION_TAINT = "nestlab.dev/attestation-failed"


def backends_up(stat_csv: str) -> set[str]:
    """The API servers an LB's HAProxy marks UP (``haproxy-cmd show stat``)."""
    up = set()
    for row in stat_csv.splitlines():
        cells = row.split(",")
        if len(cells) > 17 and cells[0] == BACKEND and cells[1].startswith("cp-") and cells[17] == "UP":
            up.add(cells[1])
    return up


def holds_vip(ip_addr: str, vip: str) -> bool:
    """Whether ``ip -o -4 addr show`` lists the VIP."""
    return f" {vip}/" in ip_addr


def etcd_healthy(health_json: str) -> set[str]:
    """Endpoints ``etcdctl endpoint health --cluster -w json`` reports healthy (empty when unreadable)."""
    try:
        entries = json.loads(health_json or "[]")
    except ValueError:
        return set()
    return {str(e.get("endpoint")) for e in entries if isinstance(e, dict) and e.get("health") is True}


def etcd_leader(status_json: str, members_json: str) -> str | None:
    """The member name of the leader one endpoint reports (None: no leader or unreadable)."""
    try:
        statuses = json.loads(status_json)
        members = json.loads(members_json).get("members") or []
    except (ValueError, AttributeError):
        return None
    names = {m.get("ID"): m.get("name") for m in members}
    leaders = {(s.get("Status") or {}).get("leader") for s in statuses if isinstance(s, dict)}
    leaders.discard(0)
    leaders.discard(None)
    if len(leaders) != 1:
        return None
    return str(names.get(leaders.pop())) if leaders else None


def node_problems(nodes: Iterable[Obj], hosts: Iterable[str], *, trust: bool = False) -> list[str]:
    """Hosts whose Node is missing, not Ready or cordoned (and, with ``trust``, tainted by attestation)."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    problems = []
    for host in hosts:
        node = by_name.get(host)
        if node is None:
            problems.append(f"host {host} has no Node (its agent has not registered)")
            continue
        if condition(node, "Ready") != "True":
            problems.append(f"Node {host} is not Ready")
        if (node.get("spec") or {}).get("unschedulable"):
            problems.append(f"Node {host} is cordoned (`nestlab host maintenance exit {host}`)")
        taints = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []}
        if trust and ATTESTATION_TAINT in taints:
            problems.append(f"Node {host} is tainted {ATTESTATION_TAINT}")
    return problems


def stopped_nodes(states: Mapping[str, str]) -> list[str]:
    """Nodes the substrate does not run (a drill never starts on, or leaves, a stopped node)."""
    if states and all(state != "running" for state in states.values()):
        return [f"none of its {len(states)} nodes runs (`nestlab up` starts them)"]
    return [f"node {name} is {state}" for name, state in states.items() if state != "running"]


def lb_problems(stats: Mapping[str, str | None], cps: list[str]) -> list[str]:
    """LBs that do not answer or do not see every API server UP."""
    problems = []
    for lb, csv in stats.items():
        if csv is None:
            problems.append(f"{lb} does not answer over SSH")
            continue
        down = sorted(set(cps) - backends_up(csv))
        if down:
            problems.append(f"HAProxy on {lb} does not see {', '.join(down)} UP")
    return problems


def vip_problem(holders: list[str], vip: str) -> str | None:
    """None when exactly one LB holds the VIP."""
    if len(holders) == 1:
        return None
    if not holders:
        return f"no load balancer holds the VIP {vip}"
    return f"the VIP {vip} is on {len(holders)} load balancers ({', '.join(holders)})"
