"""Node lifecycle: a host that stops heartbeating is marked Unknown, tainted, and its pods NotReady.

Each node agent renews the Lease ``kube-node-lease/<node>`` (as kubelet does). When a host fails
(in the lab: ``esx-02`` stopped, and ``cp-2`` with it) the renewals stop; after the grace period
this controller does what upstream's node lifecycle controller does:

- the node's kubelet-owned conditions (Ready, and MemoryPressure/DiskPressure/PIDPressure when
  present) become Unknown with reason ``NodeStatusUnknown``, and a ``NodeNotReady`` Event says so;
- the node gets ``node.kubernetes.io/unreachable`` with BOTH effects: ``NoSchedule`` keeps new pods
  away, ``NoExecute`` hands the pods already there to the taint manager
  (:mod:`nestlab.controller.taintmanager`), which evicts them after their tolerationSeconds.
  A node whose agent itself reports Ready=False gets ``node.kubernetes.io/not-ready`` instead;
- every pod on a node that is not Ready gets its Ready condition set to False through pods/status
  (upstream ``MarkPodsNotReady``: only Ready; ContainersReady is the kubelet's and stays), so
  Services and ``kubectl get pods`` stop counting it as ready.

When heartbeats resume the taints go (keeping the ones this controller does not own) and a
``NodeReady`` Event says the host is back, the counterpart of ``NodeNotReady`` (upstream's kubelet
records it when its Ready condition turns True; here the controller sees that turn as the owned
taints go, so the pair comes from one place and each transition is recorded once). The Lease is
nestlab's heartbeat proper; the agent re-posts Ready=True itself within its status period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.resources import EVENTS, LEASES, NODES, PODS
from nestlab.api.tolerations import NO_EXECUTE, NO_SCHEDULE, NOT_READY, UNREACHABLE
from nestlab.controller.leader import parse_time
from nestlab.controller.views import Listed, View

log = logging.getLogger(__name__)
Obj = dict[str, Any]
NODE_LEASES = "kube-node-lease"
# Seconds without a heartbeat before a node is Unknown (upstream --node-monitor-grace-period, 40 s).
# The agent renews its 40 s Lease every 10 s; 30 s tolerates two missed renewals (an API failover
# while the VIP moves takes a few seconds) yet detects a stopped host 20-30 s after it stopped, so
# with the lab's 30 s eviction a learner sees replacement pods scheduled about a minute after
# `nestlab node stop` instead of upstream's five to six.
GRACE = 30
OWNED_TAINTS = (UNREACHABLE, NOT_READY)
"""Taint keys this controller adds and removes; every other taint on a node is left alone."""
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
"""The conditions upstream marks Unknown when the kubelet stops posting (the others are not ours)."""
STRATEGIC_MERGE = "application/strategic-merge-patch+json"  # conditions merge by type


def stamp(moment: datetime) -> str:
    """A Kubernetes Time (seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class NodeChange:
    """What to write to one node: new conditions (status) and/or new taints (spec)."""

    name: str
    conditions: list[Obj] | None
    """The whole new conditions list; None when they stay."""
    taints: list[Obj] | None
    """The whole new taints list; None when they stay."""
    ready: str | None = None
    """The Ready status acted on (see :func:`effective_ready`)."""
    went_not_ready: bool = False
    """Ready was True and no longer is: upstream records a ``NodeNotReady`` Event."""
    went_ready: bool = False
    """The node was marked not ready (an owned taint) and reports Ready=True again: ``NodeReady``."""


def last_heartbeat(node: Obj, lease: Obj | None) -> datetime:
    """The lease's renewTime, or the node's creation when it never had a lease."""
    renewed = ((lease or {}).get("spec") or {}).get("renewTime")
    return parse_time(renewed or node["metadata"]["creationTimestamp"])


def ready_status(node: Obj) -> str | None:
    """The status of the node's Ready condition, None when it has none."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


def wanted_taints(ready: str | None) -> set[tuple[str, str]]:
    """(key, effect) of the owned taints a node with this Ready status carries (upstream's map)."""
    key = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready or "")
    return set() if key is None else {(key, NO_SCHEDULE), (key, NO_EXECUTE)}


def retaint(taints: list[Obj], wanted: set[tuple[str, str]], now: datetime) -> list[Obj] | None:
    """``taints`` with the owned ones made exactly ``wanted``; None when nothing changes.

    Taints that stay keep their timeAdded: the taint manager counts tolerationSeconds from it.
    """
    kept = [
        t for t in taints if t.get("key") not in OWNED_TAINTS or (t.get("key"), t.get("effect")) in wanted
    ]
    present = {(t.get("key"), t.get("effect")) for t in kept}
    added = [
        {"key": key, "effect": effect, "timeAdded": stamp(now)}
        for key, effect in sorted(wanted, key=lambda w: (w[0], w[1] != NO_SCHEDULE))
        if (key, effect) not in present
    ]
    result = kept + added
    return None if result == taints else result


def unknown_conditions(conditions: list[Obj], heartbeat: datetime, now: datetime) -> list[Obj]:
    """Kubelet-owned conditions set to Unknown as upstream does; a Ready condition is always there."""
    unknown = {
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
        "lastTransitionTime": stamp(now),
    }
    marked = [
        {**c, **unknown} if c.get("type") in KUBELET_CONDITIONS and c.get("status") != "Unknown" else c
        for c in conditions
    ]
    if not any(c.get("type") == "Ready" for c in marked):
        marked.append(
            {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusNeverUpdated",
                "message": "Kubelet never posted node status.",
                "lastHeartbeatTime": stamp(heartbeat),
                "lastTransitionTime": stamp(now),
            }
        )
    return marked


def is_stale(node: Obj, lease: Obj | None, now: datetime, grace: int = GRACE) -> bool:
    """Whether the node's last heartbeat is more than ``grace`` seconds old."""
    return last_heartbeat(node, lease) + timedelta(seconds=grace) < now


def effective_ready(node: Obj, lease: Obj | None, now: datetime, grace: int = GRACE) -> str | None:
    """The Ready status the controller acts on: Unknown when stale, else what the node reports.

    A fresh heartbeat with Ready still Unknown (written by this controller before the host came
    back) counts as no verdict: the host is alive, the agent re-posts Ready within its status period.
    """
    if is_stale(node, lease, now, grace):
        return "Unknown"
    reported = ready_status(node)
    return None if reported == "Unknown" else reported


def assess(node: Obj, lease: Obj | None, now: datetime, grace: int = GRACE) -> NodeChange | None:
    """The change ``node`` needs given its heartbeat ``lease``, or None."""
    conditions = list((node.get("status") or {}).get("conditions") or [])
    taints = list((node.get("spec") or {}).get("taints") or [])
    before = ready_status(node)
    stale = is_stale(node, lease, now, grace)
    ready = effective_ready(node, lease, now, grace)
    new_conditions = None
    if stale:
        marked = unknown_conditions(conditions, last_heartbeat(node, lease), now)
        new_conditions = None if marked == conditions else marked
    new_taints = retaint(taints, wanted_taints(ready), now)
    if new_conditions is None and new_taints is None:
        return None
    was_marked = any(t.get("key") in OWNED_TAINTS for t in taints)
    return NodeChange(
        node["metadata"]["name"],
        new_conditions,
        new_taints,
        ready,
        went_not_ready=before == "True" and stale,
        went_ready=ready == "True" and was_marked,
    )


def ready_false(pod: Obj, now: datetime) -> Obj | None:
    """The pod's Ready condition set to False (upstream MarkPodsNotReady), None if nothing to do.

    Reason and message stay what they were (upstream changes only status and transition time);
    a pod without a Ready condition (never started) is left alone.
    """
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "False":
                return None
            return {**condition, "status": "False", "lastTransitionTime": stamp(now)}
    return None


class NodeLifecycle:
    """One pass: read nodes and their leases, write the changes :func:`assess` asks for, and mark
    the pods of every node that is not Ready as not ready."""

    def __init__(
        self,
        client: ApiClient,
        grace: int = GRACE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        view: View | None = None,
    ) -> None:
        self.client = client
        self.grace = grace
        self.clock = clock
        self.view: View = view or Listed(client)
        """Where the pods of a node that is not Ready are read (nodes and Leases are always listed
        fresh: a change written from a stale copy would say NodeNotReady twice)."""

    async def pass_once(self) -> list[NodeChange]:
        """Check every node once; the changes written."""
        nodes = (await self.client.list(NODES))["items"]
        leases = {
            lease["metadata"]["name"]: lease
            for lease in (await self.client.list(LEASES, NODE_LEASES))["items"]
        }
        changes = []
        now = self.clock()
        for node in nodes:
            name = node["metadata"]["name"]
            lease = leases.get(name)
            change = assess(node, lease, now, self.grace)
            if change is not None and await self._write(change, node):
                changes.append(change)
            if effective_ready(node, lease, now, self.grace) in ("False", "Unknown"):
                await self._mark_pods_not_ready(name, now)
        return changes

    async def _write(self, change: NodeChange, node: Obj) -> bool:
        try:
            if change.conditions is not None:
                await self.client.patch(
                    NODES, "", change.name, {"status": {"conditions": change.conditions}}, "status"
                )
            if change.taints is not None:
                await self.client.patch(NODES, "", change.name, {"spec": {"taints": change.taints}})
        except status.ApiError as exc:
            if exc.code not in (404, 409):  # node gone, or changed meanwhile: next pass decides
                raise
            return False
        if change.went_not_ready:
            log.info("node %s stopped heartbeating: Ready=Unknown, tainted %s", change.name, UNREACHABLE)
            await self._node_event(node, "NodeNotReady", f"Node {change.name} status is now: NodeNotReady")
        if change.went_ready:
            log.info("node %s is Ready again: %s/%s taints removed", change.name, UNREACHABLE, NOT_READY)
            await self._node_event(node, "NodeReady", f"Node {change.name} status is now: NodeReady")
        return True

    async def _mark_pods_not_ready(self, node: str, now: datetime) -> None:
        pods = await self.view.pods(node)
        for pod in pods:
            condition = ready_false(pod, now)
            if condition is None:
                continue
            meta = pod["metadata"]
            try:
                await self.client.request(
                    "PATCH",
                    path_of(PODS, meta["namespace"], meta["name"], "status"),
                    {"status": {"conditions": [condition]}},
                    content_type=STRATEGIC_MERGE,
                )
            except status.ApiError as exc:
                if exc.code != 404:  # deleted meanwhile: nothing to mark
                    raise
                continue
            log.info("pod %s/%s on %s: Ready=False (node not ready)", meta["namespace"], meta["name"], node)

    async def _node_event(self, node: Obj, reason: str, message: str) -> None:
        """An Event about a Node, where upstream puts them (namespace default, uid = node name)."""
        name = node["metadata"]["name"]
        now = stamp(self.clock())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}."},
            "involvedObject": {"kind": "Node", "name": name, "uid": name},
            "type": "Normal", "reason": reason, "message": message, "count": 1,
            "source": {"component": "node-controller"},
            "firstTimestamp": now, "lastTimestamp": now,
        }  # fmt: skip
        try:
            await self.client.create(EVENTS, "default", event)
        except status.ApiError as exc:
            log.warning("could not record event %s for node %s: %s", reason, name, exc.message)
