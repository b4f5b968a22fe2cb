"""Shapes of the fields nestlab itself reads back: printers, quota, the scheduler, leader election.

A JSON body can put a string where an object belongs; stored, it would crash every later reader
(``kubectl get`` rendering a pod, the scheduler reading a node's allocatable). These checks turn
such bodies into 422 causes before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nestlab.api import quantity
from nestlab.api.resources import Resource
from nestlab.api.status import Cause

Obj = dict[str, Any]
_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
}


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def type_causes(obj: Obj, expected: Mapping[str, type], prefix: str = "") -> list[Cause]:
    """A cause for every present field whose JSON type is wrong (``{"spec": dict}``...)."""
    causes = []
    for name, kind in expected.items():
        value = obj.get(name)
        if value is not None and not isinstance(value, kind):
            wanted = _TYPE_NAMES.get(kind, kind.__name__)
            causes.append(
                Cause(f"{prefix}{name}", f"Invalid value: must be {wanted}", "FieldValueTypeInvalid")
            )
    return causes


def check_affinity(affinity: Any) -> list[Cause]:
    """The scheduler reads required pod anti-affinity terms; they must have the upstream shape."""
    anti = as_dict(affinity).get("podAntiAffinity")
    if anti is None:
        return []
    path = "spec.affinity.podAntiAffinity"
    if not isinstance(anti, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution")
    path += ".requiredDuringSchedulingIgnoredDuringExecution"
    if terms is not None and not isinstance(terms, list):
        return [Cause(path, "Invalid value: must be a list", "FieldValueTypeInvalid")]
    causes: list[Cause] = []
    for index, term in enumerate(as_list(terms)):
        if (
            not isinstance(term, dict)
            or not isinstance(term.get("topologyKey"), str)
            or not term["topologyKey"]
        ):
            causes.append(
                Cause(
                    f"{path}[{index}].topologyKey", "Required value: can not be empty", "FieldValueRequired"
                )
            )
            continue
        selector = term.get("labelSelector")
        if selector is not None and (
            not isinstance(selector, dict)
            or not isinstance(selector.get("matchLabels", {}), dict)
            or not all(isinstance(e, dict) for e in as_list(selector.get("matchExpressions", [])))
        ):
            causes.append(
                Cause(
                    f"{path}[{index}].labelSelector",
                    "Invalid value: must be a label selector",
                    "FieldValueTypeInvalid",
                )
            )
    return causes


def check_status(obj: Obj, resource: Resource) -> list[Cause]:
    """Status written by agents is read back by printers and the scheduler: shapes must hold."""
    state = obj.get("status")
    if state is None:
        return []
    if not isinstance(state, dict):
        return [Cause("status", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    lists = {"conditions": list, "containerStatuses": list, "addresses": list, "podIPs": list}
    causes = type_causes(state, {**lists, "phase": str, "podIP": str, "nodeInfo": dict}, "status.")
    for name in lists:
        causes += [
            Cause(f"status.{name}[{i}]", "Invalid value: must be an object", "FieldValueTypeInvalid")
            for i, item in enumerate(as_list(state.get(name)))
            if not isinstance(item, dict)
        ]
    if resource.kind in ("Node", "ResourceQuota"):
        for section in ("allocatable", "capacity", "hard", "used"):
            causes += quantities(state.get(section), f"status.{section}")
    return causes


def quantities(values: Any, path: str) -> list[Cause]:
    if values is None:
        return []
    if not isinstance(values, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = []
    for name, value in values.items():
        try:
            quantity.parse(value)
        except quantity.QuantityError as exc:
            causes.append(Cause(f"{path}[{name}]", f'Invalid value: "{value}": {exc}'))
    return causes


def check_node(node: Obj) -> list[Cause]:
    """Node spec fields the scheduler reads."""
    spec = node.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(as_dict(spec), {"taints": list, "unschedulable": bool}, "spec.")
    causes += [
        Cause(f"spec.taints[{i}]", "Invalid value: must be an object", "FieldValueTypeInvalid")
        for i, t in enumerate(as_list(as_dict(spec).get("taints")))
        if not isinstance(t, dict)
    ]
    return causes


def check_lease(lease: Obj) -> list[Cause]:
    """Lease fields leader election reads."""
    spec = lease.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    kinds = {"holderIdentity": str, "leaseDurationSeconds": int, "renewTime": str, "acquireTime": str}
    return type_causes(as_dict(spec), kinds, "spec.")
