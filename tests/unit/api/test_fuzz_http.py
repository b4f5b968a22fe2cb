"""Fuzz whole requests through the real handlers (on a fake etcd): never a 500, always a Status.

Each example is one request: a method, a resource path (collection, object, subresource), a
content type, query parameters (limit, timeoutSeconds, resourceVersion, gracePeriodSeconds,
fieldManager, fieldValidation, dryRun, selectors, propagationPolicy) and a body built from
object-shaped fragments and hostile tokens. The patch bodies (JSON patch, merge, strategic,
apply) reach the patch code with a real object to patch. Whatever the request, the answer is
either a success or a 4xx Status whose ``code`` matches the HTTP status, without a traceback.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import assume, given
from hypothesis import strategies as st

from nestlab.api import auth, bootstraproles
from nestlab.api import resources as r
from nestlab.api.audit import Auditor
from nestlab.api.audit import middleware as audit_middleware
from nestlab.api.auditlog import AuditLog, RotatingFile
from nestlab.api.auditpolicy import parse
from nestlab.api.authn import Authenticator, StaticTokens
from nestlab.api.handlers import Handlers
from nestlab.api.registry import Registry
from nestlab.api.server import status_errors
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd
from tests.unit.api.fuzz_settings import fuzz

ROOT = auth.User("root", frozenset({"system:masters", "system:authenticated"}))
HEADERS = {"Authorization": "Bearer root-token"}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
PATHS = [
    "/api/v1/namespaces/fz/pods",
    "/api/v1/namespaces/fz/pods/web",
    "/api/v1/namespaces/fz/pods/web/status",
    "/api/v1/namespaces/fz/pods/web/binding",
    "/api/v1/namespaces/fz/pods/web/eviction",
    "/api/v1/namespaces/fz/configmaps",
    "/api/v1/namespaces/fz/configmaps/cm",
    "/apis/apps/v1/namespaces/fz/deployments/d/scale",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    "/api/v1/namespaces",
    "/api/v1/namespaces/fz/pods/%00",
    "/api/v1/namespaces/fz/pods/web/exec2",
    "/apis/nope/v1/things",
]
TYPES = ["application/json", "application/yaml", "application/json-patch+json",
         "application/merge-patch+json", "application/strategic-merge-patch+json",
         "application/apply-patch+yaml", "application/vnd.kubernetes.protobuf", "text/plain",
         "application/xml", "multipart/form-data"]  # fmt: skip
FRAGMENTS = [json.dumps(POD), json.dumps({"metadata": {"name": "cm"}, "data": {"k": "v"}}),
             '[{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]',
             '[{"op": "remove", "path": "/spec/containers/0"}]', '[{"op": "move", "from": "/x", "path": "/"}]',
             '[{"op": "test", "path": "/metadata/name", "value": 1}]', '[1, "a", null]', '{"spec": null}',
             '{"metadata": {"labels": {"a": null}}}', '{"spec": {"containers": [{"$patch": "delete"}]}}',
             '{"spec": {"$setElementOrder/containers": [{"name": 1}]}}', '{"spec": {"replicas": "3"}}',
             '{"target": {"kind": "Node", "name": 5}}', '{"spec": {"resourceAttributes": 7}}',
             '{"gracePeriodSeconds": 99999999999999}', '{"dryRun": "All"}', '{"propagationPolicy": 3}',
             "[" * 200, "1e400", "NaN", '"\\ud800"', "\xff", "9" * 40, '{"a": 1, "a": 2}', "{", "",
             "a: b\n", "- 1\n", "&a [*a]", "!!binary aGk=", "null", "true", "[]", "{}"]  # fmt: skip
QUERY_KEYS = ["limit", "timeoutSeconds", "resourceVersion", "gracePeriodSeconds", "fieldManager",
              "fieldValidation", "dryRun", "labelSelector", "fieldSelector", "propagationPolicy",
              "watch", "continue", "force", "orphanDependents"]  # fmt: skip
QUERY_VALUES = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "abc", "9" * 30, "1e3", " 5", "١٢", "All", "Strict", "Bogus",
                     "a=b", "a in (", "x" * 200, "Orphan", "\x00", "true", "maybe", "metadata.name=web"]),
    st.text(max_size=12),
)  # fmt: skip


class Client:
    """One test server on a fake etcd, driven from synchronous hypothesis examples."""

    def __init__(self, auditor: Auditor | None = None) -> None:
        self.runner = asyncio.Runner()
        self.auditor = auditor or Auditor()
        self.client: TestClient[Any, Any] = self.runner.run(self._start())

    async def _start(self) -> TestClient[Any, Any]:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        for role in bootstraproles.cluster_roles():
            await store.create(r.CLUSTERROLES, "", copy.deepcopy(role))
        await store.create(r.NAMESPACES, "", {"metadata": {"name": "fz"}})
        handlers = Handlers(Registry(store), Authenticator([StaticTokens({"root-token": ROOT})]))
        app = web.Application(
            middlewares=[audit_middleware(self.auditor), status_errors], client_max_size=3 * 1024 * 1024
        )
        self.auditor.install(app)
        app.add_routes(handlers.routes())
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    def request(self, method: str, path: str, **options: Any) -> tuple[int, bytes]:
        async def send() -> tuple[int, bytes]:
            headers = {**HEADERS, **options.pop("headers", {})}
            async with self.client.request(method, path, headers=headers, **options) as answer:
                if answer.headers.get("Content-Type", "").startswith("application/json"):
                    return answer.status, await answer.read()
                return answer.status, b""

        return self.runner.run(send())

    def warnings(self, method: str, path: str, **options: Any) -> tuple[int, list[str]]:
        """The status and the Warning headers of one request."""

        async def send() -> tuple[int, list[str]]:
            async with self.client.request(method, path, headers=HEADERS, **options) as answer:
                return answer.status, answer.headers.getall("Warning", [])

        return self.runner.run(send())

    def close(self) -> None:
        self.runner.run(self.client.close())
        self.runner.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Client]:
    client = Client()
    try:
        status, body = client.request("POST", PATHS[0], json=POD)
        assert status == 201, body
        yield client
    finally:
        client.close()


def check(status: int, body: bytes) -> None:
    assert status != 500, body
    assert b"Traceback" not in body
    if status >= 400 and body:  # every refusal is a Status
        answer = json.loads(body)
        assert (answer["kind"], answer["code"]) == ("Status", status), answer
        assert answer["message"]
        assert "\n" not in answer["message"]


@fuzz(250)
@given(
    request=st.tuples(
        st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET"]),
        st.sampled_from(PATHS),
        st.sampled_from(TYPES),
        st.lists(st.sampled_from(FRAGMENTS), min_size=0, max_size=2).map("".join),
    ),
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), QUERY_VALUES, max_size=3),
)
def test_requests(server: Client, request: tuple[str, str, str, str], query: dict[str, str]) -> None:
    method, path, kind, body = request
    assume(not (method == "DELETE" and path == "/api/v1/namespaces"))  # would delete the namespace
    if method == "GET" and query.get("watch") in ("1", "true"):
        query["timeoutSeconds"] = "0"  # a watch that would stay open is not what is fuzzed here
    raw = body.encode("utf-8", "surrogatepass")
    status, answer = server.request(method, path, data=raw, params=query, headers={"Content-Type": kind})
    check(status, answer)


def test_last_resort_is_a_status_without_traceback() -> None:
    """An unexpected exception is a 500 Status naming its type only; aiohttp's own refusals
    (an oversized body) are Status objects too."""

    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("secret detail\nTraceback (most recent call last):")

    async def reads(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="read")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 512

    async def main() -> None:
        app = web.Application(middlewares=[status_errors], client_max_size=1024)
        app.add_routes([web.get("/broken", broken), web.post("/reads", reads)])
        async with TestClient(TestServer(app)) as client:
            answer = await client.get("/broken")
            body = await answer.json()
            assert (answer.status, body["kind"], body["code"], body["reason"]) == (
                500,
                "Status",
                500,
                "InternalError",
            )
            assert "secret" not in body["message"]
            assert "Traceback" not in body["message"]
            answer = await client.post("/reads", data=chunks())  # chunked: no Content-Length to check
            body = await answer.json()
            assert (answer.status, body["reason"]) == (413, "RequestEntityTooLarge")

    asyncio.run(main())


def test_duplicate_keys_warn_by_default(server: Client) -> None:
    """Upstream's default (fieldValidation=Warn): accepted, the last value kept, a Warning header."""
    body = b'{"metadata": {"name": "dup", "name": "dup"}, "data": {"k": "1", "k": "2"}}'
    code, warnings = server.warnings("POST", "/api/v1/namespaces/fz/configmaps", data=body)
    assert code == 201
    assert warnings == ['299 - "duplicate field \\"metadata.name\\""', '299 - "duplicate field \\"data.k\\""']
    _code, stored = server.request("GET", "/api/v1/namespaces/fz/configmaps/dup")
    assert json.loads(stored)["data"] == {"k": "2"}
    ignored = server.warnings("POST", "/api/v1/namespaces/fz/configmaps?fieldValidation=Ignore",
                              data=body.replace(b'"dup"', b'"dup2"'))  # fmt: skip
    assert ignored == (201, [])


def test_audited_hostile_bodies(tmp_path: Path) -> None:
    """With an audit policy, a refused hostile body is logged with its 4xx, and the audit's own
    look at the body (it re-reads refused ones) does not fail on it either."""
    policy = parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n")
    log = tmp_path / "audit.log"
    client = Client(Auditor(policy, AuditLog(RotatingFile(log))))
    try:
        for body, code in (
            (b"[" * 100_000, 400),
            (b'{"a": "\\ud800"}', 400),
            (io.BytesIO(b"x" * (4 << 20)), 413),
        ):
            status, answer = client.request(
                "POST", PATHS[0], data=body, headers={"Content-Type": "application/json"}
            )
            check(status, answer)
            assert status == code
    finally:
        client.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    codes = [e["responseStatus"]["code"] for e in events if e["stage"] == "ResponseComplete"]
    assert codes[-3:] == [400, 400, 413]
