"""ClusterRole aggregation: a role with an ``aggregationRule`` holds the rules of the roles it selects.

``admin``, ``edit`` and ``view`` are aggregated ClusterRoles: anyone can widen them by creating a
ClusterRole labelled ``rbac.authorization.k8s.io/aggregate-to-edit: "true"`` (that is how an
add-on's kinds reach the namespace editors), and ``admin`` includes ``edit`` includes ``view``
because ``edit`` and ``view`` carry the next level's label. As upstream's
ClusterRoleAggregationController: every change to any ClusterRole re-examines every aggregated one,
whose rules become the rules of the matching roles (itself excluded), in selector order then name
order, without duplicates; the role is written only when that differs from what it holds.
:func:`aggregated_rules` decides (pure); the controller reads its informer and writes.
"""

from __future__ import annotations

import copy
from typing import Any

from nestlab.api.client import ApiClient
from nestlab.api.kinds.clusterrole import is_aggregated, selectors
from nestlab.api.kinds.common import selector_matches
from nestlab.api.resources import CLUSTERROLES
from nestlab.controller.informer import EventHandler, InformerFactory, key_of
from nestlab.controller.workqueue import WorkQueue

Obj = dict[str, Any]


def _labels(role: Obj) -> dict[str, str]:
    labels = (role.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def aggregated_rules(role: Obj, roles: list[Obj]) -> list[Obj]:
    """The rules aggregated ``role`` should hold, given every ClusterRole."""
    name = role["metadata"]["name"]
    ordered = sorted(roles, key=lambda r: str(r["metadata"]["name"]))
    rules: list[Obj] = []
    for selector in selectors(role):
        if not isinstance(selector, dict):
            continue
        for other in ordered:
            if other["metadata"]["name"] == name or not selector_matches(selector, _labels(other)):
                continue
            for rule in other.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
    return rules


class ClusterRoleAggregationController:
    """Keeps every aggregated ClusterRole's rules the union of the roles it selects."""

    name = "clusterrole-aggregation"
    workers = 1

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.roles = informers.informer(CLUSTERROLES)
        self.roles.add_handler(
            EventHandler(
                on_add=self._changed,
                on_update=lambda _old, new: self._changed(new),
                on_delete=self._changed,
            )
        )

    def _changed(self, _role: Obj) -> None:
        """Any role's labels or rules may feed any aggregated role: re-examine them all."""
        for role in self.roles.list():
            if is_aggregated(role):
                self.queue.add(key_of(role))

    async def sync(self, key: str) -> None:
        """Write the aggregated rules of ClusterRole ``key`` if they changed; ApiError retries."""
        role = self.roles.get(key)
        if role is None or not is_aggregated(role):
            return
        rules = aggregated_rules(role, self.roles.list())
        if rules == (role.get("rules") or []):
            return
        updated = copy.deepcopy(role)
        updated["rules"] = rules
        await self.client.replace(CLUSTERROLES, "", updated)  # carries resourceVersion: 409 retries
