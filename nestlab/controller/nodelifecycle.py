"""Node lifecycle: a host whose agent stopped heartbeating is marked Unknown and tainted.

Each node agent renews the Lease ``kube-node-lease/<node>`` (as kubelet does). When a host fails
(in the lab: ``esx-02`` stopped, and ``cp-2`` with it) the renewals stop; after the grace period
this controller sets the node's Ready condition to Unknown with the upstream reason and message
and adds the ``node.kubernetes.io/unreachable:NoSchedule`` taint, so the scheduler places nothing
new there. When heartbeats resume the taint is removed (the agent reports Ready itself).
Pods already on the node stay put: nestlab has no controller that would recreate them elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import LEASES, NODES
from nestlab.controller.leader import parse_time

Obj = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"
NODE_LEASES = "kube-node-lease"
GRACE = 40  # seconds without a heartbeat before a node is Unknown (upstream node-monitor-grace-period)


@dataclass(frozen=True)
class NodeChange:
    """What to write to one node: a new Ready condition (status) and/or new taints (spec)."""

    name: str
    conditions: list[Obj] | None
    taints: list[Obj] | None


def last_heartbeat(node: Obj, lease: Obj | None) -> datetime:
    """The lease's renewTime, or the node's creation when it never had a lease."""
    renewed = ((lease or {}).get("spec") or {}).get("renewTime")
    return parse_time(renewed or node["metadata"]["creationTimestamp"])


def assess(node: Obj, lease: Obj | None, now: datetime, grace: int = GRACE) -> NodeChange | None:
    """The change ``node`` needs given its heartbeat ``lease``, or None."""
    stale = last_heartbeat(node, lease) + timedelta(seconds=grace) < now
    conditions = list((node.get("status") or {}).get("conditions") or [])
    taints = list((node.get("spec") or {}).get("taints") or [])
    tainted = any(t.get("key") == UNREACHABLE for t in taints)
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    name = node["metadata"]["name"]
    if stale:
        new_conditions = None
        if ready is None or ready.get("status") != "Unknown":
            stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
            unknown = {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastTransitionTime": stamp,
                "lastHeartbeatTime": last_heartbeat(node, lease).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            new_conditions = [c for c in conditions if c.get("type") != "Ready"] + [unknown]
        new_taints = (
            None
            if tainted
            else [
                *taints,
                {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
            ]
        )
        if new_conditions is None and new_taints is None:
            return None
        return NodeChange(name, new_conditions, new_taints)
    if tainted:
        return NodeChange(name, None, [t for t in taints if t.get("key") != UNREACHABLE])
    return None


class NodeLifecycle:
    """One pass: read nodes and their leases, write the changes :func:`assess` asks for."""

    def __init__(
        self, client: ApiClient, grace: int = GRACE, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.client = client
        self.grace = grace
        self.clock = clock

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
            change = assess(node, leases.get(node["metadata"]["name"]), now, self.grace)
            if change is None:
                continue
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
                continue
            changes.append(change)
        return changes
