"""v1 LimitRange: the per-container defaults and bounds of a vSphere Namespace.

A vSphere Namespace gives every container that names no resources a default request and limit
(the "default CPU/memory" of the namespace's resource limits), and refuses workloads outside the
bounds an administrator set. Upstream does it with LimitRange objects read by the LimitRanger
admission plugin (:mod:`nestlab.api.limitranger`); this unit stores them with upstream's defaults
(``SetDefaults_LimitRangeItem``: a Container item's default limit falls back to its max, its
default request to its default limit, then to its min) and validation (``ValidateLimitRange``:
the relations between min, max, default, defaultRequest and maxLimitRequestRatio, worded as
upstream words them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nestlab.api import quantity
from nestlab.api.kinds.base import NAME, PROTO_META, READ, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, as_list, check_metadata, quantities
from nestlab.api.status import Cause

RESOURCE = Resource("limitranges", "limitrange", "LimitRange", "", "v1", True, ("limits",))
CONTAINER, POD, CLAIM = "Container", "Pod", "PersistentVolumeClaim"
TYPES = (CONTAINER, POD, CLAIM)
SECTIONS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
COMPUTE = ("cpu", "memory", "ephemeral-storage")
"""The standard container resources upstream accepts in a Container or Pod item."""
CREATED_AT = Column(
    "Created At",
    "date",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)
_ITEM = {
    1: ("type", "str"),
    2: ("max", "qmap"),
    3: ("min", "qmap"),
    4: ("default", "qmap"),
    5: ("defaultRequest", "qmap"),
    6: ("maxLimitRequestRatio", "qmap"),
}


def items(limit_range: Obj) -> list[Obj]:
    """The well-formed items of ``spec.limits`` (validation reports the others)."""
    return [i for i in as_list(as_dict(limit_range.get("spec")).get("limits")) if isinstance(i, dict)]


def default(limit_range: Obj) -> None:
    """Upstream SetDefaults_LimitRangeItem, for Container items only."""
    for item in items(limit_range):
        if item.get("type") != CONTAINER:
            continue
        limits = item.setdefault("default", {})
        requests = item.setdefault("defaultRequest", {})
        if not isinstance(limits, dict) or not isinstance(requests, dict):
            continue
        for name, value in as_dict(item.get("max")).items():
            limits.setdefault(name, value)
        for name, value in limits.items():
            requests.setdefault(name, value)
        for name, value in as_dict(item.get("min")).items():
            requests.setdefault(name, value)


Shown = tuple[str, Decimal]
"""A quantity as the client wrote it, and its value."""


def _resource_name_causes(kind: str, name: str, path: str) -> list[Cause]:
    if kind in (CONTAINER, POD):
        if name in COMPUTE or name.startswith("hugepages-"):
            return []
        return [Cause(path, f'Invalid value: "{name}": must be a standard resource for containers')]
    if kind == CLAIM and name != "storage":
        return [Cause(path, f'Invalid value: "{name}": must be a standard resource type or fully qualified')]
    return []


def _values(item: Obj, section: str, path: str) -> tuple[dict[str, Shown], list[Cause]]:
    """name -> (text, value) of one section, and the causes of bad names or quantities."""
    raw = item.get(section)
    causes = quantities(raw, f"{path}.{section}")
    found: dict[str, Shown] = {}
    for name, value in as_dict(raw).items():
        causes += _resource_name_causes(str(item.get("type", "")), name, f"{path}.{section}[{name}]")
        try:
            found[name] = (str(value), quantity.parse(value))
        except quantity.QuantityError:
            continue  # reported by quantities()
    return found, causes


def _problems(values: dict[str, Shown | None]) -> list[tuple[str, Shown, str]]:
    """(section, quantity shown, why) for one resource of one item, in upstream's order."""
    low, high = values["min"], values["max"]
    limit, request, ratio = values["default"], values["defaultRequest"], values["maxLimitRequestRatio"]
    found: list[tuple[str, Shown, str]] = []
    if low and high and low[1] > high[1]:
        found.append(("min", low, f"min value {low[0]} is greater than max value {high[0]}"))
    if request and low and low[1] > request[1]:
        found.append(
            (
                "defaultRequest",
                request,
                f"min value {low[0]} is greater than default request value {request[0]}",
            )
        )
    if request and high and request[1] > high[1]:
        found.append(
            (
                "defaultRequest",
                request,
                f"default request value {request[0]} is greater than max value {high[0]}",
            )
        )
    if request and limit and request[1] > limit[1]:
        why = f"default request value {request[0]} is greater than default limit value {limit[0]}"
        found.append(("defaultRequest", request, why))
    if limit and low and low[1] > limit[1]:
        found.append(("default", low, f"min value {low[0]} is greater than default value {limit[0]}"))
    if limit and high and limit[1] > high[1]:
        found.append(("default", high, f"default value {limit[0]} is greater than max value {high[0]}"))
    if ratio and ratio[1] < 1:
        found.append(("maxLimitRequestRatio", ratio, f"ratio {ratio[0]} is less than 1"))
    if ratio and low and high and low[1] > 0 and ratio[1] > high[1] / low[1]:
        why = f"ratio {ratio[0]} is greater than max/min = {float(high[1] / low[1]):f}"
        found.append(("maxLimitRequestRatio", ratio, why))
    return found


def _relations(values: dict[str, dict[str, Shown]], path: str) -> list[Cause]:
    """Upstream's checks between the sections of one item, resource by resource."""
    names = sorted({n for section in values.values() for n in section})
    return [
        Cause(f"{path}.{section}[{name}]", f'Invalid value: "{shown[0]}": {why}')
        for name in names
        for section, shown, why in _problems({s: values[s].get(name) for s in SECTIONS})
    ]


def _item_causes(item: Obj, path: str, seen: set[str]) -> list[Cause]:
    kind = item.get("type")
    causes: list[Cause] = []
    if kind not in TYPES:
        why = (
            "nestlab enforces Container, Pod and PersistentVolumeClaim limits only"
            if "/" in str(kind)
            else "must be a standard limit type or fully qualified"
        )
        causes.append(Cause(f"{path}.type", f'Invalid value: "{kind or ""}": {why}'))
    elif kind in seen:
        causes.append(Cause(f"{path}.type", f'Duplicate value: "{kind}"', "FieldValueDuplicate"))
    seen.add(str(kind))
    if kind == POD:
        causes += [
            Cause(
                f"{path}.{section}",
                "Forbidden: may not be specified when `type` is 'Pod'",
                "FieldValueForbidden",
            )
            for section in ("default", "defaultRequest")
            if item.get(section)
        ]
    values: dict[str, dict[str, Shown]] = {}
    for section in SECTIONS:
        values[section], found = _values(item, section, path)
        causes += found
    if kind == CLAIM and "storage" not in values["min"] and "storage" not in values["max"]:
        causes.append(
            Cause(
                f"{path}.limits",
                "Required value: either minimum or maximum storage value is required, "
                "but neither was provided",
                "FieldValueRequired",
            )
        )
    return causes + _relations(values, path)


def validate(limit_range: Obj) -> list[Cause]:
    """Upstream ValidateLimitRange: known types once each, known resources, consistent bounds."""
    causes = check_metadata(limit_range)
    spec = limit_range.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [*causes, Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    limits = as_dict(spec).get("limits")
    if limits is not None and not isinstance(limits, list):
        return [*causes, Cause("spec.limits", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    seen: set[str] = set()
    for index, item in enumerate(as_list(limits)):
        path = f"spec.limits[{index}]"
        if not isinstance(item, dict):
            causes.append(Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        causes += _item_causes(item, path, seen)
    return causes


def row(limit_range: Obj) -> list[Any]:
    """NAME and CREATED AT, as ``kubectl get limits`` prints them."""
    meta = limit_range["metadata"]
    return [meta["name"], meta.get("creationTimestamp", "")]


KIND = Kind(
    RESOURCE,
    model="V1LimitRange",
    default=default,
    validate=validate,
    columns=(NAME, CREATED_AT),
    row=row,
    # Upstream's bootstrap policy: view reads limitranges; edit and admin do not write them (a
    # namespace's own administrators cannot loosen the limits the lab administrator set).
    roles={"view": {"limitranges": READ}},
    protobuf={
        1: ("metadata", PROTO_META),
        2: ("spec", {1: ("limits", ("list", _ITEM))}),
    },
)
