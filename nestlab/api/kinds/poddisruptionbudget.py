"""policy/v1 PodDisruptionBudget: how many pods of an app a voluntary disruption (maintenance) may take.

The eviction subresource consults it (429 when an eviction would break it) and the disruption
controller keeps its status (healthy pods, disruptions allowed). Enter Maintenance Mode evacuates a
host through evictions, so a budget is what keeps an app up while its host is emptied.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import wire, workload
from nestlab.api.kinds.base import AGE, NAME, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import check_label_selector, check_metadata, check_status
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", "policy", "v1", True, ("pdb",),
    ("status",), True,
)  # fmt: skip
EVICTION_POLICIES = ("IfHealthyBudget", "AlwaysAllow")


def validate(budget: Obj) -> list[Cause]:
    causes = check_metadata(budget) + check_status(budget)
    spec = budget.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
    if low is not None and high is not None:
        causes.append(Cause("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    causes += workload.int_or_percent(low, "spec.minAvailable")
    causes += workload.int_or_percent(high, "spec.maxUnavailable")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in EVICTION_POLICIES:
        supported = ", ".join(f'"{p}"' for p in EVICTION_POLICIES)
        message = f'Unsupported value: "{policy}": supported values: {supported}'
        causes.append(Cause("spec.unhealthyPodEvictionPolicy", message, "FieldValueNotSupported"))
    return causes + check_label_selector(spec.get("selector"), "spec.selector")


def row(budget: Obj) -> list[Any]:
    spec, state = budget.get("spec") or {}, budget.get("status") or {}
    return [
        budget["metadata"]["name"],
        "N/A" if spec.get("minAvailable") is None else str(spec["minAvailable"]),
        "N/A" if spec.get("maxUnavailable") is None else str(spec["maxUnavailable"]),
        int(state.get("disruptionsAllowed") or 0),
        created(budget),
    ]


KIND = Kind(
    RESOURCE,
    model="V1PodDisruptionBudget",
    validate=validate,
    columns=(
        NAME,
        Column("Min Available", "string", 0, "The minimum number of pods that must be available."),
        Column("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."),
        Column(
            "Allowed Disruptions",
            "integer",
            0,
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ),
    row=row,
    roles={
        "view": {"poddisruptionbudgets": READ, "poddisruptionbudgets/status": READ},
        "edit": {"poddisruptionbudgets": READ | WRITE, "poddisruptionbudgets/status": READ},
    },
    generation=True,
    protobuf=wire.top(wire.POD_DISRUPTION_BUDGET_SPEC),
)
