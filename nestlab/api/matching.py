"""What a label selector or a node selector term matches, as upstream decides it.

The scheduler asks this for every node and every pod (node affinity, pod (anti-)affinity terms,
topology spread selectors); the API server's validators (:mod:`nestlab.api.affinity`) decide what
may be asked. Keep the two in step: an operator the validators accept must mean here what it means
upstream (``Gt`` compares integers, an empty node selector term matches no node). Lenient by
design: a malformed field reads as absent or matches nothing rather than raising, so one bad object
cannot stop a scheduling pass. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nestlab.api.kinds.common import as_dict, as_list


def label_selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against labels: ``None`` matches nothing, ``{}`` matches everything."""
    if not isinstance(selector, dict):
        return False
    if any(labels.get(k) != v for k, v in as_dict(selector.get("matchLabels")).items()):
        return False
    for expression in as_list(selector.get("matchExpressions")):
        key, operator = as_dict(expression).get("key"), as_dict(expression).get("operator")
        values = as_list(as_dict(expression).get("values"))
        if not isinstance(key, str):
            return False
        present = key in labels
        if operator == "In":
            ok = present and labels[key] in values
        elif operator == "NotIn":
            ok = not present or labels[key] not in values
        elif operator in ("Exists", "DoesNotExist"):
            ok = present == (operator == "Exists")
        else:
            ok = False
        if not ok:
            return False
    return True


def _requirement_matches(requirement: Any, value: str | None) -> bool:
    """One NodeSelectorRequirement against the node's value for its key (None: absent)."""
    operator = as_dict(requirement).get("operator")
    values = [str(v) for v in as_list(as_dict(requirement).get("values"))]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator in ("Exists", "DoesNotExist"):
        return (value is not None) is (operator == "Exists")
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except (TypeError, ValueError):
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def node_selector_term_matches(term: Any, labels: Mapping[str, str], node_name: str) -> bool:
    """A NodeSelectorTerm: its expressions (labels) and fields (``metadata.name``) all hold; an
    empty term matches no node, as upstream."""
    expressions = as_list(as_dict(term).get("matchExpressions"))
    fields = as_list(as_dict(term).get("matchFields"))
    if not expressions and not fields:
        return False
    for requirement in expressions:
        if not _requirement_matches(requirement, labels.get(str(as_dict(requirement).get("key")))):
            return False
    for requirement in fields:
        key = as_dict(requirement).get("key")
        if key != "metadata.name" or not _requirement_matches(requirement, node_name):
            return False
    return True


def node_selector_matches(selector: Any, labels: Mapping[str, str], node_name: str) -> bool:
    """A NodeSelector: any of its ``nodeSelectorTerms`` matches (the terms are ORed)."""
    terms = as_list(as_dict(selector).get("nodeSelectorTerms"))
    return any(node_selector_term_matches(term, labels, node_name) for term in terms)


__all__ = [
    "as_dict",
    "as_list",
    "label_selector_matches",
    "node_selector_matches",
    "node_selector_term_matches",
]
