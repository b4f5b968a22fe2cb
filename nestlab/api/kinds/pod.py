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
    "pods",
    "pod",
    "Pod",
    "",
    "v1",
    True,
    ("po",),
    ("status", "binding", "log", "eviction", "exec", "attach", "portforward"),
    True,
    ("all",),
)
_STREAMS = {"pods/exec": READ | WRITE, "pods/attach": READ | WRITE, "pods/portforward": READ | WRITE}
"""Upstream's edit (and so admin) role: exec, attach and port-forward; view gets none of them."""
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


def _exit_text(done: Obj) -> str:
    return f"Signal:{done['signal']}" if done.get("signal") else f"ExitCode:{done.get('exitCode')}"


def _status_column(pod: Obj) -> tuple[str, int]:
    """kubectl's STATUS and READY count (upstream printPod): Init:N/M, Init:<reason>, PodInitializing,
    the last container's waiting/terminated reason, Running/NotReady, Terminating."""
    spec, state = pod.get("spec") or {}, pod.get("status") or {}
    reason = state.get("reason") or state.get("phase") or "Unknown"
    inits = spec.get("initContainers") or []
    initializing = False
    for index, container in enumerate(state.get("initContainerStatuses") or []):
        now = container.get("state") or {}
        done, waiting = now.get("terminated"), now.get("waiting") or {}
        if done and done.get("exitCode") == 0:
            continue
        if done:
            reason = "Init:" + (done.get("reason") or _exit_text(done))
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(inits)}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in state.get("conditions") or []
    )
    ready = 0
    if not initializing or initialized:
        running = False
        for container in reversed(state.get("containerStatuses") or []):
            now = container.get("state") or {}
            waiting, done = now.get("waiting") or {}, now.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif done:
                reason = done.get("reason") or _exit_text(done)
            elif container.get("ready") and "running" in now:
                running, ready = True, ready + 1
        if reason == "Completed" and running:
            ready_condition = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in state.get("conditions") or []
            )
            reason = "Running" if ready_condition else "NotReady"
    if pod["metadata"].get("deletionTimestamp") and state.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready


def row(pod: Obj) -> list[Any]:
    spec, state = pod.get("spec") or {}, pod.get("status") or {}
    statuses = state.get("containerStatuses") or []
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason, ready = _status_column(pod)
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
            **_STREAMS,
        },
        "node": {"pods": READ | {"delete"}, "pods/status": READ | {"update", "patch"}},
    },
)
