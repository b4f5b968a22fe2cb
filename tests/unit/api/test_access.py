"""SelfSubjectAccessReview answers with the same rules the request path enforces."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import auth
from nestlab.api import resources as r
from nestlab.api.access import Authorizer
from nestlab.api.handlers import Target
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

CAROL = auth.User("carol", frozenset({"devs", "system:authenticated"}))
ADMIN = auth.User("root", frozenset({"nestlab:admins"}))


def review(**attributes: str) -> dict[str, Any]:
    return {"spec": {"resourceAttributes": attributes}}


def test_review_follows_rolebindings() -> None:
    async def scenario() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        authorizer = Authorizer(store)
        asked = review(namespace="team", verb="create", resource="pods")
        assert (await authorizer.review(CAROL, asked))["status"] == {"allowed": False}
        binding = {
            "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "Group", "name": "devs"}],
        }
        await store.create(r.ROLEBINDINGS, "team", binding)
        assert (await authorizer.review(CAROL, asked))["status"]["allowed"] is True
        cluster = review(namespace="team", verb="list", resource="nodes")  # namespace ignored: cluster scope
        assert (await authorizer.review(CAROL, cluster))["status"]["allowed"] is False
        unknown = review(verb="create", resource="deployments", group="apps")
        assert (await authorizer.review(CAROL, unknown))["status"]["allowed"] is False
        assert (await authorizer.review(ADMIN, unknown))["status"]["allowed"] is True
        with pytest.raises(ApiError) as forbidden:
            await authorizer.check(CAROL, "list", r.NODES, namespace="team", name="")
        assert forbidden.value.message.endswith("at the cluster scope")
        discovery = {"spec": {"nonResourceAttributes": {"path": "/apis", "verb": "get"}}}
        assert (await authorizer.review(CAROL, discovery))["status"]["allowed"] is True
        with pytest.raises(ApiError) as empty:
            await authorizer.review(CAROL, {"spec": {}})
        assert empty.value.code == 422

    asyncio.run(scenario())


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
