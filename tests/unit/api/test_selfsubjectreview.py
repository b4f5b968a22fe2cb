"""SelfSubjectReview (``kubectl auth whoami``): the caller's user info, impersonation applied, for
every authenticated user; create only, v1 only, protobuf bodies as kubectl 1.33 sends them."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nestlab.api import auth, bootstraproles, discovery, kinds, openapi, protobuf, reviews
from nestlab.api import resources as r
from nestlab.api.authn import Authenticator, StaticTokens
from nestlab.api.handlers import Handlers
from nestlab.api.kinds import selfsubjectreview
from nestlab.api.rbacrules import Attributes, allows, rules_of
from nestlab.api.registry import Registry
from nestlab.api.server import status_errors
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

ROOT = auth.User("root", frozenset({"system:masters", "system:authenticated"}), uid="1")
BOB = auth.User("bob", frozenset({"system:authenticated"}))
ACCOUNT = auth.User(
    "system:serviceaccount:team-a:web",
    frozenset({"system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"}),
    uid="6f1c",
    extra={
        "authentication.kubernetes.io/pod-uid": ("p-uid",),
        "authentication.kubernetes.io/pod-name": ("web-0",),
    },
)
TOKENS = {"root-token": ROOT, "bob-token": BOB, "sa-token": ACCOUNT}
PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
# `kubectl.1.33 auth whoami`, recorded: a protobuf SelfSubjectReview with empty metadata and status.
KUBECTL_133_BODY = (
    b"k8s\x00\n-\n\x18authentication.k8s.io/v1\x12\x11SelfSubjectReview\x12\x1a\n\x10\n\x00\x12\x00"
    b'\x1a\x00"\x00*\x002\x008\x00B\x00\x12\x06\n\x04\n\x00\x12\x00\x1a\x00"\x00'
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def test_the_unit_is_create_only_and_cluster_scoped() -> None:
    unit = kinds.by_plural("authentication.k8s.io", "selfsubjectreviews")
    assert unit is selfsubjectreview.KIND
    resource = unit.resource
    assert (resource.kind, resource.group_version, resource.namespaced) == (
        "SelfSubjectReview",
        "authentication.k8s.io/v1",
        False,
    )
    assert resource.verbs == ("create",)
    assert not resource.stored
    assert r.find("authentication.k8s.io", "v1beta1", "selfsubjectreviews") is None  # off upstream in 1.30


def test_discovery_lists_it_with_the_create_verb_only() -> None:
    assert discovery.api_group("authentication.k8s.io") == {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "authentication.k8s.io",
        "versions": [{"groupVersion": "authentication.k8s.io/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "authentication.k8s.io/v1", "version": "v1"},
    }
    listing = discovery.resource_list("authentication.k8s.io", "v1")
    assert listing is not None
    assert listing["resources"] == [
        {
            "name": "selfsubjectreviews",
            "singularName": "selfsubjectreview",
            "namespaced": False,
            "kind": "SelfSubjectReview",
            "verbs": ["create"],
        }
    ]
    document = openapi.v3_document("apis/authentication.k8s.io/v1")
    assert document is not None
    assert "V1SelfSubjectReview" in document["components"]["schemas"]


def test_user_info_of_an_account_token_and_of_a_plain_user() -> None:
    assert reviews.user_info(ACCOUNT) == {
        "username": "system:serviceaccount:team-a:web",
        "uid": "6f1c",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"],
        "extra": {
            "authentication.kubernetes.io/pod-name": ["web-0"],
            "authentication.kubernetes.io/pod-uid": ["p-uid"],
        },
    }
    # upstream's omitempty: no uid, no extra
    assert reviews.user_info(BOB) == {"username": "bob", "groups": ["system:authenticated"]}
    cert = auth.User("carol", frozenset({"system:authenticated", "zeta", "alpha"}))
    assert reviews.user_info(cert)["groups"] == ["alpha", "zeta", "system:authenticated"]


def test_answer_ignores_what_the_body_says() -> None:
    body = {
        "metadata": {"name": "x", "namespace": "y", "labels": {"a": "b"}},
        "status": {"userInfo": {"username": "mallory", "groups": ["system:masters"]}},
    }
    answer = asyncio.run(reviews.answer(None, selfsubjectreview.RESOURCE, BOB, "", body))  # type: ignore[arg-type]
    assert answer["kind"] == "SelfSubjectReview"
    assert answer["apiVersion"] == "authentication.k8s.io/v1"
    assert list(answer["metadata"]) == ["creationTimestamp"]
    assert TIMESTAMP.fullmatch(answer["metadata"]["creationTimestamp"])
    assert answer["status"] == {"userInfo": {"username": "bob", "groups": ["system:authenticated"]}}
    assert "spec" not in answer


def test_kubectl_protobuf_body_decodes() -> None:
    assert protobuf.decode(KUBECTL_133_BODY) == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {},
    }


def test_system_basic_user_may_create_it() -> None:
    (basic,) = [
        role for role in bootstraproles.cluster_roles() if role["metadata"]["name"] == "system:basic-user"
    ]
    rules = rules_of(basic)
    assert allows(rules, Attributes("create", "authentication.k8s.io", "selfsubjectreviews"))
    assert not allows(rules, Attributes("get", "authentication.k8s.io", "selfsubjectreviews"))


def scenario(body: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        for role in bootstraproles.cluster_roles():
            await store.create(r.CLUSTERROLES, "", copy.deepcopy(role))
        for binding in bootstraproles.cluster_role_bindings():
            await store.create(r.CLUSTERROLEBINDINGS, "", copy.deepcopy(binding))
        handlers = Handlers(Registry(store), Authenticator([StaticTokens(TOKENS)]))
        app = web.Application(middlewares=[status_errors])
        app.add_routes(handlers.routes())
        async with TestClient(TestServer(app)) as client:
            await body(client)

    asyncio.run(main())


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def test_every_authenticated_user_learns_who_they_are() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        answer = await client.post(PATH, json=review, headers=bearer("bob-token"))
        assert answer.status == 201, await answer.text()
        assert (await answer.json())["status"] == {
            "userInfo": {"username": "bob", "groups": ["system:authenticated"]}
        }
        answer = await client.post(PATH, json=review, headers=bearer("sa-token"))
        assert answer.status == 201, await answer.text()
        info = (await answer.json())["status"]["userInfo"]
        assert (info["uid"], info["extra"]["authentication.kubernetes.io/pod-name"]) == ("6f1c", ["web-0"])
        answer = await client.post(
            PATH,
            data=KUBECTL_133_BODY,
            headers=bearer("root-token", **{"Content-Type": protobuf.MEDIA_TYPE}),
        )
        assert answer.status == 201, await answer.text()
        assert (await answer.json())["status"]["userInfo"] == {
            "username": "root",
            "uid": "1",
            "groups": ["system:masters", "system:authenticated"],
        }
        anonymous = await client.post(PATH, json=review)
        assert anonymous.status == 401  # no anonymous requests: upstream with --anonymous-auth=false

    scenario(body)


def test_impersonation_shows_the_impersonated_user() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        as_alice = bearer(
            "root-token",
            **{
                "Impersonate-User": "alice",
                "Impersonate-Group": "g",
                "Impersonate-Uid": "a-1",
                "Impersonate-Extra-Scopes": "view",
            },
        )
        answer = await client.post(PATH, json={}, headers=as_alice)
        assert answer.status == 201, await answer.text()
        assert (await answer.json())["status"]["userInfo"] == {
            "username": "alice",
            "uid": "a-1",
            "groups": ["g", "system:authenticated"],
            "extra": {"scopes": ["view"]},
        }

    scenario(body)


def test_other_verbs_are_not_allowed() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        for method, path in (
            ("GET", PATH),
            ("GET", f"{PATH}/x"),
            ("PUT", f"{PATH}/x"),
            ("PATCH", f"{PATH}/x"),
            ("DELETE", f"{PATH}/x"),
            ("DELETE", PATH),
        ):
            answer = await client.request(method, path, json={}, headers=bearer("root-token"))
            assert answer.status == 405, (method, path, await answer.text())
            status = await answer.json()
            assert (status["kind"], status["reason"]) == ("Status", "MethodNotAllowed")
        older = await client.post(
            "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews", json={}, headers=bearer("root-token")
        )
        assert older.status == 404  # kubectl 1.27 asks v1beta1, then v1alpha1: not served (upstream 1.30)

    scenario(body)
