"""apps/v1 StatefulSet: pods with stable names (web-0, web-1...) that come back under the same name.

When a host fails, ``web-1`` is recreated on another host as ``web-1``: the identity follows the
name, not the VM. Persistent volume claim templates need the storage issue's PVCs, so until then
they are refused by name rather than accepted and dropped.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import podspec, wire, workload
from nestlab.api.kinds.base import AGE, NAME, Column, Kind, Obj, Resource, Scale
from nestlab.api.kinds.common import (
    as_dict,
    check_metadata,
    check_nonnegative,
    check_status,
)
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "statefulsets",
    "statefulset",
    "StatefulSet",
    "apps",
    "v1",
    True,
    ("sts",),
    ("status", "scale"),
    True,
    ("all",),
)
POLICIES = ("OrderedReady", "Parallel")
UPDATES = ("RollingUpdate", "OnDelete")
_UPDATABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "revisionHistoryLimit",
)


def default(statefulset: Obj) -> None:
    spec = statefulset.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate" and isinstance(strategy.setdefault("rollingUpdate", {}), dict):
            strategy["rollingUpdate"].setdefault("partition", 0)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    podspec.default_template(spec.get("template"))


def _supported(value: Any, allowed: tuple[str, ...], path: str) -> list[Cause]:
    if value in allowed:
        return []
    supported = ", ".join(f'"{v}"' for v in allowed)
    return [
        Cause(path, f'Unsupported value: "{value}": supported values: {supported}', "FieldValueNotSupported")
    ]


def validate(statefulset: Obj) -> list[Cause]:
    causes = check_metadata(statefulset) + check_status(statefulset)
    spec = statefulset.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    if not spec.get("serviceName") or not isinstance(spec.get("serviceName"), str):
        causes.append(Cause("spec.serviceName", "Required value", "FieldValueRequired"))
    causes += check_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    causes += _supported(spec.get("podManagementPolicy"), POLICIES, "spec.podManagementPolicy")
    strategy = as_dict(spec.get("updateStrategy"))
    causes += _supported(strategy.get("type"), UPDATES, "spec.updateStrategy.type")
    rolling = as_dict(strategy.get("rollingUpdate"))
    causes += check_nonnegative(rolling.get("partition"), "spec.updateStrategy.rollingUpdate.partition")
    if spec.get("volumeClaimTemplates"):
        message = (
            "Forbidden: persistent volume claims are not served by this lab yet "
            "(no PersistentVolumeClaim kind, no datastore); remove volumeClaimTemplates"
        )
        causes.append(Cause("spec.volumeClaimTemplates", message, "FieldValueForbidden"))
    return causes + workload.check_replicated(spec, "statefulset")


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    new_spec, old_spec = dict(as_dict(new.get("spec"))), dict(as_dict(old.get("spec")))
    for spec in (new_spec, old_spec):
        for key in _UPDATABLE:
            spec.pop(key, None)
    if new_spec == old_spec:
        return []
    message = (
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"
    )
    return [Cause("spec", message, "FieldValueForbidden")]


def row(obj: Obj) -> list[Any]:
    cells = workload.template_cells(obj)
    return [
        obj["metadata"]["name"],
        f"{workload.count(obj, 'readyReplicas')}/{workload.desired(obj)}",
        created(obj),
        cells[0],
        cells[1],
    ]


KIND = Kind(
    RESOURCE,
    model="V1StatefulSet",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Ready", "string", 0, "Number of the pod with ready state"),
        AGE,
        Column("Containers", "string", 1, "Names of each container in the template."),
        Column("Images", "string", 1, "Images referenced by each container in the template."),
    ),
    row=row,
    roles=workload.roles("statefulsets"),
    generation=True,
    scale=Scale(workload.selector_text),
    protobuf=wire.top(wire.STATEFUL_SET_SPEC),
)
