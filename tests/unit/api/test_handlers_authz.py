"""The handlers impersonate right after authentication, authorize paths and note audit facts."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nestlab.api import auditfacts, auth, bootstraproles
from nestlab.api import resources as r
from nestlab.api.authn import Authenticator, StaticTokens
from nestlab.api.handlers import Handlers
from nestlab.api.registry import Registry
from nestlab.api.server import status_errors
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

ROOT = auth.User("root", frozenset({"system:masters", "system:authenticated"}))
BOB = auth.User("bob", frozenset({"system:authenticated"}))
TOKENS = {"root-token": ROOT, "bob-token": BOB}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def scenario(body: Callable[[TestClient[Any, Any], list[auditfacts.AuditFacts]], Awaitable[None]]) -> None:
    async def main() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        for role in bootstraproles.cluster_roles():
            await store.create(r.CLUSTERROLES, "", copy.deepcopy(role))
        for binding in bootstraproles.cluster_role_bindings():
            await store.create(r.CLUSTERROLEBINDINGS, "", copy.deepcopy(binding))
        await store.create(r.NAMESPACES, "", {"metadata": {"name": "team-a"}})
        handlers = Handlers(Registry(store), Authenticator([StaticTokens(TOKENS)]))
        noted: list[auditfacts.AuditFacts] = []

        @web.middleware
        async def keep(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            finally:
                noted.append(auditfacts.facts(request))

        app = web.Application(middlewares=[keep, status_errors])
        app.add_routes(handlers.routes())
        async with TestClient(TestServer(app)) as client:
            await body(client, noted)

    asyncio.run(main())


def headers(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def test_impersonated_requests_and_their_audit_facts() -> None:
    async def body(client: TestClient[Any, Any], noted: list[auditfacts.AuditFacts]) -> None:
        as_alice = headers("root-token", **{"Impersonate-User": "alice"})
        answer = await client.get("/api/v1/namespaces/team-a/pods", headers=as_alice)
        assert answer.status == 403
        assert (await answer.json())["message"] == (
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "team-a"'
        )
        facts = noted[-1]
        assert facts.user == ROOT
        assert facts.impersonated == auth.User("alice", frozenset({"system:authenticated"}))
        assert (facts.verb, facts.resource, facts.namespace) == ("list", "pods", "team-a")
        assert facts.annotations == {
            "authorization.k8s.io/decision": "forbid",
            "authorization.k8s.io/reason": "",
        }

        refused = await client.get(
            "/api/v1/namespaces/team-a/pods", headers=headers("bob-token", **{"Impersonate-User": "alice"})
        )
        assert refused.status == 403
        assert (await refused.json())["message"].startswith(
            'users "alice" is forbidden: User "bob" cannot impersonate'
        )

        review = {"spec": {"resourceAttributes": {"namespace": "team-a", "verb": "list", "resource": "pods"}}}
        asked = await client.post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review, headers=as_alice
        )
        assert asked.status == 201
        assert (await asked.json())["status"] == {"allowed": False}  # what alice would meet
        assert noted[-1].request_object == review
        assert noted[-1].annotations["authorization.k8s.io/decision"] == "allow"
        assert (
            noted[-1]
            .annotations["authorization.k8s.io/reason"]
            .startswith('RBAC: allowed by ClusterRoleBinding "system:basic-user"')
        )

        discovery = await client.get("/apis", headers=headers("bob-token"))
        assert discovery.status == 200  # system:discovery, bound to system:authenticated
        groups_only = await client.get("/apis", headers=headers("root-token", **{"Impersonate-Group": "x"}))
        assert groups_only.status == 400

    scenario(body)
