"""The audit middleware and Event shape, in-process: facts noted by handlers, facts derived from the
URL, Status bodies, sensitive resources capped at Metadata, streams' ResponseStarted, Audit-Id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nestlab.api import auditfacts, auth, status
from nestlab.api.audit import AUDIT_ID_HEADER, Auditor, middleware, source_ips
from nestlab.api.auditevent import Facts, Target, decide, event, request_info, user_info
from nestlab.api.auditlog import AuditLog, RotatingFile
from nestlab.api.auditpolicy import Level, parse
from nestlab.api.meta import json_response
from nestlab.api.server import status_errors

EVERYTHING = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: {level}\n"
ALICE = auth.User("alice", frozenset({"devs"}))
BOB = auth.User("bob", frozenset({"nestlab:admins"}))


async def create_pod(request: web.Request) -> web.Response:
    body = await request.json()
    noted = auditfacts.facts(request)
    noted.user, noted.verb, noted.resource, noted.version = ALICE, "create", "pods", "v1"
    noted.namespace, noted.request_object = request.match_info["ns"], body
    noted.annotations.update(
        {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC"}
    )
    return json_response({**body, "metadata": {**body["metadata"], "managedFields": [{"m": 1}]}}, 201)


async def forbidden(request: web.Request) -> web.Response:
    auth.CURRENT_USER.set(ALICE)  # the handlers set it; nothing else is noted: derived from the URL
    raise status.forbidden("alice", "delete", "secrets", "", namespace="team-a", name="s")


async def secret(request: web.Request) -> web.Response:
    auth.CURRENT_USER.set(ALICE)
    return json_response({"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}, 201)


async def watch(request: web.Request) -> web.StreamResponse:
    noted = auditfacts.facts(request)
    noted.user, noted.impersonated = BOB, ALICE
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b'{"type":"ADDED"}\n')
    return response


async def unauthorized(request: web.Request) -> web.Response:
    raise status.unauthorized()


def _app(auditor: Auditor) -> web.Application:
    app = web.Application(middlewares=[middleware(auditor), status_errors])
    auditor.install(app)
    app.router.add_post("/api/v1/namespaces/{ns}/pods", create_pod)
    app.router.add_delete("/api/v1/namespaces/team-a/secrets/s", forbidden)
    app.router.add_post("/api/v1/namespaces/team-a/secrets", secret)
    app.router.add_get("/api/v1/namespaces/team-a/pods", watch)
    app.router.add_get("/api/v1/nodes", unauthorized)
    return app


def _run(
    tmp_path: Path, level: str, scenario: Callable[[TestClient[Any, Any]], Awaitable[None]]
) -> list[dict[str, Any]]:
    path = tmp_path / "audit.log"
    auditor = Auditor(parse(EVERYTHING.format(level=level)), AuditLog(RotatingFile(path)))

    async def main() -> None:
        async with TestClient(TestServer(_app(auditor))) as client:
            await scenario(client)

    asyncio.run(main())
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_create_is_logged_as_upstream(tmp_path: Path) -> None:
    ids = []

    async def scenario(client: TestClient[Any, Any]) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}
        async with client.post("/api/v1/namespaces/team-a/pods?fieldManager=kubectl", json=pod) as answer:
            assert answer.status == 201
            ids.append(answer.headers[AUDIT_ID_HEADER])

    events = _run(tmp_path, "RequestResponse", scenario)
    stages = [e["stage"] for e in events]
    assert stages == ["RequestReceived", "ResponseComplete"]
    done = events[-1]
    assert list(done)[:4] == ["kind", "apiVersion", "level", "auditID"]
    assert done["kind"] == "Event"
    assert done["apiVersion"] == "audit.k8s.io/v1"
    assert done["auditID"] == ids[0]
    assert uuid.UUID(ids[0]).version == 4
    assert done["requestURI"] == "/api/v1/namespaces/team-a/pods?fieldManager=kubectl"
    assert done["verb"] == "create"
    assert done["user"] == {"username": "alice", "groups": ["devs", "system:authenticated"]}
    assert done["sourceIPs"] == ["127.0.0.1"]
    assert done["objectRef"] == {"resource": "pods", "namespace": "team-a", "name": "web", "apiVersion": "v1"}
    assert done["responseStatus"] == {"metadata": {}, "code": 201}
    assert done["requestObject"]["metadata"]["name"] == "web"
    assert done["responseObject"]["metadata"]["managedFields"] == [{"m": 1}]
    assert done["annotations"]["authorization.k8s.io/decision"] == "allow"
    received = datetime.strptime(done["requestReceivedTimestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=UTC
    )
    completed = datetime.strptime(done["stageTimestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert received <= completed
    assert "responseStatus" not in events[0]


def test_a_403_derived_from_the_url_carries_the_status(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        async with client.delete("/api/v1/namespaces/team-a/secrets/s") as answer:
            assert answer.status == 403
            assert answer.headers[AUDIT_ID_HEADER]

    events = _run(tmp_path, "RequestResponse", scenario)
    done = events[-1]
    assert done["level"] == "Metadata"  # secrets: never above Metadata
    assert done["verb"] == "delete"
    assert done["user"]["username"] == "alice"
    assert done["objectRef"] == {
        "resource": "secrets",
        "namespace": "team-a",
        "name": "s",
        "apiVersion": "v1",
    }
    assert done["responseStatus"]["code"] == 403
    assert done["responseStatus"]["status"] == "Failure"
    assert done["responseStatus"]["reason"] == "Forbidden"
    assert done["responseStatus"]["message"].startswith(
        'secrets "s" is forbidden: User "alice" cannot delete'
    )
    assert done["annotations"] == {
        "authorization.k8s.io/decision": "forbid",
        "authorization.k8s.io/reason": "",
    }
    assert "responseObject" not in done


def test_secrets_never_show_their_data(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        body = {"kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}}
        async with client.post("/api/v1/namespaces/team-a/secrets", json=body) as answer:
            assert answer.status == 201

    events = _run(tmp_path, "RequestResponse", scenario)
    text = json.dumps(events)
    assert "aHVudGVyMg" not in text
    assert events[-1]["objectRef"]["name"] == "db"  # the name comes from the body, the body is not kept


def test_a_watch_logs_response_started_and_impersonation(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        async with client.get("/api/v1/namespaces/team-a/pods?watch=true") as answer:
            assert answer.headers[AUDIT_ID_HEADER]
            assert await answer.read() == b'{"type":"ADDED"}\n'

    events = _run(tmp_path, "Metadata", scenario)
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert {e["verb"] for e in events} == {"watch"}
    assert events[1]["responseStatus"] == {"metadata": {}, "code": 200}
    assert events[-1]["user"]["username"] == "bob"
    assert events[-1]["impersonatedUser"]["username"] == "alice"
    assert len({e["auditID"] for e in events}) == 1


def test_level_none_and_omitted_stages_write_nothing(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        pod = {"metadata": {"name": "web"}}
        async with client.post("/api/v1/namespaces/team-a/pods", json=pod) as answer:
            assert answer.status == 201

    assert _run(tmp_path, "None", scenario) == []


def test_without_a_policy_nothing_is_logged_but_every_answer_has_an_audit_id(tmp_path: Path) -> None:
    async def main() -> None:
        async with TestClient(TestServer(_app(Auditor()))) as client:
            async with client.delete("/api/v1/namespaces/team-a/secrets/s") as answer:
                assert answer.status == 403
                assert uuid.UUID(answer.headers[AUDIT_ID_HEADER])
            async with client.get("/nowhere") as answer:
                assert answer.status == 404
                assert answer.headers[AUDIT_ID_HEADER]

    asyncio.run(main())
    assert list(tmp_path.iterdir()) == []


def test_request_info_as_upstream() -> None:
    assert request_info("GET", "/api/v1/namespaces/a/pods/b/log") == Target(
        True, "get", "", "v1", "pods", "log", "a", "b"
    )
    assert request_info("GET", "/api/v1/namespaces/a") == Target(
        True, "get", "", "v1", "namespaces", "", "a", "a"
    )
    assert request_info("PUT", "/api/v1/namespaces/a/finalize").subresource == "finalize"
    assert request_info("GET", "/apis/apps/v1/deployments", watch=True).verb == "watch"
    assert request_info("DELETE", "/apis/apps/v1/namespaces/a/deployments").verb == "deletecollection"
    assert request_info("PATCH", "/apis/rbac.authorization.k8s.io/v1/clusterroles/x").group == (
        "rbac.authorization.k8s.io"
    )
    assert request_info("GET", "/readyz") == Target(verb="get")
    assert request_info("POST", "/nestlab/v1/login") == Target(verb="post")
    assert request_info("GET", "/apis/apps") == Target(verb="get")


def test_login_route_capped_and_managed_fields_omitted() -> None:
    policy = parse(EVERYTHING.format(level="RequestResponse") + "omitManagedFields: true\n")
    when = datetime(2026, 12, 5, 23, 10, tzinfo=UTC)
    login = Facts(
        "id", when, "/nestlab/v1/login", "/nestlab/v1/login", request_info("POST", "/nestlab/v1/login")
    )
    assert decide(policy, login).level is Level.METADATA
    users_target = Target(True, "create", "identity.nestlab.dev", "v1", "users")
    users = Facts("id", when, "/nestlab/v1/users", "/nestlab/v1/users", users_target, user=ALICE)
    assert decide(policy, users).level is Level.METADATA
    token = request_info("POST", "/api/v1/namespaces/a/serviceaccounts/default/token")
    assert decide(policy, Facts("id", when, "/x", "/api/v1/x", token, user=ALICE)).level is Level.METADATA
    pod = Facts(
        "id",
        when,
        "/api/v1/namespaces/a/pods",
        "/api/v1/namespaces/a/pods",
        request_info("POST", "/api/v1/namespaces/a/pods"),
        user=ALICE,
        request_object={"metadata": {"name": "p", "managedFields": [1]}},
    )
    decision = decide(policy, pod)
    built = event(
        pod,
        decision,
        "ResponseComplete",
        when,
        code=201,
        response_body={"items": [{"metadata": {"managedFields": [1]}}]},
    )
    assert built["requestObject"] == {"metadata": {"name": "p"}}
    assert built["responseObject"] == {"items": [{"metadata": {}}]}


def test_source_ips_as_upstream() -> None:
    headers = {"X-Forwarded-For": "10.0.0.1, 10.0.0.2", "X-Real-Ip": "10.0.0.2"}
    assert source_ips(headers, "127.0.0.1") == ("10.0.0.1", "10.0.0.2", "127.0.0.1")
    assert source_ips({}, None) == ()


def test_a_refused_authentication_is_one_response_started_event_as_upstream(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        async with client.get("/api/v1/nodes", headers={"Authorization": "Bearer forged"}) as answer:
            assert answer.status == 401
        async with client.get("/api/v1/nodes") as answer:
            assert answer.status == 401

    events = _run(tmp_path, "Metadata", scenario)
    assert [e["stage"] for e in events] == ["ResponseStarted", "ResponseStarted"]
    assert events[0]["user"] == {}
    assert events[0]["verb"] == "list"
    assert events[0]["objectRef"] == {"resource": "nodes", "apiVersion": "v1"}
    assert events[0]["responseStatus"] == {
        "metadata": {},
        "message": "Authentication failed, attempted: bearer",
        "code": 401,
    }
    assert events[1]["responseStatus"]["message"] == "Authentication failed, no credentials provided"
    assert "annotations" not in events[0]


def test_user_info_carries_uid_and_extra_as_upstream() -> None:
    account = auth.User(
        "system:serviceaccount:team-a:default",
        frozenset({"system:serviceaccounts", "system:authenticated"}),
        uid="sa-uid",
        extra={"authentication.kubernetes.io/pod-uid": ("p-uid",), "a/b": ("x", "y")},
    )
    assert list(user_info(account)) == ["username", "uid", "groups", "extra"]
    assert user_info(account)["uid"] == "sa-uid"
    assert user_info(account)["extra"] == {
        "a/b": ["x", "y"],
        "authentication.kubernetes.io/pod-uid": ["p-uid"],
    }
    assert user_info(ALICE) == {"username": "alice", "groups": ["devs", "system:authenticated"]}
    facts = Facts("id", datetime.now(UTC), "/api/v1/pods", "/api/v1/pods", Target(), BOB, account)
    decision = decide(parse(EVERYTHING.format(level="Metadata")), facts)
    body = event(facts, decision, "ResponseComplete", datetime.now(UTC), code=200)
    assert body["impersonatedUser"]["extra"]["authentication.kubernetes.io/pod-uid"] == ["p-uid"]
