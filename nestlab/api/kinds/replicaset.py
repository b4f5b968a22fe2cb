"""apps/v1 ReplicaSet: keeps N pods of one template running; Deployments roll through them."""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import podspec, wire, workload
from nestlab.api.kinds.base import AGE, NAME, Column, Kind, Obj, Resource, Scale
from nestlab.api.kinds.common import (
    as_dict,
    check_metadata,
    check_status,
    immutable,
)
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "replicasets",
    "replicaset",
    "ReplicaSet",
    "apps",
    "v1",
    True,
    ("rs",),
    ("status", "scale"),
    True,
    ("all",),
)
COLUMNS = (
    NAME,
    Column("Desired", "integer", 0, "Number of desired pods."),
    Column("Current", "integer", 0, "Number of actual pods."),
    Column("Ready", "integer", 0, "Number of ready pods."),
    AGE,
    Column("Containers", "string", 1, "Names of each container in the template."),
    Column("Images", "string", 1, "Images referenced by each container in the template."),
    Column("Selector", "string", 1, "Label selector for pods."),
)


def default(replicaset: Obj) -> None:
    spec = replicaset.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        podspec.default_template(spec.get("template"))


def validate(replicaset: Obj) -> list[Cause]:
    causes = check_metadata(replicaset) + check_status(replicaset)
    spec = replicaset.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    return causes + workload.check_replicated(spec, "replicaset")


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    return immutable(as_dict(new.get("spec")).get("selector"), as_dict(old.get("spec")).get("selector"),
                     "spec.selector")  # fmt: skip


def row(obj: Obj) -> list[Any]:
    return [
        obj["metadata"]["name"],
        workload.desired(obj),
        workload.count(obj, "replicas"),
        workload.count(obj, "readyReplicas"),
        created(obj),
        *workload.template_cells(obj),
    ]


KIND = Kind(
    RESOURCE,
    model="V1ReplicaSet",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=COLUMNS,
    row=row,
    roles=workload.roles("replicasets"),
    generation=True,
    scale=Scale(workload.selector_text),
    protobuf=wire.top(wire.REPLICA_SET_SPEC),
)
