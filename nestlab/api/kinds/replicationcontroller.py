"""v1 ReplicationController: the legacy form of ReplicaSet (a plain label map as selector).

Run by the same controller as ReplicaSets. As upstream, a selector left out is taken from the
template's labels, and deleting one without a propagation policy orphans its pods.
"""

from __future__ import annotations

from nestlab.api.kinds import podspec, replicaset, workload
from nestlab.api.kinds.base import Kind, Obj, Resource, Scale
from nestlab.api.kinds.common import as_dict, check_labels, check_metadata, check_nonnegative, check_status
from nestlab.api.status import Cause

RESOURCE = Resource(
    "replicationcontrollers", "replicationcontroller", "ReplicationController", "", "v1", True, ("rc",),
    ("status", "scale"), True, ("all",),
)  # fmt: skip


def default(controller: Obj) -> None:
    spec = controller.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    template = as_dict(spec.get("template"))
    labels = as_dict(template.get("metadata")).get("labels")
    if not spec.get("selector") and isinstance(labels, dict):
        spec["selector"] = dict(labels)
    meta = controller.get("metadata")
    if isinstance(meta, dict) and not meta.get("labels") and isinstance(labels, dict):
        meta["labels"] = dict(labels)
    podspec.default_template(spec.get("template"))


def validate(controller: Obj) -> list[Cause]:
    causes = check_metadata(controller) + check_status(controller)
    spec = controller.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    causes += check_nonnegative(spec.get("replicas"), "spec.replicas")
    selector = spec.get("selector")
    if not selector:
        return [*causes, Cause("spec.selector", "Required value", "FieldValueRequired")]
    causes += check_labels(selector, "spec.selector")
    as_selector = {"matchLabels": selector} if isinstance(selector, dict) else None
    return causes + podspec.check_template(spec.get("template"), as_selector, restart_policies=("Always",))


KIND = Kind(
    RESOURCE,
    model="V1ReplicationController",
    default=default,
    validate=validate,
    columns=replicaset.COLUMNS,
    row=replicaset.row,
    roles=workload.roles("replicationcontrollers"),
    generation=True,
    scale=Scale(workload.selector_text),
    orphan_by_default=True,
)
