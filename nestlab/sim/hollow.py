"""What a simulated host shows the API: pure builders of its Node, its pods' statuses, its names.

Every object says what it is, so nobody mistakes a scale test for capacity: the Node carries the
label and the ``NoSchedule`` taint ``nestlab.dev/simulated`` (only pods that tolerate it, the scale
test's own, land there), a Ready condition whose reason and message name the simulation, a
container runtime ``nestlab-sim://none``, and an address whose port refuses at once (127.0.0.1,
port 1) so that logs, exec or an attestation challenge aimed at it fail fast instead of timing out.
A pod it reports Running has ``sim://`` container IDs and no pod IP (no network was configured).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from nestlab.agent.node import NodeInfo, node_object, node_status

Obj = dict[str, Any]
LABEL: Final = "nestlab.dev/simulated"
TAINT: Final = {"key": LABEL, "value": "true", "effect": "NoSchedule"}
RUNTIME: Final = "nestlab-sim://none"
READY_REASON: Final = "SimulatedHostReady"
READY_MESSAGE: Final = "simulated host (nestlab.sim): no VMs run here; a control-plane scale test"
# The host's capacity: 50 hosts x 40 pods fit with room (kubemark's hollow nodes say 110 pods).
CPU_M: Final = 64_000
MEMORY_MIB: Final = 256 * 1024
MAX_PODS: Final = 110
# Where a log/exec/attestation request for this host goes: loopback, a port nothing serves, so the
# caller gets "connection refused" at once wherever it runs.
ADDRESS: Final = "127.0.0.1"
PORT: Final = 1
# The attestation verifier fails a host it cannot reach and taints it so: a simulated host has no
# TPM, and the scale test's pods tolerate that taint as well as the simulation's own.
ATTESTATION_TAINT: Final = "nestlab.dev/attestation-failed"
TOLERATIONS: Final = (
    {"key": LABEL, "operator": "Exists", "effect": "NoSchedule"},
    {"key": ATTESTATION_TAINT, "operator": "Exists", "effect": "NoSchedule"},
)


def names(count: int, prefix: str = "sim") -> list[str]:
    """``count`` host names, ``sim-001`` ... (three digits sort right up to 999 hosts)."""
    if count < 0 or count > 999:
        raise ValueError(f"between 0 and 999 simulated hosts, not {count}")
    return [f"{prefix}-{i:03d}" for i in range(1, count + 1)]


def info(name: str, max_pods: int = MAX_PODS) -> NodeInfo:
    """The capacity and address a simulated host registers (``max_pods``: its pod capacity)."""
    return NodeInfo(name, ADDRESS, CPU_M, MEMORY_MIB, max_pods, PORT)


def node(name: str) -> Obj:
    """The Node to create: the agent's, plus the simulation's label and taint."""
    obj = node_object(info(name))
    obj["metadata"]["labels"][LABEL] = "true"
    obj["spec"]["taints"] = [dict(TAINT)]
    return obj


def status(name: str, max_pods: int = MAX_PODS) -> Obj:
    """The Node status: Ready, with reason, message and runtime naming the simulation."""
    out = node_status(info(name, max_pods), True, READY_MESSAGE)
    for condition in out["conditions"]:
        if condition["type"] == "Ready":
            condition["reason"] = READY_REASON
    out["nodeInfo"]["containerRuntimeVersion"] = RUNTIME
    return out


def is_simulated(node_obj: Obj) -> bool:
    """Whether a Node is one of these (by its label)."""
    labels = (node_obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(LABEL) == "true")


def stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def needs_running(pod: Obj) -> bool:
    """Whether a pod bound here still has to be reported Running (not yet, not deleting, not done)."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return bool(phase == "Pending")


def running(pod: Obj, moment: datetime | None = None) -> Obj:
    """The pods/status body that reports ``pod`` Running with every container started and ready."""
    when = stamp(moment)
    uid = (pod.get("metadata") or {}).get("uid", "")
    containers = ((pod.get("spec") or {}).get("containers")) or []
    statuses = [
        {
            "name": c.get("name", ""),
            "image": c.get("image", ""),
            "imageID": "",
            "containerID": f"sim://{uid}/{c.get('name', '')}",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": when}},
        }
        for c in containers
    ]
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": when}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    return {
        "status": {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": ADDRESS,
            "startTime": when,
            "containerStatuses": statuses,
        }
    }
