"""rbac.authorization.k8s.io/v1 ClusterRole: permissions usable cluster-wide or bound in a namespace.

``view``, ``edit``, ``admin`` and ``cluster-admin`` are ClusterRoles (:mod:`nestlab.api.bootstraproles`
creates them). A ClusterRole with an ``aggregationRule`` has its rules written by the aggregation
controller (:mod:`nestlab.controller.clusterroleaggregation`): the union of the rules of every
ClusterRole its selectors match, which is how ``admin`` includes ``edit`` includes ``view`` and how
a new kind's permissions reach them (label a ClusterRole ``rbac.authorization.k8s.io/aggregate-to-edit:
"true"``). Validation is upstream ValidateClusterRole.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import rbac
from nestlab.api.kinds.base import Kind, Obj, Resource
from nestlab.api.kinds.common import as_dict, check_label_selector, selector_matches, type_causes
from nestlab.api.kinds.wiremeta import LABEL_SELECTOR, listed
from nestlab.api.status import Cause

RESOURCE = Resource("clusterroles", "clusterrole", "ClusterRole", rbac.GROUP, "v1", False)
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
"""Label prefix the built-in aggregated roles select (``aggregate-to-view: "true"``)."""


def selectors(role: Obj) -> list[Any]:
    """The clusterRoleSelectors of an aggregated role ([] for a plain one)."""
    rule = role.get("aggregationRule")
    found = as_dict(rule).get("clusterRoleSelectors")
    return found if isinstance(found, list) else []


def is_aggregated(role: Obj) -> bool:
    return isinstance(role.get("aggregationRule"), dict)


def aggregates(role: Obj, other: Obj) -> bool:
    """Whether ``other``'s rules belong to aggregated ``role`` (any selector matches its labels; an
    empty selector matches every role, as upstream's LabelSelectorAsSelector)."""
    labels = as_dict(as_dict(other.get("metadata")).get("labels"))
    return any(selector_matches(s, labels) for s in selectors(role) if isinstance(s, dict))


def validate(role: Obj) -> list[Cause]:
    """Upstream ValidateClusterRole: rules, and at least one well-formed selector when aggregated."""
    causes = rbac.check_rbac_metadata(role) + rbac.check_rules(role, namespaced=False)
    shape = type_causes(role, {"aggregationRule": dict})
    if shape:
        return causes + shape
    if not is_aggregated(role):
        return causes
    found = role["aggregationRule"].get("clusterRoleSelectors")
    if found is not None and not isinstance(found, list):
        message = "Invalid value: must be a list"
        return [*causes, Cause("aggregationRule.clusterRoleSelectors", message, "FieldValueTypeInvalid")]
    if not found:
        message = "Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"
        causes.append(Cause("aggregationRule.clusterRoleSelectors", message, "FieldValueRequired"))
    for index, selector in enumerate(found or []):
        causes += check_label_selector(
            selector, f"aggregationRule.clusterRoleSelectors[{index}]", required=True
        )
    return causes


KIND = Kind(
    RESOURCE,
    model="V1ClusterRole",
    validate=validate,
    columns=rbac.ROLE_COLUMNS,
    row=rbac.role_row,
    protobuf={
        **rbac.ROLE,
        3: ("aggregationRule", {1: ("clusterRoleSelectors", listed(LABEL_SELECTOR))}),
    },
)
