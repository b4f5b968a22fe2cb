"""Pod affinity and topology spread terms: what upstream accepts.

The scheduler acts on ``spec.affinity`` (node affinity, pod affinity and anti-affinity, required
and preferred) and ``spec.topologySpreadConstraints``; a term it would misread must be refused at
the door with the causes kube-apiserver gives (same field paths, same messages), or the pod would
sit Pending for a reason nobody can see. What an accepted term matches is :mod:`nestlab.api.matching`
(the validators here accept exactly the operators it understands). Pure functions: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nestlab.api.matching import as_dict, as_list
from nestlab.api.status import Cause

# as_dict and as_list were defined here before the matchers moved out; callers still import them here.
__all__ = ["as_dict", "as_list", "check_affinity", "check_label_selector", "check_topology_spread"]

Obj = dict[str, Any]

_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
    "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_DNS_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_POSITIVE = "must be greater than zero"  # upstream isNotPositiveErrorMsg
_WEIGHT = "must be in the range 1-100"
_SCHEDULE_ACTIONS = ("DoNotSchedule", "ScheduleAnyway")
_INCLUSION_POLICIES = ("Honor", "Ignore")


def _invalid(path: str, value: Any, detail: str) -> Cause:
    shown = json.dumps(value) if isinstance(value, (str, bool)) else value  # Go's %q / %v
    return Cause(path, f"Invalid value: {shown}: {detail}", "FieldValueInvalid")


def _required(path: str, detail: str) -> Cause:
    return Cause(path, f"Required value: {detail}", "FieldValueRequired")


def _forbidden(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", "FieldValueForbidden")


def _not_supported(path: str, value: Any, supported: tuple[str, ...]) -> Cause:
    listed = ", ".join(f'"{s}"' for s in supported)
    shown = json.dumps(value) if isinstance(value, str) else value
    return Cause(path, f"Unsupported value: {shown}: supported values: {listed}", "FieldValueNotSupported")


def _wrong_type(path: str, wanted: str) -> Cause:
    return Cause(path, f"Invalid value: must be {wanted}", "FieldValueTypeInvalid")


def _label_name(name: Any, path: str) -> list[Cause]:
    """upstream ValidateLabelName (IsQualifiedName): an optional DNS subdomain prefix and a name."""
    if not isinstance(name, str):
        return [_wrong_type(path, "a string")]
    parts = name.split("/")
    if len(parts) > 2:
        return [
            _invalid(
                path,
                name,
                f"a qualified name {_QUALIFIED_MSG} with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')",
            )
        ]
    causes = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            causes.append(_invalid(path, name, "prefix part must be non-empty"))
        elif len(prefix) > 253:
            causes.append(_invalid(path, name, "prefix part must be no more than 253 characters"))
        elif not _DNS1123_SUBDOMAIN.match(prefix):
            causes.append(_invalid(path, name, f"prefix part {_SUBDOMAIN_MSG}"))
    short = parts[-1]
    if not short:
        causes.append(_invalid(path, name, "name part must be non-empty"))
    elif len(short) > 63:
        causes.append(_invalid(path, name, "name part must be no more than 63 characters"))
    if not _QUALIFIED.match(short):
        causes.append(_invalid(path, name, f"name part {_QUALIFIED_MSG}"))
    return causes


def _label_value(value: Any, path: str) -> list[Cause]:
    if not isinstance(value, str):
        return [_wrong_type(path, "a string")]
    causes = []
    if len(value) > 63:
        causes.append(_invalid(path, value, "must be no more than 63 characters"))
    if not _LABEL_VALUE.match(value):
        causes.append(_invalid(path, value, _LABEL_VALUE_MSG))
    return causes


def _strings(value: Any, path: str) -> list[Cause] | None:
    """A type cause unless ``value`` is absent or a list of strings."""
    if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return None
    return [_wrong_type(path, "a list of strings")]


def check_label_selector(selector: Any, path: str) -> list[Cause]:
    """upstream ValidateLabelSelector: label names and values, operators and their values."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [_wrong_type(path, "a label selector")]
    causes: list[Cause] = []
    match_labels = selector.get("matchLabels")
    if match_labels is not None and not isinstance(match_labels, dict):
        causes.append(_wrong_type(f"{path}.matchLabels", "a map of string keys to string values"))
    for key, value in as_dict(match_labels).items():
        causes += _label_name(key, f"{path}.matchLabels") + _label_value(value, f"{path}.matchLabels")
    expressions = selector.get("matchExpressions")
    if expressions is not None and not isinstance(expressions, list):
        return [*causes, _wrong_type(f"{path}.matchExpressions", "a list")]
    for index, expression in enumerate(as_list(expressions)):
        at = f"{path}.matchExpressions[{index}]"
        if not isinstance(expression, dict):
            causes.append(_wrong_type(at, "an object"))
            continue
        values, operator = expression.get("values"), expression.get("operator")
        bad_values = _strings(values, f"{at}.values")
        if bad_values:
            causes += bad_values
            continue
        if operator in ("In", "NotIn") and not values:
            causes.append(_required(f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist") and values:
            causes.append(
                _forbidden(
                    f"{at}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
            )
        elif operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append(_invalid(f"{at}.operator", operator or "", "not a valid selector operator"))
        causes += _label_name(expression.get("key", ""), f"{at}.key")
        for i, value in enumerate(as_list(values)):
            causes += _label_value(value, f"{at}.values[{i}]")
    return causes


def _check_node_requirement(requirement: Any, path: str, *, field: bool) -> list[Cause]:
    if not isinstance(requirement, dict):
        return [_wrong_type(path, "an object")]
    values, operator, key = requirement.get("values"), requirement.get("operator"), requirement.get("key", "")
    bad_values = _strings(values, f"{path}.values")
    if bad_values:
        return bad_values
    count = len(as_list(values))
    causes: list[Cause] = []
    if field:
        if operator not in ("In", "NotIn"):
            causes.append(_invalid(f"{path}.operator", operator or "", "not a valid selector operator"))
        elif count != 1:
            causes.append(
                _required(
                    f"{path}.values",
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                )
            )
        if key != "metadata.name":
            return [*causes, _invalid(f"{path}.key", key, "not a valid field selector key")]
        for i, value in enumerate(as_list(values)):
            if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
                causes.append(_invalid(f"{path}.values[{i}]", value, _SUBDOMAIN_MSG))
        return causes
    if operator in ("In", "NotIn") and count == 0:
        causes.append(_required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist") and count:
        causes.append(
            _forbidden(f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        )
    elif operator in ("Gt", "Lt") and count != 1:
        causes.append(
            _required(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'")
        )
    elif operator not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
        causes.append(_invalid(f"{path}.operator", operator or "", "not a valid selector operator"))
    return causes + _label_name(key, f"{path}.key")


def _check_node_term(term: Any, path: str) -> list[Cause]:
    if not isinstance(term, dict):
        return [_wrong_type(path, "an object")]
    causes: list[Cause] = []
    for name, is_field in (("matchExpressions", False), ("matchFields", True)):
        items = term.get(name)
        if items is not None and not isinstance(items, list):
            causes.append(_wrong_type(f"{path}.{name}", "a list"))
            continue
        for index, requirement in enumerate(as_list(items)):
            causes += _check_node_requirement(requirement, f"{path}.{name}[{index}]", field=is_field)
    return causes


def _weight(term: Any, path: str) -> list[Cause]:
    weight = term.get("weight", 0)
    if not isinstance(weight, int) or isinstance(weight, bool):
        return [_wrong_type(f"{path}.weight", "an integer")]
    return [] if 1 <= weight <= 100 else [_invalid(f"{path}.weight", weight, _WEIGHT)]


def _check_node_affinity(node_affinity: Any, path: str) -> list[Cause]:
    if not isinstance(node_affinity, dict):
        return [_wrong_type(path, "an object")]
    causes: list[Cause] = []
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    at = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
    if required is not None:
        terms = as_dict(required).get("nodeSelectorTerms")
        if not isinstance(required, dict) or (terms is not None and not isinstance(terms, list)):
            causes.append(_wrong_type(at, "a node selector"))
        elif not terms:
            causes.append(_required(f"{at}.nodeSelectorTerms", "must have at least one node selector term"))
        else:
            for index, term in enumerate(terms):
                causes += _check_node_term(term, f"{at}.nodeSelectorTerms[{index}]")
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
    at = f"{path}.preferredDuringSchedulingIgnoredDuringExecution"
    if preferred is not None and not isinstance(preferred, list):
        return [*causes, _wrong_type(at, "a list")]
    for index, term in enumerate(as_list(preferred)):
        if not isinstance(term, dict):
            causes.append(_wrong_type(f"{at}[{index}]", "an object"))
            continue
        causes += _weight(term, f"{at}[{index}]")
        causes += _check_node_term(term.get("preference", {}), f"{at}[{index}].preference")
    return causes


def _check_label_keys(term: Obj, path: str) -> list[Cause]:
    """matchLabelKeys / mismatchLabelKeys: label names, only beside a labelSelector, never both."""
    causes: list[Cause] = []
    for name in ("matchLabelKeys", "mismatchLabelKeys"):
        keys = term.get(name)
        bad = _strings(keys, f"{path}.{name}")
        if bad:
            causes += bad
            continue
        if keys and term.get("labelSelector") is None:
            causes.append(_forbidden(f"{path}.{name}", "must not be specified when labelSelector is not set"))
            continue
        for index, key in enumerate(as_list(keys)):
            causes += _label_name(key, f"{path}.{name}[{index}]")
    mismatch = set(as_list(term.get("mismatchLabelKeys")))
    for index, key in enumerate(as_list(term.get("matchLabelKeys"))):
        if key in mismatch:
            causes.append(
                _invalid(
                    f"{path}.matchLabelKeys[{index}]",
                    key,
                    "exists in both matchLabelKeys and mismatchLabelKeys",
                )
            )
    return causes


def _check_pod_term(term: Any, path: str) -> list[Cause]:
    """upstream validatePodAffinityTerm: selectors, namespaces, label keys, a topology key."""
    if not isinstance(term, dict):
        return [_wrong_type(path, "an object")]
    causes = check_label_selector(term.get("labelSelector"), f"{path}.labelSelector")
    causes += check_label_selector(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    namespaces = term.get("namespaces")
    bad = _strings(namespaces, f"{path}.namespaces")
    causes += bad or []
    for name in [] if bad else as_list(namespaces):
        if len(name) > 63:
            causes.append(_invalid(f"{path}.namespace", name, "must be no more than 63 characters"))
        elif not _DNS1123_LABEL.match(name):
            causes.append(_invalid(f"{path}.namespace", name, _DNS_LABEL_MSG))  # upstream's path: singular
    causes += _check_label_keys(term, path)
    key = term.get("topologyKey", "")
    if not key:
        causes.append(_required(f"{path}.topologyKey", "can not be empty"))
    return causes + _label_name(key, f"{path}.topologyKey")


def _check_pod_affinity(pod_affinity: Any, path: str) -> list[Cause]:
    if not isinstance(pod_affinity, dict):
        return [_wrong_type(path, "an object")]
    causes: list[Cause] = []
    required = pod_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    at = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
    if required is not None and not isinstance(required, list):
        causes.append(_wrong_type(at, "a list"))
    for index, term in enumerate(as_list(required)):
        causes += _check_pod_term(term, f"{at}[{index}]")
    preferred = pod_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
    at = f"{path}.preferredDuringSchedulingIgnoredDuringExecution"
    if preferred is not None and not isinstance(preferred, list):
        return [*causes, _wrong_type(at, "a list")]
    for index, term in enumerate(as_list(preferred)):
        if not isinstance(term, dict):
            causes.append(_wrong_type(f"{at}[{index}]", "an object"))
            continue
        causes += _weight(term, f"{at}[{index}]")
        causes += _check_pod_term(term.get("podAffinityTerm", {}), f"{at}[{index}].podAffinityTerm")
    return causes


def check_affinity(affinity: Any, path: str = "spec.affinity") -> list[Cause]:
    """Causes for a bad ``spec.affinity`` (node affinity, pod affinity, pod anti-affinity)."""
    if affinity is None:
        return []
    if not isinstance(affinity, dict):
        return [_wrong_type(path, "an object")]
    causes: list[Cause] = []
    if affinity.get("nodeAffinity") is not None:
        causes += _check_node_affinity(affinity["nodeAffinity"], f"{path}.nodeAffinity")
    for name in ("podAffinity", "podAntiAffinity"):
        if affinity.get(name) is not None:
            causes += _check_pod_affinity(affinity[name], f"{path}.{name}")
    return causes


def _positive(value: Any, path: str) -> list[Cause]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [_wrong_type(path, "an integer")]
    return [] if value > 0 else [_invalid(path, value, _POSITIVE)]


def check_topology_spread(constraints: Any, path: str = "spec.topologySpreadConstraints") -> list[Cause]:
    """Causes for bad ``spec.topologySpreadConstraints`` (upstream validateTopologySpreadConstraints)."""
    if constraints is None:
        return []
    if not isinstance(constraints, list):
        return [_wrong_type(path, "a list")]
    causes: list[Cause] = []
    for index, constraint in enumerate(constraints):
        at = f"{path}[{index}]"
        if not isinstance(constraint, dict):
            causes.append(_wrong_type(at, "an object"))
            continue
        causes += _positive(constraint.get("maxSkew", 0), f"{at}.maxSkew")
        key, action = constraint.get("topologyKey", ""), constraint.get("whenUnsatisfiable", "")
        if not key:
            causes.append(_required(f"{at}.topologyKey", "can not be empty"))
        if action not in _SCHEDULE_ACTIONS:
            causes.append(_not_supported(f"{at}.whenUnsatisfiable", action, _SCHEDULE_ACTIONS))
        for later in constraints[index + 1 :]:
            if (
                as_dict(later).get("topologyKey", "") == key
                and as_dict(later).get("whenUnsatisfiable", "") == action
            ):
                causes.append(
                    Cause(
                        f"{at}.{{topologyKey, whenUnsatisfiable}}",
                        f'Duplicate value: "{{{key}, {action}}}"',
                        "FieldValueDuplicate",
                    )
                )
                break
        if constraint.get("minDomains") is not None:
            min_domains = constraint["minDomains"]
            causes += _positive(min_domains, f"{at}.minDomains")
            if action != "DoNotSchedule" and isinstance(min_domains, int):
                causes.append(
                    _invalid(
                        f"{at}.minDomains",
                        min_domains,
                        f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}",
                    )
                )
        for policy in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            value = constraint.get(policy)
            if value is not None and value not in _INCLUSION_POLICIES:
                causes.append(_not_supported(f"{at}.{policy}", value, _INCLUSION_POLICIES))
        causes += _check_spread_label_keys(constraint, f"{at}.matchLabelKeys")
        causes += check_label_selector(constraint.get("labelSelector"), f"{at}.labelSelector")
    return causes


def _check_spread_label_keys(constraint: Obj, path: str) -> list[Cause]:
    keys = constraint.get("matchLabelKeys")
    bad = _strings(keys, path)
    if bad or not keys:
        return bad or []
    selector = constraint.get("labelSelector")
    causes: list[Cause] = []
    if not isinstance(selector, dict):
        causes.append(_forbidden(path, "must not be specified when labelSelector is not set"))
    in_selector = set(as_dict(as_dict(selector).get("matchLabels"))) | {
        as_dict(e).get("key") for e in as_list(as_dict(selector).get("matchExpressions"))
    }
    for index, key in enumerate(as_list(keys)):
        causes += _label_name(key, f"{path}[{index}]")
        if key in in_selector:
            causes.append(
                _invalid(f"{path}[{index}]", key, "exists in both matchLabelKeys and labelSelector")
            )
    return causes
