"""The authorizer decides from RBAC objects (cache, then etcd for a denial); reviews ask it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nestlab.api import auth, bootstraproles, reviews
from nestlab.api import resources as r
from nestlab.api.access import Authorizer, attributes
from nestlab.api.handlers import Target
from nestlab.api.rbacrules import Attributes
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

CAROL = auth.User("carol", frozenset({"devs", "system:authenticated"}))
ADMIN = auth.User("root", frozenset({"nestlab:admins"}))
MASTER = auth.User("kube", frozenset({"system:masters"}))
NODE = auth.User("system:node:esx-01", frozenset({"system:nodes", "system:authenticated"}))


async def bootstrapped() -> Store:
    """A store holding the built-in ClusterRoles and ClusterRoleBindings."""
    store = Store(FakeEtcd())  # type: ignore[arg-type]
    for role in bootstraproles.cluster_roles():
        await store.create(r.CLUSTERROLES, "", copy.deepcopy(role))
    for binding in bootstraproles.cluster_role_bindings():
        await store.create(r.CLUSTERROLEBINDINGS, "", copy.deepcopy(binding))
    return store


def binding(name: str, role: str, subject: dict[str, str], kind: str = "ClusterRole") -> dict[str, Any]:
    return {"metadata": {"name": name}, "roleRef": {"kind": kind, "name": role}, "subjects": [subject]}


def run(scenario: Callable[[Authorizer, Store], Awaitable[None]], *, cached: bool) -> None:
    async def main() -> None:
        store = await bootstrapped()
        authorizer = Authorizer(store)
        if cached:
            authorizer.start()
            assert await authorizer.cache.wait_synced(5)
        try:
            await scenario(authorizer, store)
        finally:
            await authorizer.stop()

    asyncio.run(main())


def review(**attributes: str) -> dict[str, Any]:
    return {"spec": {"resourceAttributes": attributes}}


async def ssar(authorizer: Authorizer, user: auth.User, body: Any) -> dict[str, Any]:
    answer = await reviews.answer(authorizer, r.ACCESS_REVIEWS, user, "", body)
    status: dict[str, Any] = answer["status"]
    return status


@pytest.mark.parametrize("cached", [False, True])
def test_rolebindings_grant_their_role_in_their_namespace(cached: bool) -> None:
    async def scenario(authorizer: Authorizer, store: Store) -> None:
        asked = review(namespace="team", verb="create", resource="pods")
        assert await ssar(authorizer, CAROL, asked) == {"allowed": False}
        await store.create(r.ROLEBINDINGS, "team", binding("b", "edit", {"kind": "Group", "name": "devs"}))
        # a denial is re-checked against etcd: the binding counts at once, cached or not
        assert await ssar(authorizer, CAROL, asked) == {
            "allowed": True,
            "reason": 'RBAC: allowed by RoleBinding "b/team" of ClusterRole "edit" to Group "devs"',
        }
        other = review(namespace="other", verb="create", resource="pods")
        assert (await ssar(authorizer, CAROL, other))["allowed"] is False
        cluster = review(namespace="team", verb="list", resource="nodes")  # namespace ignored: cluster scope
        assert (await ssar(authorizer, CAROL, cluster))["allowed"] is False
        with pytest.raises(ApiError) as forbidden:
            await authorizer.check(CAROL, "list", r.NODES, namespace="team", name="")
        assert forbidden.value.message.endswith("at the cluster scope")
        assert await authorizer.allowed(CAROL, "get", r.NAMESPACES, namespace="", name="team")  # its own
        assert not await authorizer.allowed(CAROL, "delete", r.NAMESPACES, namespace="", name="team")
        assert not await authorizer.allowed(CAROL, "create", r.ROLEBINDINGS, namespace="team", name="")

    run(scenario, cached=cached)


def test_custom_role_with_subresources_and_names() -> None:
    async def scenario(authorizer: Authorizer, store: Store) -> None:
        role = {
            "metadata": {"name": "logs"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"], "verbs": ["get"]},
            ],
        }
        await store.create(r.ROLES, "team", role)
        await store.create(
            r.ROLEBINDINGS, "team", binding("l", "logs", {"kind": "User", "name": "carol"}, "Role")
        )
        can = authorizer.allowed
        assert await can(CAROL, "get", r.PODS, namespace="team", name="web", subresource="log")
        assert not await can(CAROL, "get", r.PODS, namespace="team", name="web")
        assert await can(CAROL, "get", r.CONFIGMAPS, namespace="team", name="app")
        assert not await can(CAROL, "get", r.CONFIGMAPS, namespace="team", name="other")
        assert not await can(CAROL, "list", r.CONFIGMAPS, namespace="team", name="")
        rules = await authorizer.rules_for(CAROL, "team")
        assert any("pods/log" in rule.resources for rule in rules)

    run(scenario, cached=True)


def test_hard_wired_groups_nodes_and_paths() -> None:
    async def scenario(authorizer: Authorizer, store: Store) -> None:
        del store
        anything = Attributes("delete", "apps", "deployments", namespace="x", name="y")
        assert await authorizer.allowed_attrs(ADMIN, anything) == (True, "")
        assert await authorizer.allowed_attrs(MASTER, anything) == (True, "")
        assert (await authorizer.rules_for(MASTER, "x"))[0].verbs == {"*"}
        assert await authorizer.allowed(NODE, "update", r.PODS, namespace="x", name="p", subresource="status")
        assert not await authorizer.allowed(NODE, "create", r.PODS, namespace="x", name="")
        discovery = Attributes("get", path="/apis/apps/v1")
        allowed, reason = await authorizer.allowed_attrs(CAROL, discovery)
        assert allowed
        assert (
            reason
            == 'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated"'
        )
        with pytest.raises(ApiError) as refused:
            await authorizer.check_attrs(CAROL, Attributes("get", path="/metrics"))
        assert refused.value.message == 'forbidden: User "carol" cannot get path "/metrics"'
        registry = Attributes("get", "registry.nestlab.dev", "images", namespace="team")
        assert not (await authorizer.allowed_attrs(CAROL, registry))[0]

    run(scenario, cached=True)


def test_reviews_validate_as_upstream() -> None:
    async def scenario(authorizer: Authorizer, store: Store) -> None:
        await store.create(r.ROLEBINDINGS, "team", binding("v", "view", {"kind": "User", "name": "dave"}))
        sar = {
            "spec": {
                "user": "dave",
                "resourceAttributes": {"namespace": "team", "verb": "list", "resource": "pods"},
            }
        }
        answer = await reviews.answer(authorizer, r.SUBJECT_ACCESS_REVIEWS, ADMIN, "", sar)
        assert answer["kind"] == "SubjectAccessReview"
        assert answer["status"]["allowed"] is True
        nobody = {"spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}}}
        with pytest.raises(ApiError) as no_user:
            await reviews.answer(authorizer, r.SUBJECT_ACCESS_REVIEWS, ADMIN, "", nobody)
        assert no_user.value.code == 422
        assert (
            'spec.user: Invalid value: "": at least one of user or group must be specified'
            in no_user.value.message
        )
        local = await reviews.answer(authorizer, r.LOCAL_SUBJECT_ACCESS_REVIEWS, ADMIN, "team", sar)
        assert local["metadata"] == {"namespace": "team"}
        assert local["status"]["allowed"] is True
        with pytest.raises(ApiError) as elsewhere:
            await reviews.answer(authorizer, r.LOCAL_SUBJECT_ACCESS_REVIEWS, ADMIN, "other", sar)
        assert 'spec.resourceAttributes.namespace: Invalid value: "team": must match metadata.namespace' in (
            elsewhere.value.message
        )
        with pytest.raises(ApiError) as moved:
            await reviews.answer(
                authorizer,
                r.LOCAL_SUBJECT_ACCESS_REVIEWS,
                ADMIN,
                "team",
                {**sar, "metadata": {"namespace": "x"}},
            )
        assert moved.value.code == 400
        paths = {"spec": {"user": "dave", "nonResourceAttributes": {"path": "/api", "verb": "get"}}}
        with pytest.raises(ApiError) as disallowed:
            await reviews.answer(authorizer, r.LOCAL_SUBJECT_ACCESS_REVIEWS, ADMIN, "team", paths)
        assert "disallowed on this kind of request" in disallowed.value.message
        with pytest.raises(ApiError) as empty:
            await ssar(authorizer, CAROL, {"spec": {}})
        assert empty.value.code == 422
        assert "exactly one of nonResourceAttributes or resourceAttributes" in empty.value.message
        rules = await reviews.answer(
            authorizer, r.SELF_SUBJECT_RULES_REVIEWS, auth.User("dave"), "", {"spec": {"namespace": "team"}}
        )
        found = rules["status"]
        assert found["incomplete"] is False
        assert any(
            "pods" in rule.get("resources", []) and "list" in rule["verbs"] for rule in found["resourceRules"]
        )
        assert found["nonResourceRules"] == []  # dave has no groups here: system:discovery is not his

    run(scenario, cached=True)


def test_attributes_of_requests() -> None:
    assert attributes("get", r.NAMESPACES, namespace="", name="team").namespace == "team"
    assert attributes("list", r.NODES, namespace="team", name="").namespace == ""
    assert attributes("get", r.DEPLOYMENTS, namespace="t", name="d", subresource="scale").group == "apps"


def test_node_restriction() -> None:
    async def scenario() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        authorizer = Authorizer(store)
        node = auth.User("system:node:esx-01", frozenset({"system:nodes"}))
        await authorizer.restrict_node(
            node, "create", Target(r.NODES, "", "", ""), {"metadata": {"name": "esx-01"}}
        )
        with pytest.raises(ApiError) as other:
            await authorizer.restrict_node(node, "update", Target(r.NODES, "", "esx-02", "status"), {})
        assert other.value.message.endswith('node "esx-01" is not allowed to modify node "esx-02"')
        anonymous_node = auth.User("agent", frozenset({"system:nodes"}))
        with pytest.raises(ApiError) as unnamed:
            await authorizer.restrict_node(anonymous_node, "update", Target(r.NODES, "", "agent", ""), {})
        assert 'node users must be named "system:node:<node name>"' in unnamed.value.message
        await authorizer.restrict_node(node, "list", Target(r.NODES, "", "", ""), None)  # reads are free

    asyncio.run(scenario())


class CountingStore(Store):
    """Counts lists: each one is a read of etcd the cache was meant to spare."""

    lists = 0

    async def list(self, resource: r.Resource, namespace: str, predicate: Any) -> tuple[list[Any], int]:
        CountingStore.lists += 1
        return await super().list(resource, namespace, predicate)


def test_a_denial_is_confirmed_without_reading_objects_when_etcd_says_nothing_changed() -> None:
    async def main() -> None:
        etcd = FakeEtcd()
        store = CountingStore(etcd)  # type: ignore[arg-type]

        async def unchanged_since(ranges: Any) -> bool:
            return all(
                kv.mod_revision <= revision
                for prefix, revision in ranges.items()
                for key, kv in etcd.data.items()
                if key.startswith(prefix)
            )

        authorizer = Authorizer(store, unchanged_since)
        authorizer.start()
        try:
            assert await authorizer.cache.wait_synced(5)
            asked = Attributes("create", "", "pods", namespace="team")
            before = CountingStore.lists
            assert await authorizer.allowed_attrs(CAROL, asked) == (False, "")
            assert CountingStore.lists == before  # answered by one etcd compare, no list
            for task in authorizer.cache._tasks:  # freeze the cache: it lags behind etcd from here on
                task.cancel()
            await asyncio.sleep(0)
            role = {
                "metadata": {"name": "maker"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}],
            }
            await store.create(r.CLUSTERROLES, "", role)
            await store.create(
                r.ROLEBINDINGS, "team", binding("b", "maker", {"kind": "User", "name": "carol"})
            )
            assert authorizer.cache.index.grants(CAROL, "team") == []  # the cache has not seen it
            before = CountingStore.lists
            allowed, reason = await authorizer.allowed_attrs(CAROL, asked)
            assert reason == 'RBAC: allowed by RoleBinding "b/team" of ClusterRole "maker" to User "carol"'
            assert allowed
            assert CountingStore.lists > before  # etcd said "changed": the objects were read again
        finally:
            await authorizer.stop()

    asyncio.run(main())
