"""v1 Pod: a vSphere Pod in the lab (one microVM with its own kernel, run by the host's agent).

Its status belongs to the node agent (pods/status), its node to the scheduler (pods/binding); its
spec is immutable but for images and a few scheduling fields, as upstream.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import podspec
from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, as_list, check_metadata, check_status
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "pods", "pod", "Pod", "", "v1", True, ("po",), ("status", "binding", "log", "eviction"), True, ("all",)
)
_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def default(pod: Obj) -> None:
    """Fill the defaults Kubernetes fills, so clients read back what they would upstream."""
    if not isinstance(pod.get("status"), dict):
        pod["status"] = {}
    if pod.get("spec") is None:
        pod["spec"] = {}
    spec = pod["spec"]
    if not isinstance(spec, dict):
        return  # validation reports it
    podspec.default_spec(spec)
    status = pod["status"]
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", podspec.qos_class(spec))


def on_create(pod: Obj) -> None:
    """A new pod is Pending, whatever status the client sent."""
    pod["status"] = {"phase": "Pending", "qosClass": pod["status"].get("qosClass", "BestEffort")}


def validate(pod: Obj) -> list[Cause]:
    return check_metadata(pod) + check_status(pod) + podspec.check_spec(pod.get("spec"))


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    """Pods are immutable but for images and a few scheduling fields, as upstream."""
    old_spec, new_spec = dict(as_dict(old.get("spec"))), dict(as_dict(new.get("spec")))
    for spec in (old_spec, new_spec):
        for key in _MUTABLE_SPEC:
            spec.pop(key, None)
        spec["containers"] = [
            {**c, "image": ""} for c in as_list(spec.get("containers")) if isinstance(c, dict)
        ]
    if old_spec != new_spec:
        return [
            Cause(
                "spec",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) "
                "or `spec.terminationGracePeriodSeconds`",
                "FieldValueForbidden",
            )
        ]
    return []


def row(pod: Obj) -> list[Any]:
    spec, state = pod.get("spec") or {}, pod.get("status") or {}
    statuses = state.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = state.get("reason") or state.get("phase") or "Unknown"
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        created(pod),
        state.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        state.get("nominatedNodeName") or "<none>",
        f"{len(gates)}/{len(gates)}" if gates else "<none>",
    ]


KIND = Kind(
    RESOURCE,
    model="V1Pod",
    default=default,
    on_create=on_create,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", "string", 0, "The aggregate status of the containers in this pod."),
        Column(
            "Restarts", "string", 0, "The number of times the containers in this pod have been restarted."
        ),
        AGE,
        Column("IP", "string", 1, "IP address allocated to the pod."),
        Column("Node", "string", 1, "Name of the node this pod is assigned to."),
        Column("Nominated Node", "string", 1, "Name of the node this pod is nominated to run on."),
        Column("Readiness Gates", "string", 1, "Pod readiness gates."),
    ),
    row=row,
    selectable=(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    roles={
        "view": {"pods": READ, "pods/log": READ, "pods/status": READ},
        "edit": {
            "pods": READ | WRITE,
            "pods/log": READ,
            "pods/status": READ,
            "pods/eviction": frozenset({"create"}),
        },
        "node": {"pods": READ | {"delete"}, "pods/status": READ | {"update", "patch"}},
    },
)
