"""v1 ResourceQuota: the CPU, memory and pod limits of a vSphere Namespace, enforced at admission.

Its ``status.used`` is owned by quota admission (see :mod:`nestlab.api.quota`), which charges pods
before they are stored; a new quota starts from the pods already there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nestlab.api.kinds import wiremeta
from nestlab.api.kinds.base import AGE, NAME, PROTO_META, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_metadata, check_status, quantities
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource(
    "resourcequotas", "resourcequota", "ResourceQuota", "", "v1", True, ("quota",), ("status",), True
)


def validate(quota: Obj) -> list[Cause]:
    """Every hard limit must be a quantity."""
    causes = check_metadata(quota) + check_status(quota, ("hard", "used"))
    spec = quota.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [*causes, Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    return causes + quantities(as_dict(spec).get("hard"), "spec.hard")


def row(quota: Obj) -> list[Any]:
    hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard") or {}
    used = (quota.get("status") or {}).get("used") or {}

    def pairs(keep: Callable[[str], bool]) -> str:
        return ", ".join(f"{k}: {used.get(k, '0')}/{v}" for k, v in sorted(hard.items()) if keep(k))

    return [
        quota["metadata"]["name"],
        created(quota),
        pairs(lambda k: not k.startswith("limits.")),
        pairs(lambda k: k.startswith("limits.")),
    ]


KIND = Kind(
    RESOURCE,
    model="V1ResourceQuota",
    validate=validate,
    columns=(
        NAME,
        AGE,
        Column(
            "Request",
            "string",
            0,
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column(
            "Limit", "string", 0, "Limits control the maximum amount of cpu/memory that a container may use."
        ),
    ),
    row=row,
    roles={"view": {"resourcequotas": READ, "resourcequotas/status": READ}},
    protobuf={
        3: ("status", wiremeta.IGNORE),
        1: ("metadata", PROTO_META),
        2: ("spec", {1: ("hard", "qmap"), 2: ("scopes", "strs")}),
    },
)
