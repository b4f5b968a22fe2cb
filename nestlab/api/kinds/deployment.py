"""apps/v1 Deployment: replicas that outlive their hosts, rolled out through ReplicaSets.

vSphere HA restarts a VM elsewhere; a vSphere Pod is never moved, so it is the Deployment
controller that recreates pods on healthy hosts. Defaults, validation and columns follow upstream
so ``kubectl create deployment``, ``rollout`` and ``scale`` behave as they do everywhere.
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
    immutable,
)
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "deployments",
    "deployment",
    "Deployment",
    "apps",
    "v1",
    True,
    ("deploy",),
    ("status", "scale"),
    True,
    ("all",),
)
STRATEGIES = ("Recreate", "RollingUpdate")


def default(deployment: Obj) -> None:
    spec = deployment.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    podspec.default_template(spec.get("template"))


def _check_strategy(strategy: Any) -> list[Cause]:
    if not isinstance(strategy, dict):
        return [Cause("spec.strategy", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    kind = strategy.get("type")
    if kind not in STRATEGIES:
        supported = ", ".join(f'"{s}"' for s in STRATEGIES)
        return [Cause("spec.strategy.type", f'Unsupported value: "{kind}": supported values: {supported}',
                      "FieldValueNotSupported")]  # fmt: skip
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            message = "Forbidden: may not be specified when strategy `type` is 'Recreate'"
            return [Cause("spec.strategy.rollingUpdate", message, "FieldValueForbidden")]
        return []
    rolling = as_dict(rolling)
    path = "spec.strategy.rollingUpdate"
    causes = workload.int_or_percent(rolling.get("maxUnavailable"), f"{path}.maxUnavailable")
    causes += workload.int_or_percent(rolling.get("maxSurge"), f"{path}.maxSurge")
    if (
        not causes
        and workload.is_zero(rolling.get("maxUnavailable"))
        and workload.is_zero(rolling.get("maxSurge"))
    ):
        message = f"Invalid value: {rolling.get('maxUnavailable')!r}: may not be 0 when `maxSurge` is 0"
        causes.append(Cause(f"{path}.maxUnavailable", message))
    return causes


def validate(deployment: Obj) -> list[Cause]:
    causes = check_metadata(deployment) + check_status(deployment)
    spec = deployment.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    causes += workload.check_replicated(spec, "deployment")
    causes += _check_strategy(spec.get("strategy"))
    for field in ("revisionHistoryLimit", "progressDeadlineSeconds"):
        causes += check_nonnegative(spec.get(field), f"spec.{field}")
    deadline, ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and isinstance(ready, int) and deadline <= ready:
        message = f"Invalid value: {deadline}: must be greater than minReadySeconds"
        causes.append(Cause("spec.progressDeadlineSeconds", message))
    return causes


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    return immutable(as_dict(new.get("spec")).get("selector"), as_dict(old.get("spec")).get("selector"),
                     "spec.selector")  # fmt: skip


def row(deployment: Obj) -> list[Any]:
    return [
        deployment["metadata"]["name"],
        f"{workload.count(deployment, 'readyReplicas')}/{workload.desired(deployment)}",
        workload.count(deployment, "updatedReplicas"),
        workload.count(deployment, "availableReplicas"),
        created(deployment),
        *workload.template_cells(deployment),
    ]


KIND = Kind(
    RESOURCE,
    model="V1Deployment",
    default=default,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Ready", "string", 0, "Number of the pod with ready state"),
        Column(
            "Up-to-date",
            "string",
            0,
            "Total number of non-terminated pods targeted by this deployment that "
            "have the desired template spec.",
        ),
        Column(
            "Available",
            "string",
            0,
            "Total number of available pods (ready for at least minReadySeconds) "
            "targeted by this deployment.",
        ),
        AGE,
        Column("Containers", "string", 1, "Names of each container in the template."),
        Column("Images", "string", 1, "Images referenced by each container in the template."),
        Column(
            "Selector",
            "string",
            1,
            "Label selector for pods. Existing ReplicaSets whose pods are selected by "
            "this will be the ones affected by this deployment.",
        ),
    ),
    row=row,
    roles=workload.roles("deployments"),
    generation=True,
    scale=Scale(workload.selector_text),
    protobuf=wire.top(wire.DEPLOYMENT_SPEC),
)
