"""Server-side printing: ``meta.k8s.io/v1 Table`` answers for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns
the server defines (that is how ``-o wide`` knows a pod's IP and node). The columns here follow the
upstream printers for the same kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
Column = tuple[str, str, int, str]  # name, type, priority (1 = only with -o wide), description

_NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.")
_AGE: Column = (
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def age(timestamp: str | None, at: datetime | None = None) -> str:
    """Kubernetes' short human duration (``45s``, ``3m12s``, ``5h``, ``12d``)."""
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int(((at or datetime.now(UTC)) - created).total_seconds()))
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 120:
        text = f"{seconds}s"
    elif minutes < 10:
        text = f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    elif minutes < 180:
        text = f"{minutes}m"
    elif hours < 8:
        text = f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    else:
        text = f"{hours}h" if hours < 48 else f"{hours // 24}d"
    return text


def _pod_row(pod: Obj) -> list[Any]:
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
        age(pod["metadata"].get("creationTimestamp")),
        state.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        state.get("nominatedNodeName") or "<none>",
        f"{len(gates)}/{len(gates)}" if gates else "<none>",
    ]


def _node_row(node: Obj) -> list[Any]:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = (node.get("status") or {}).get("nodeInfo") or {}
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "<none>")
    return [
        node["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        age(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        internal,
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _namespace_row(ns: Obj) -> list[Any]:
    phase = (ns.get("status") or {}).get("phase", "")
    return [ns["metadata"]["name"], phase, age(ns["metadata"].get("creationTimestamp"))]


def _event_row(event: Obj) -> list[Any]:
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
    return [
        age(last),
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


def _quota_row(quota: Obj) -> list[Any]:
    hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
    used = (quota.get("status") or {}).get("used") or {}

    def pairs(keep: Callable[[str], bool]) -> str:
        return ", ".join(f"{k}: {used.get(k, '0')}/{v}" for k, v in sorted(hard.items()) if keep(k))

    return [
        quota["metadata"]["name"],
        age(quota["metadata"].get("creationTimestamp")),
        pairs(lambda k: not k.startswith("limits.")),
        pairs(lambda k: k.startswith("limits.")),
    ]


def _binding_row(binding: Obj) -> list[Any]:
    subjects = binding.get("subjects") or []

    def named(kind: str) -> str:
        return ", ".join(s.get("name", "") for s in subjects if s.get("kind") == kind)

    ref = binding.get("roleRef") or {}
    return [
        binding["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age(binding["metadata"].get("creationTimestamp")),
        named("User"),
        named("Group"),
        named("ServiceAccount"),
    ]


def _lease_row(lease: Obj) -> list[Any]:
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return [lease["metadata"]["name"], holder, age(lease["metadata"].get("creationTimestamp"))]


_COLUMNS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "pods": (
        [
            _NAME,
            ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted."),
            _AGE,
            ("IP", "string", 1, "IP address allocated to the pod."),
            ("Node", "string", 1, "Name of the node this pod is assigned to."),
            ("Nominated Node", "string", 1, "Name of the node this pod is nominated to run on."),
            ("Readiness Gates", "string", 1, "Pod readiness gates."),
        ],
        _pod_row,
    ),
    "nodes": (
        [
            _NAME,
            ("Status", "string", 0, "The status of the node"),
            ("Roles", "string", 0, "The roles of the node"),
            _AGE,
            ("Version", "string", 0, "Kubelet Version reported by the node."),
            ("Internal-IP", "string", 1, "List of internal IPs."),
            ("OS-Image", "string", 1, "OS Image reported by the node."),
            ("Kernel-Version", "string", 1, "Kernel Version reported by the node."),
            ("Container-Runtime", "string", 1, "Container Runtime Version reported by the node."),
        ],
        _node_row,
    ),
    "namespaces": ([_NAME, ("Status", "string", 0, "The status of the namespace"), _AGE], _namespace_row),
    "resourcequotas": (
        [
            _NAME,
            _AGE,
            (
                "Request",
                "string",
                0,
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            (
                "Limit",
                "string",
                0,
                "Limits control the maximum amount of cpu/memory that a container may use.",
            ),
        ],
        _quota_row,
    ),
    "rolebindings": (
        [
            _NAME,
            ("Role", "string", 0, "RoleRef is the reference to the role the binding grants."),
            _AGE,
            ("Users", "string", 1, "Users in the binding"),
            ("Groups", "string", 1, "Groups in the binding"),
            ("ServiceAccounts", "string", 1, "ServiceAccounts in the binding"),
        ],
        _binding_row,
    ),
    "leases": ([_NAME, ("Holder", "string", 0, "The holder of the lease"), _AGE], _lease_row),
    "events": (
        [
            ("Last Seen", "string", 0, "Time of the last occurrence."),
            ("Type", "string", 0, "Type of this event."),
            ("Reason", "string", 0, "Why the action was taken."),
            ("Object", "string", 0, "The object this event is about."),
            ("Message", "string", 0, "A human-readable description of the status of this operation."),
        ],
        _event_row,
    ),
}


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(plural: str, items: list[Obj], resource_version: str, include: str = "Metadata") -> Obj:
    """A Table of ``items`` with the columns of ``plural`` (name and age for other kinds)."""
    columns, row = _COLUMNS.get(
        plural,
        ([_NAME, _AGE], lambda o: [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"))]),
    )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": d, "priority": p}
            for n, t, p, d in columns
        ],
        "rows": [{"cells": row(item), "object": _row_object(item, include)} for item in items],
    }
