"""coordination.k8s.io/v1 Lease: node heartbeats (kube-node-lease) and the controllers' leader election."""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_metadata, type_causes
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource("leases", "lease", "Lease", "coordination.k8s.io", "v1", True)


def validate(lease: Obj) -> list[Cause]:
    """Lease fields leader election reads."""
    causes = check_metadata(lease)
    spec = lease.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [*causes, Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    kinds = {"holderIdentity": str, "leaseDurationSeconds": int, "renewTime": str, "acquireTime": str}
    return causes + type_causes(as_dict(spec), kinds, "spec.")


def row(lease: Obj) -> list[Any]:
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return [lease["metadata"]["name"], holder, created(lease)]


KIND = Kind(
    RESOURCE,
    model="V1Lease",
    validate=validate,
    columns=(NAME, Column("Holder", "string", 0, "The holder of the lease"), AGE),
    row=row,
    roles={"edit": {"leases": READ | WRITE}, "node": {"leases": READ | WRITE}},
)
