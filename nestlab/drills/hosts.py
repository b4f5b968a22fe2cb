"""Drills on a host (an ESXi host's role): it fails, it restarts, it enters maintenance mode.

Each deploys a 3-replica web Deployment in the drill's namespace first, so there is a workload to
lose and get back, and picks a host that runs one of its replicas and not the depot (the
replacements pull their image from it).
"""

from __future__ import annotations

import time
from typing import Any

from nestlab import maintenance
from nestlab.drills.base import Drill, Session
from nestlab.drills.lab import POLL_S, DrillError, wait_until
from nestlab.drills.timeline import PHASES, Timeline, back_after_restart, restarts, split
from nestlab.spec.model import Role

Obj = dict[str, Any]
APP = "web"
REPLICAS = 3
RECOVERY_TIMEOUT_S = 600.0  # detection + podEvictionSeconds + boot on two loaded cores, with margin
MAINTENANCE_TIMEOUT_S = 600.0


def _victim(session: Session, pods: list[Obj]) -> str:
    """A host with a replica that does not carry the depot (the second host when it qualifies)."""
    lab = session.lab
    spared = lab.placed_on("depot")
    placed = {str((p.get("spec") or {}).get("nodeName")) for p in pods}
    hosts = lab.nodes(Role.HOST)
    candidates = [h for h in hosts if h != spared and h in placed]
    if not candidates:
        raise DrillError(f"no replica runs on a host that can be stopped (the depot is on {spared})")
    return hosts[1] if hosts[1] in candidates else candidates[0]


def _uid(pod: Obj) -> str:
    return str(pod["metadata"]["uid"])


def _on(pods: list[Obj], host: str) -> list[Obj]:
    return [p for p in pods if (p.get("spec") or {}).get("nodeName") == host]


def host_failure(session: Session) -> None:
    lab = session.lab
    pods = session.deploy(APP, REPLICAS)
    host = _victim(session, pods)
    timeline = Timeline(host, REPLICAS)
    session.undo(f"start {host}", lambda: lab.node_start(host, session.say))
    domain = [str(n.name) for n in lab.plan.nodes if str(n.placed_on) == host and str(n.name) != host]
    session.say(f"break: nestlab node stop {host} (a host failure: {', '.join(domain)} stop with it)")
    began = time.monotonic()
    lab.node_stop(host)
    stopped = time.monotonic()
    with timeline.lock:
        timeline.old = {_uid(p) for p in _on(pods, host)}

    def observe() -> bool:
        if lab.node_states().get(host) == "running":  # the shared lab: someone else started it
            raise DrillError(f"{host} was started again by someone else while the drill watched it fail")
        now = time.monotonic()
        node = lab.get(f"/api/v1/nodes/{host}")
        if node is not None:
            timeline.nodes_seen(now, {host: node})
        seen = session.pods(APP)
        if seen is not None:
            timeline.pods_seen(now, {_uid(p): p for p in seen})
        return timeline.complete()

    session.say(f"measure: detection, eviction (podEvictionSeconds), scheduling, boot of {REPLICAS} replicas")
    wait_until(observe, f"{REPLICAS} replicas Ready on other hosts", RECOVERY_TIMEOUT_S, POLL_S)
    seconds = split(stopped, timeline.first)
    session.figure(
        "stop_command_s", f"nestlab node stop {host} (host + nodes placed on it)", stopped - began, "s"
    )
    for phase in PHASES:
        session.figure(f"{phase}_s", f"{phase}, from the previous milestone", seconds[phase], "s")
    session.figure(
        "replicas_back_s",
        f"{REPLICAS} replicas Ready elsewhere, from the stop's return",
        seconds["total"],
        "s",
    )
    session.figure("pods_on_failed_host", f"replicas that were on {host}", len(timeline.old))
    session.verdict(f"Node {host}", "NotReady (unreachable taint)", "Ready")
    session.verdict(
        f"Deployment {APP}",
        f"{REPLICAS - len(timeline.old)}/{REPLICAS} serving",
        f"{REPLICAS}/{REPLICAS} Ready on other hosts",
    )


def _renewed(session: Session, host: str) -> str | None:
    lease = session.lab.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{host}")
    return None if lease is None else str((lease.get("spec") or {}).get("renewTime"))


def host_restart(session: Session) -> None:
    lab = session.lab
    pods = session.deploy(APP, REPLICAS)
    host = _victim(session, pods)
    before = {_uid(p): restarts(p) for p in _on(pods, host)}
    session.undo(f"start {host}", lambda: lab.node_start(host, session.say))
    session.say(f"break: nestlab node stop {host}, then start it again at once (a host reboot)")
    began = time.monotonic()
    lab.node_stop(host)
    stopped = time.monotonic()
    renewed_before = _renewed(session, host)
    lab.node_start(host, session.say)
    session.restored(f"start {host}")
    started = time.monotonic()
    agent = wait_until(
        lambda: _renewed(session, host) not in (None, renewed_before),
        f"{host}'s agent renewing its Lease",
        RECOVERY_TIMEOUT_S,
    )
    wait_until(
        lambda: back_after_restart(session.pods(APP) or [], before, REPLICAS),
        f"{REPLICAS} replicas serving again",
        RECOVERY_TIMEOUT_S,
    )
    back = time.monotonic()
    final = session.pods(APP) or []
    in_place = sum(1 for p in final if _uid(p) in before and restarts(p) > before[_uid(p)])
    session.figure("stop_command_s", f"nestlab node stop {host}", stopped - began, "s")
    session.figure(
        "start_command_s", f"nestlab node start {host} (boot, SSH answers)", started - stopped, "s"
    )
    session.figure("agent_back_s", "its agent renewed its Lease, from the start's return", agent, "s")
    session.figure(
        "replicas_back_s", f"{REPLICAS} replicas serving again, from the stop's return", back - stopped, "s"
    )
    session.figure("pods_restarted_in_place", f"replicas on {host} booted again there", in_place)
    session.figure("pods_replaced", f"replicas on {host} replaced elsewhere", len(before) - in_place)
    session.verdict(
        f"pods on {host}", "VMs gone with the host", f"{in_place} restarted in place (restartCount+1)"
    )


def maintenance_mode(session: Session) -> None:
    lab = session.lab
    pods = session.deploy(APP, REPLICAS)
    hosts_with = {str((p.get("spec") or {}).get("nodeName")) for p in pods}

    def cost(host: str) -> tuple[int, int]:
        """(pods of others with no controller: lost for good; pods of others) that maintenance evicts."""
        others = [p for p in lab.pods_on(host) if p["metadata"].get("namespace") != session.namespace]
        bare = [
            p
            for p in others
            if not any(r.get("controller") for r in p["metadata"].get("ownerReferences") or [])
        ]
        return len(bare), len(others)

    costs = {h: cost(h) for h in lab.nodes(Role.HOST) if h in hosts_with}
    host = min(costs, key=lambda h: costs[h])
    bare, others = costs[host]
    if bare:
        session.say(f"note: {bare} pod(s) without a controller on {host} will be evicted and not recreated")
    session.undo(f"nestlab host maintenance exit {host}", lambda: maintenance.leave(lab.name, host))
    session.say(
        f"break: nestlab host maintenance enter {host} ({others} pod(s) of other namespaces there too)"
    )
    began = time.monotonic()
    evacuation = maintenance.enter(lab.name, host, MAINTENANCE_TIMEOUT_S, session.say)
    emptied = time.monotonic()
    wait_until(
        lambda: (
            len([p for p in session.ready_pods(APP) if (p.get("spec") or {}).get("nodeName") != host])
            >= REPLICAS
        ),
        f"{REPLICAS} replicas Ready on other hosts",
        RECOVERY_TIMEOUT_S,
    )
    back = time.monotonic()
    left = lab.pods_on(host)
    session.figure("evacuation_s", f"{host} cordoned and empty", emptied - began, "s")
    session.figure("pods_evicted", "pods evicted (all namespaces)", len(evacuation.evicted))
    session.figure("foreign_pods_evicted", "pods of other namespaces on the host (evicted too)", others)
    session.figure(
        "replicas_back_s", f"{REPLICAS} replicas Ready elsewhere, from the enter", back - began, "s"
    )
    session.figure("pods_left_on_host", f"pods still on {host}", len(left))
    session.check(
        f"{host} is empty in maintenance mode", not left, ", ".join(p["metadata"]["name"] for p in left)
    )
    session.verdict(f"Node {host}", "SchedulingDisabled, no pods", "schedulable")


FAILURE = Drill(
    "host-failure",
    "a host fails (it and the nodes placed on it stop)",
    "Stops a host that runs a replica; measures detection, eviction, scheduling and boot "
    "until 3 replicas are Ready elsewhere.",
    (
        "The host is an ESXi host; its agent is the Spherelet. Stopping it takes the Supervisor VM and the",
        "LB placed on it down too, as a real host failure would. vSphere HA restarts VMs on other hosts;",
        "vSphere Pods are not restarted by HA: Kubernetes controllers recreate them. The node lifecycle",
        "controller sees the Lease expire (detection), waits tolerationSeconds (eviction), then the",
        "ReplicaSet creates replacements and DRS's role (the scheduler) places them on surviving hosts.",
    ),
    host_failure,
)
RESTART = Drill(
    "host-restart",
    "a host restarts (stop, then start at once)",
    "Stops and starts a host that runs a replica; measures when its agent is back "
    "and the replicas serve again.",
    (
        "A quick ESXi host reboot: its vSphere Pods' VMs die with it. If it is back before the eviction",
        "timeout, nothing is rescheduled: the Spherelet's role (the agent) finds pods bound to it with",
        "no VM and boots them again (restartCount+1, an Event says the host restarted), as HA would",
        "power VMs back on. Longer than podEvictionSeconds and the pods are replaced elsewhere instead.",
    ),
    host_restart,
)
MAINTENANCE = Drill(
    "maintenance",
    "a host enters maintenance mode",
    "Puts a host with a replica into maintenance mode and takes it out again; "
    "measures evacuation and replicas back.",
    (
        "Enter Maintenance Mode on an ESXi host of a Supervisor evacuates its vSphere Pods: they are",
        "not vMotioned, they are evicted (respecting PodDisruptionBudgets, the way DRS respects rules)",
        "and their controllers recreate them elsewhere. The host is cordoned (SchedulingDisabled) so",
        "nothing new lands on it; Exit Maintenance Mode uncordons it. The API never goes away.",
    ),
    maintenance_mode,
)
