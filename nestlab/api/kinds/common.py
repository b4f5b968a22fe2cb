"""Validation every kind shares: names, metadata, owner references, label selectors, JSON types, quantities.

What is checked matches Kubernetes (DNS-1123 names, upstream field paths and messages), because a
learner compares what the lab answers with what the Kubernetes documentation shows. The checks
return :class:`~nestlab.api.status.Cause` lists; the registry turns them into one 422.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nestlab.api import quantity
from nestlab.api.kinds.base import Obj
from nestlab.api.status import Cause

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
}


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one (the shape checks report the bad type)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def type_causes(obj: Obj, expected: Mapping[str, type], prefix: str = "") -> list[Cause]:
    """A cause for every present field whose JSON type is wrong (``{"spec": dict}``...)."""
    causes = []
    for name, kind in expected.items():
        value = obj.get(name)
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if value is not None and wrong:
            wanted = _TYPE_NAMES.get(kind, kind.__name__)
            causes.append(
                Cause(f"{prefix}{name}", f"Invalid value: must be {wanted}", "FieldValueTypeInvalid")
            )
    return causes


def check_name(name: str, label: bool = False, path: str = "metadata.name") -> list[Cause]:
    """Causes for a bad object name: DNS-1123 label (63) when ``label``, else subdomain (253)."""
    if not name:
        return [Cause(path, "Required value: name or generateName is required", "FieldValueRequired")]
    limit, pattern, rule = (
        (63, DNS1123_LABEL, LABEL_MSG) if label else (253, DNS1123_SUBDOMAIN, SUBDOMAIN_MSG)
    )
    if len(name) > limit:
        return [Cause(path, f'Invalid value: "{name}": must be no more than {limit} characters')]
    if not pattern.match(name):
        return [Cause(path, f'Invalid value: "{name}": {rule}')]
    return []


def check_map_of_strings(value: Any, path: str) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [
            Cause(
                path, "Invalid value: must be a map of string keys to string values", "FieldValueTypeInvalid"
            )
        ]
    return []


def check_label_key(key: str, path: str) -> list[Cause]:
    """A qualified name (``[prefix/]name``), as label and annotation keys must be."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return [Cause(path, f'Invalid value: "{key}": prefix part {SUBDOMAIN_MSG}')]
    if not name or len(name) > 63 or not _QUALIFIED.match(name):
        return [Cause(path, f'Invalid value: "{key}": {_QUALIFIED_MSG}')]
    return []


def check_labels(labels: Any, path: str) -> list[Cause]:
    """Label keys must be qualified names and values valid label values, as upstream."""
    causes = check_map_of_strings(labels, path)
    if causes or not isinstance(labels, dict):
        return causes
    for key, value in labels.items():
        causes += check_label_key(key, path)
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(Cause(f"{path}", f'Invalid value: "{value}": {_LABEL_VALUE_MSG}'))
    return causes


def check_owner_references(refs: Any, path: str = "metadata.ownerReferences") -> list[Cause]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [Cause(path, "Invalid value: must be a list", "FieldValueTypeInvalid")]
    causes: list[Cause] = []
    controllers = 0
    for index, ref in enumerate(refs):
        where = f"{path}[{index}]"
        if not isinstance(ref, dict):
            causes.append(Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key) or not isinstance(ref.get(key), str):
                causes.append(
                    Cause(f"{where}.{key}", "Required value: must not be empty", "FieldValueRequired")
                )
        controllers += ref.get("controller") is True
    if controllers > 1:
        causes.append(
            Cause(
                path, "Invalid value: only one reference can have Controller set to true", "FieldValueInvalid"
            )
        )
    return causes


def check_metadata(obj: Obj, label_named: bool = False) -> list[Cause]:
    """Causes every kind shares: name, labels, annotations, finalizers, owner references."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [Cause("metadata", "Required value: metadata is required", "FieldValueRequired")]
    if not isinstance(meta.get("name", ""), str):
        return [Cause("metadata.name", "Invalid value: must be a string", "FieldValueTypeInvalid")]
    causes = check_name(str(meta.get("name", "")), label_named)
    causes += type_causes(meta, {"finalizers": list, "generateName": str, "namespace": str}, "metadata.")
    causes += check_labels(meta.get("labels"), "metadata.labels")
    causes += check_map_of_strings(meta.get("annotations"), "metadata.annotations")
    causes += check_owner_references(meta.get("ownerReferences"))
    return causes


def check_label_selector(selector: Any, path: str, required: bool = False) -> list[Cause]:
    """A metav1.LabelSelector: matchLabels and matchExpressions with upstream's operators."""
    if selector is None:
        return [Cause(path, "Required value", "FieldValueRequired")] if required else []
    if not isinstance(selector, dict):
        return [Cause(path, "Invalid value: must be a label selector", "FieldValueTypeInvalid")]
    causes = check_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    expressions = selector.get("matchExpressions")
    if expressions is not None and not isinstance(expressions, list):
        return [
            *causes,
            Cause(f"{path}.matchExpressions", "Invalid value: must be a list", "FieldValueTypeInvalid"),
        ]
    for index, expression in enumerate(as_list(expressions)):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(expression, dict):
            causes.append(Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        operator, values = expression.get("operator"), expression.get("values")
        if operator not in _SELECTOR_OPERATORS:
            supported = ", ".join(f'"{o}"' for o in _SELECTOR_OPERATORS)
            causes.append(
                Cause(
                    f"{where}.operator",
                    f'Unsupported value: "{operator}": supported values: {supported}',
                    "FieldValueNotSupported",
                )
            )
        elif operator in ("In", "NotIn") and not values:
            message = "Required value: must be specified when `operator` is 'In' or 'NotIn'"
            causes.append(Cause(f"{where}.values", message, "FieldValueRequired"))
        elif operator in ("Exists", "DoesNotExist") and values:
            message = "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            causes.append(Cause(f"{where}.values", message, "FieldValueForbidden"))
        causes += check_label_key(str(expression.get("key", "")), f"{where}.key")
    return causes


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector matches ``labels`` (an empty selector matches everything)."""
    if not isinstance(selector, dict):
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression.get("key"),
            expression.get("operator"),
            expression.get("values") or [],
        )
        present = key in labels
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and present and labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def check_nonnegative(value: Any, path: str) -> list[Cause]:
    """An optional integer that must be >= 0 (replicas, limits), with upstream's message."""
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool):
        return [Cause(path, "Invalid value: must be an integer", "FieldValueTypeInvalid")]
    if value < 0:
        return [Cause(path, f"Invalid value: {value}: must be greater than or equal to 0")]
    return []


def check_positive(value: Any, path: str) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool):
        return [Cause(path, "Invalid value: must be an integer", "FieldValueTypeInvalid")]
    if value <= 0:
        return [Cause(path, f"Invalid value: {value}: must be greater than zero")]
    return []


def immutable(new: Any, old: Any, path: str) -> list[Cause]:
    """The upstream cause for a changed immutable field."""
    if new == old:
        return []
    return [Cause(path, f"Invalid value: {_show(new)}: field is immutable")]


def _show(value: Any) -> str:
    if isinstance(value, dict):
        if set(value) <= {"matchLabels", "matchExpressions"}:
            from nestlab.api.kinds.printing import label_selector_text  # noqa: PLC0415

            return f"v1.LabelSelector{{{label_selector_text(value)}}}"
        return "{...}"
    return f'"{value}"' if isinstance(value, str) else str(value)


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


def check_status(obj: Obj, quantity_sections: tuple[str, ...] = ()) -> list[Cause]:
    """Status is read back by printers, the scheduler and controllers: its shapes must hold."""
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
    for section in quantity_sections:
        causes += quantities(state.get(section), f"status.{section}")
    return causes


def unique_label(name: Any, where: str, seen: set[str]) -> list[Cause]:
    """Upstream's checks of a list item's ``name`` (a container, a volume): required, a DNS label,
    unique among ``seen`` (which a valid new name joins)."""
    if not name:
        return [Cause(f"{where}.name", "Required value", "FieldValueRequired")]
    if not isinstance(name, str) or not DNS1123_LABEL.match(name):
        return [Cause(f"{where}.name", f'Invalid value: "{name}": {LABEL_MSG}')]
    if name in seen:
        return [Cause(f"{where}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate")]
    seen.add(name)
    return []
