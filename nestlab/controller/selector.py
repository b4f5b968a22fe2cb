"""metav1.LabelSelector objects (``matchLabels`` + ``matchExpressions``) as controllers use them.

The API server parses selector *strings* (``?labelSelector=``); controllers hold selector
*objects* from specs (ReplicaSet, Deployment, StatefulSet, Job) and match them against cached
labels, with upstream's edge cases: an empty selector ``{}`` matches everything, an absent one
(None) matches nothing; ReplicationControllers carry a plain map, which is ``matchLabels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def from_map(labels: Mapping[str, str] | None) -> Obj | None:
    """A ReplicationController's ``spec.selector`` map as a LabelSelector (None stays None)."""
    return None if labels is None else {"matchLabels": dict(labels)}


def _expression(expr: Obj, labels: Mapping[str, str]) -> bool:
    key, operator, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # unknown operator: upstream refuses to build such a selector, so match nothing


def matches(selector: Obj | None, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy ``selector`` (None matches nothing, ``{}`` everything)."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression(expr, labels) for expr in selector.get("matchExpressions") or [])


def is_empty(selector: Obj | None) -> bool:
    """True for None and ``{}``: selectors a workload must not use (they would take every pod)."""
    return not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions"))


def to_string(selector: Obj) -> str:
    """The selector as a ``labelSelector`` query string (what kubectl sends)."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if operator in ("In", "NotIn"):
            terms.append(f"{key} {operator.lower()} ({','.join(sorted(values))})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)
