"""ClusterRole aggregation: upstream's union in selector then name order, written only on change."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

from nestlab.api.client import ApiClient
from nestlab.api.resources import CLUSTERROLES, Resource
from nestlab.controller.clusterroleaggregation import ClusterRoleAggregationController, aggregated_rules
from nestlab.controller.informer import InformerFactory

Obj = dict[str, Any]
GET_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
LIST_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
GET_DEPLOY = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}


def cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None, **extra: Any) -> Obj:
    return {
        "metadata": {"name": name, "labels": labels or {}, "resourceVersion": "1"},
        "rules": rules,
        **extra,
    }


def aggregated(name: str, *selectors: Obj, rules: list[Obj] | None = None) -> Obj:
    return cluster_role(name, rules or [], aggregationRule={"clusterRoleSelectors": list(selectors)})


MONITORING = {"matchLabels": {"monitoring": "true"}}


def test_union_in_selector_then_name_order_without_duplicates() -> None:
    role = aggregated("monitoring", MONITORING, {"matchLabels": {"apps": "true"}})
    roles = [
        role,
        cluster_role("b", [LIST_PODS, GET_PODS], {"monitoring": "true"}),
        cluster_role("a", [GET_PODS], {"monitoring": "true"}),
        cluster_role("c", [GET_DEPLOY], {"apps": "true"}),
        cluster_role("d", [GET_DEPLOY], {"other": "true"}),
    ]
    assert aggregated_rules(role, roles) == [GET_PODS, LIST_PODS, GET_DEPLOY]


def test_a_role_never_aggregates_itself() -> None:
    role = aggregated("self", MONITORING, rules=[GET_PODS])
    role["metadata"]["labels"] = {"monitoring": "true"}
    assert aggregated_rules(role, [role]) == []


class FakeClient:
    def __init__(self) -> None:
        self.replaced: list[Obj] = []

    async def replace(self, resource: Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        assert resource is CLUSTERROLES
        self.replaced.append(copy.deepcopy(obj))
        return obj


def test_sync_writes_only_changes_and_any_role_change_requeues_aggregated_ones() -> None:
    async def scenario() -> None:
        client = FakeClient()
        informers = InformerFactory(cast(ApiClient, client))
        controller = ClusterRoleAggregationController(cast(ApiClient, client), informers)
        roles = informers.informer(CLUSTERROLES)
        roles.apply("ADDED", aggregated("monitoring", MONITORING))
        roles.apply("ADDED", cluster_role("plain", [GET_DEPLOY]))
        roles.apply("ADDED", cluster_role("pods", [GET_PODS], {"monitoring": "true"}))
        assert len(controller.queue) == 1  # only the aggregated role is a key
        await controller.sync("monitoring")
        assert [r["rules"] for r in client.replaced] == [[GET_PODS]]
        assert client.replaced[0]["metadata"]["resourceVersion"] == "1"  # compare-and-swap
        roles.apply("MODIFIED", aggregated("monitoring", MONITORING, rules=[GET_PODS]))
        await controller.sync("monitoring")
        assert len(client.replaced) == 1  # nothing changed: no write
        await controller.sync("plain")
        await controller.sync("gone")
        assert len(client.replaced) == 1

    asyncio.run(scenario())
