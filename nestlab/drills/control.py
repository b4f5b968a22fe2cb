"""Drills on the Supervisor control plane: the etcd leader's node, the VIP holder, the quorum.

Each stops lab nodes with ``nestlab node stop`` (a control-plane or load-balancer node alone, not
its host) and starts them again in its restore step; the shared runner measures what clients saw
through the VIP meanwhile. The leader-loss drill comes in two kinds: a clean stop (etcd hands its
leadership over as it shuts down) and a hard one (``nestlab node stop --hard``: the node's power is
pulled, the other members notice only when heartbeats stop and elect after the election timeout),
the failure that decides the failover time.
"""

from __future__ import annotations

import time

from nestlab import labnodes
from nestlab.drills import probe, report
from nestlab.drills.base import Drill, Session
from nestlab.drills.lab import DrillError, wait_until
from nestlab.spec.model import Role

ELECTION_TIMEOUT_S = 120.0  # etcd elects in seconds; SSH polls on a loaded machine are slow
VIP_MOVE_TIMEOUT_S = 60.0  # keepalived moves the VIP after three missed adverts (~3 s)
REFUSAL_TIMEOUT_S = 60.0  # writes must be refused soon after the quorum is gone
REFUSED_WINDOW_S = 5.0  # keep writing this long without quorum (and after it returns), to count


def _stop(session: Session, node: str, *, hard: bool = False) -> float:
    """Stop ``node`` (its restart registered first), its power pulled when ``hard``; when the stop
    command returned."""
    session.undo(f"start {node}", lambda: session.lab.node_start(node, session.say))
    if hard:
        session.say(f"break: nestlab node stop --hard {node}")
        labnodes.node_stop(session.lab.name, node, hard=True)
    else:
        session.say(f"break: nestlab node stop {node}")
        session.lab.node_stop(node)
    return time.monotonic()


def leader_loss(session: Session, *, hard: bool = False) -> None:
    lab = session.lab
    cps = lab.nodes(Role.CONTROL_PLANE)
    leader = lab.etcd_leader()
    if leader is None:
        raise DrillError("etcd reports no leader before the drill")
    session.say(f"etcd leader: {leader} (its API server and, maybe, the controller's leadership go with it)")
    began = time.monotonic()
    stopped = _stop(session, leader, hard=hard)
    how = "its power pulled (--hard)" if hard else "a clean shutdown"
    session.figure("stop_command_s", f"nestlab node stop {leader} ({how})", stopped - began, "s")
    others = [cp for cp in cps if cp != leader]
    found: dict[str, str] = {}

    def elected() -> bool:
        now = lab.etcd_leader(others)
        if now is not None and now != leader:
            found["leader"] = now
            return True
        return False

    wait_until(elected, "a new etcd leader", ELECTION_TIMEOUT_S)
    session.figure(
        "new_leader_after_s", "a new etcd leader, from the stop command", time.monotonic() - began, "s"
    )
    session.figure("old_leader", "etcd leader stopped", leader)
    session.figure("new_leader", "etcd leader elected", found["leader"])
    session.lab.api(
        "POST",
        f"/api/v1/namespaces/{session.namespace}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "written-without-leader-node"}},
    )
    session.check("a write through the VIP succeeds with two members", True)
    session.verdict(
        "etcd quorum", f"PASSED: 2 of 3 members, {found['leader']} leads", "PASSED: 3 of 3 members"
    )


def vip_holder_loss(session: Session) -> None:
    lab = session.lab
    holders = lab.vip_holders()
    if len(holders) != 1:
        raise DrillError(f"expected one VIP holder, found {holders}")
    holder = holders[0]
    session.say(f"the VIP {lab.vip} is on {holder}")
    began = time.monotonic()
    _stop(session, holder)
    others = [lb for lb in lab.nodes(Role.LOAD_BALANCER) if lb != holder]
    took = wait_until(
        lambda: any(h in others for h in lab.vip_holders()),
        "the VIP on the other load balancer",
        VIP_MOVE_TIMEOUT_S,
        poll=0.5,
    )
    stop_s = time.monotonic() - began - took
    session.figure("stop_command_s", f"nestlab node stop {holder}", stop_s, "s")
    session.figure("vip_moved_after_s", "the VIP on the other LB, from the stop's return", took, "s")
    session.figure("vip_holder_before", "VIP holder before", holder)
    session.figure("vip_holder_during", "VIP holder during", ", ".join(lab.vip_holders()))
    session.say(f"restore: nestlab node start {holder}")
    lab.node_start(holder, session.say)
    session.restored(f"start {holder}")
    restarted = time.monotonic()
    wait_until(
        lambda: lab.vip_holders() == [holder], f"the VIP back on {holder}", VIP_MOVE_TIMEOUT_S, poll=0.5
    )
    session.figure(
        "vip_back_after_s",
        f"the VIP back on {holder} (priority, preemption), from the start",
        time.monotonic() - restarted,
        "s",
    )
    session.figure("vip_holder_after", "VIP holder after the restore", ", ".join(lab.vip_holders()))


def quorum_loss(session: Session) -> None:
    lab = session.lab
    cps = lab.nodes(Role.CONTROL_PLANE)
    victims = cps[1:]  # cp-2 and cp-3: cp-1 alone keeps 1 of 3 members, no majority
    writes = probe.WriteProbe(lab.credentials, session.namespace)
    writes.start()
    try:
        wait_until(lambda: any(s.ok for s in writes.snapshot()), "a first acknowledged write", 60, poll=0.2)
        _stop(session, victims[0])
        session.say(f"{victims[0]} stopped: 2 of 3 members still form a majority; writes go on")
        # The second one loses its power (--hard): the quorum goes at a known moment, when the
        # command returns, instead of somewhere inside a clean shutdown lasting seconds.
        second = time.monotonic()
        gone = _stop(session, victims[1], hard=True)
        wait_until(
            lambda: any(not s.ok and s.at >= second for s in writes.snapshot()),
            "a refused write without quorum",
            REFUSAL_TIMEOUT_S,
            poll=0.2,
        )
        refusal = next(s for s in writes.snapshot() if not s.ok and s.at >= second)
        session.figure(
            "first_refusal_after_s",
            f"first refused write, from {victims[1]}'s power pulled (the quorum gone)",
            refusal.at - gone,
            "s",
        )
        session.figure(
            "refusal_code", "its HTTP status (503: no connection or ServiceUnavailable)", refusal.code
        )
        session.figure("refusal_message", "its message", refusal.message)
        # Keep writing without quorum for a while: a write answered then (after a margin for requests
        # sent before the second member went) would have been acknowledged without a majority.
        time.sleep(max(0.0, gone + probe.WRITE_TIMEOUT_S + REFUSED_WINDOW_S - time.monotonic()))
        restart = time.monotonic()
        ok_without = [
            s.name for s in writes.snapshot() if s.ok and gone + probe.WRITE_TIMEOUT_S < s.at < restart
        ]
        # Start them now (restore would too) so the probe sees writes come back.
        for node in victims:
            session.say(f"restore: start {node}")
            lab.node_start(node, session.say)
            session.restored(f"start {node}")
        restarted = time.monotonic()
        wait_until(
            lambda: any(s.ok and s.at >= restarted for s in writes.snapshot()),
            "writes accepted again",
            600,
            poll=1.0,
        )
        back = next(s for s in writes.snapshot() if s.ok and s.at >= restarted)
        session.figure(
            "writes_back_after_s", "writes acknowledged again, from the restart", back.at - restarted, "s"
        )
        time.sleep(REFUSED_WINDOW_S)  # a few more writes with the quorum back
    finally:
        samples = writes.stop()
    acked = probe.acknowledged(samples)
    before = sum(1 for s in samples if s.ok and s.at < second)
    session.figure("writes_acknowledged_before", "writes acknowledged before the quorum was lost", before)
    session.figure(
        "writes_refused", "writes refused or unanswered without quorum", sum(1 for s in samples if not s.ok)
    )
    session.figure(
        "writes_acknowledged_after",
        "writes acknowledged once the quorum returned",
        sum(1 for s in samples if s.ok and s.at >= restarted),
    )
    session.figure("writes_acknowledged", "writes acknowledged in all", len(acked))
    found = {
        name: (obj.get("data") or {}).get("n")
        for name in acked
        if (obj := lab.get(f"/api/v1/namespaces/{session.namespace}/configmaps/{name}")) is not None
    }
    lost = report.lost_objects(acked, found)
    session.figure(
        "acknowledged_writes_lost", "acknowledged writes missing after the quorum returned", len(lost)
    )
    session.check("no acknowledged write was lost", not lost, ", ".join(lost[:10]))
    session.check("no write was acknowledged without quorum", not ok_without, ", ".join(ok_without))
    session.verdict("etcd quorum", "FAILED: 1 of 3 members, no leader", "PASSED: 3 of 3 members")


LEADER = Drill(
    "control-plane-leader-loss",
    "the control-plane node of the etcd leader stops",
    "Stops the cp node whose etcd member leads; measures the API gap through the VIP "
    "and the time to a new leader.",
    (
        "The Supervisor's three control-plane VMs each run an etcd member; one leads, ordering every write.",
        "Stopping its VM is the failure of one Supervisor VM: HAProxy (the NSX Edge LB's role) marks",
        "that API server DOWN, the two other members elect a new leader after the election timeout,",
        "and the API answers again through the same VIP. Nothing acknowledged is lost: etcd acknowledges",
        "a write only once a majority stored it. vSphere HA would restart the VM; here `node start` does.",
    ),
    leader_loss,
)
LEADER_HARD = Drill(
    "control-plane-leader-kill",
    "the control-plane node of the etcd leader loses its power",
    "Pulls the power of the cp node whose etcd member leads (no clean shutdown); measures the API gap "
    "through the VIP and the time to a new leader.",
    (
        "A Supervisor VM that fails at once (its ESXi host's power, a guest kernel panic) says goodbye to",
        "nobody: its etcd member hands over no leadership and its API server drains no connection.",
        "The two other members notice when the leader's heartbeats stop (100 ms apart) and one calls an",
        "election after its randomized election timeout (1-2 s); HAProxy drops the dead API server on its",
        "first refused connection. Writes acknowledged before are all still there (a majority stored them).",
    ),
    lambda session: leader_loss(session, hard=True),
)
VIP = Drill(
    "vip-holder-loss",
    "the load balancer holding the API's VIP stops",
    "Stops the LB node that holds the VIP; measures the API gap and how fast the VIP moves to the other LB.",
    (
        "The VIP is the Supervisor's Kubernetes API address, served by an NSX Edge load balancer in vSphere.",
        "Here two LB nodes run keepalived (VRRP): the backup takes the address after three missed adverts.",
        "Clients keep the same address; a request in flight fails once and the next one succeeds,",
        "like an NSX Edge failover in an Edge cluster. When the stopped LB returns it takes the VIP back",
        "(higher priority, preemption): a second, shorter move.",
    ),
    vip_holder_loss,
)
QUORUM = Drill(
    "quorum-loss",
    "two of three control-plane nodes stop: etcd loses its quorum",
    "Stops cp-2, then pulls cp-3's power, while writing ConfigMaps; measures time to the first refusal, "
    "its code, and checks no acknowledged write is lost once the quorum returns.",
    (
        "The Supervisor keeps its state in etcd on three control-plane VMs; writes need a majority (2 of 3).",
        "With two VMs down the last member cannot elect a leader, so the API refuses (or cannot answer)",
        "writes instead of accepting ones it might lose: /readyz fails and HAProxy has no server to send to.",
        "This is why vSphere places the three Supervisor VMs on different hosts (anti-affinity):",
        "one host failure costs one member, never the quorum. When the VMs return, every write that was",
        "acknowledged is still there.",
    ),
    quorum_loss,
)
