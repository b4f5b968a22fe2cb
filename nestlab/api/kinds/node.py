"""v1 Node: an ESXi host in the lab, registered and kept Ready by its nestlab-agent (the Spherelet).

The scheduler reads its allocatable resources and taints, so their shapes are checked before they
are stored; the printer shows SchedulingDisabled for a cordoned host, as upstream.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, as_list, check_metadata, check_status, type_causes
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource("nodes", "node", "Node", "", "v1", False, ("no",), ("status",), True)


def validate(node: Obj) -> list[Cause]:
    """Node spec fields the scheduler reads."""
    causes = check_metadata(node) + check_status(node, ("allocatable", "capacity"))
    spec = node.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [*causes, Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes += type_causes(as_dict(spec), {"taints": list, "unschedulable": bool}, "spec.")
    causes += [
        Cause(f"spec.taints[{i}]", "Invalid value: must be an object", "FieldValueTypeInvalid")
        for i, t in enumerate(as_list(as_dict(spec).get("taints")))
        if not isinstance(t, dict)
    ]
    return causes


def row(node: Obj) -> list[Any]:
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
        created(node),
        info.get("kubeletVersion", ""),
        internal,
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


KIND = Kind(
    RESOURCE,
    model="V1Node",
    validate=validate,
    columns=(
        NAME,
        Column("Status", "string", 0, "The status of the node"),
        Column("Roles", "string", 0, "The roles of the node"),
        AGE,
        Column("Version", "string", 0, "Kubelet Version reported by the node."),
        Column("Internal-IP", "string", 1, "List of internal IPs."),
        Column("OS-Image", "string", 1, "OS Image reported by the node."),
        Column("Kernel-Version", "string", 1, "Kernel Version reported by the node."),
        Column("Container-Runtime", "string", 1, "Container Runtime Version reported by the node."),
    ),
    row=row,
    selectable=("spec.unschedulable",),
    roles={"node": {"nodes": READ | WRITE, "nodes/status": READ | WRITE}},
)
