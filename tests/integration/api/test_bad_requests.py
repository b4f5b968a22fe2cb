"""Bad requests get the upstream status code, reason and message, and never a 500."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.conftest import BOB_TOKEN, ApiServer

pytestmark = pytest.mark.integration

NS = "bad"
PODS = f"/api/v1/namespaces/{NS}/pods"


def pod(name: str = "web", **spec: Any) -> dict[str, Any]:
    containers = [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "100m"}}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers, **spec},
    }


@pytest.fixture(scope="module")
def seeded(apiserver: ApiServer) -> Iterator[dict[str, Any]]:
    """Namespace ``bad`` with pod ``web`` (bound to a node) and a quota of 1 cpu."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    quota = {"metadata": {"name": "compute"}, "spec": {"hard": {"cpu": "1"}}}
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/resourcequotas", quota)[0] == 201
    code, web = apiserver.request("POST", PODS, pod())
    assert code == 201, web
    code, body = apiserver.request(
        "POST", f"{PODS}/web/binding", {"target": {"kind": "Node", "name": "esx-09"}}
    )
    assert code == 201, body
    yield web
    # The pod is bound to a node without an agent: confirm its deletion as the agent would.
    apiserver.request("DELETE", f"{PODS}/web?gracePeriodSeconds=0")
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def _with_rv(body: dict[str, Any], rv: str) -> dict[str, Any]:
    return {**body, "metadata": {**body["metadata"], "resourceVersion": rv}}


# (id, method, path, body, extra request options, code, reason, message fragment)
CASES: list[tuple[str, str, str, Any, dict[str, Any], int, str, str]] = [
    (
        "missing namespace",
        "GET",
        "/api/v1/namespaces/nope",
        None,
        {},
        404,
        "NotFound",
        'namespaces "nope" not found',
    ),
    (
        "unknown resource",
        "GET",
        "/api/v1/gizmos",
        None,
        {},
        404,
        "NotFound",
        "could not find the requested resource",
    ),
    ("unknown group", "GET", "/apis/nope.example.com/v1", None, {}, 404, "NotFound", "could not find"),
    ("unknown subresource", "GET", f"{PODS}/web/exec2", None, {}, 404, "NotFound", "could not find"),
    (
        "delete the default namespace",
        "DELETE",
        "/api/v1/namespaces/default",
        None,
        {},
        403,
        "Forbidden",
        'namespaces "default" is forbidden: this namespace may not be deleted',
    ),
    (
        "bad dryRun",
        "POST",
        f"{PODS}?dryRun=Some",
        pod("x"),
        {},
        400,
        "BadRequest",
        'Invalid value: "Some": supported values: "All"',
    ),
    (
        "bad timeoutSeconds",
        "GET",
        f"{PODS}?watch=1&timeoutSeconds=soon",
        None,
        {},
        400,
        "BadRequest",
        "timeoutSeconds must be an integer",
    ),
    ("negative limit", "GET", f"{PODS}?limit=-1", None, {}, 400, "BadRequest", "limit must not be negative"),
    (
        "garbage continue",
        "GET",
        f"{PODS}?limit=1&continue=%25%25",
        None,
        {},
        400,
        "BadRequest",
        "continue key is not valid",
    ),
    ("missing pod", "GET", f"{PODS}/ghost", None, {}, 404, "NotFound", 'pods "ghost" not found'),
    ("delete missing", "DELETE", f"{PODS}/ghost", None, {}, 404, "NotFound", 'pods "ghost" not found'),
    ("broken json", "POST", PODS, None, {"raw": b"{not json"}, 400, "BadRequest", "could not be decoded"),
    (
        "broken yaml",
        "POST",
        PODS,
        None,
        {"raw": b"a: [", "content_type": "application/yaml"},
        400,
        "BadRequest",
        "could not be decoded",
    ),
    ("wrong kind", "POST", PODS, {**pod(), "kind": "Node"}, {}, 400, "BadRequest", "does not match the kind"),
    (
        "wrong apiVersion",
        "POST",
        PODS,
        {**pod(), "apiVersion": "v2"},
        {},
        400,
        "BadRequest",
        "does not match the expected API version",
    ),
    (
        "namespace mismatch",
        "POST",
        PODS,
        {**pod("x"), "metadata": {"name": "x", "namespace": "other"}},
        {},
        400,
        "BadRequest",
        "does not match the namespace",
    ),
    (
        "no containers",
        "POST",
        PODS,
        {**pod("x"), "spec": {"containers": []}},
        {},
        422,
        "Invalid",
        'Pod "x" is invalid: spec.containers: Required value',
    ),
    (
        "no image",
        "POST",
        PODS,
        {**pod("x"), "spec": {"containers": [{"name": "c"}]}},
        {},
        422,
        "Invalid",
        "spec.containers[0].image: Required value",
    ),
    (
        "bad name",
        "POST",
        PODS,
        pod("Bad_Name"),
        {},
        422,
        "Invalid",
        'metadata.name: Invalid value: "Bad_Name"',
    ),
    (
        "bad quantity",
        "POST",
        PODS,
        {
            **pod("x"),
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "lots"}}}]},
        },
        {},
        422,
        "Invalid",
        "spec.containers[0].resources.requests[cpu]",
    ),
    ("duplicate", "POST", PODS, pod(), {}, 409, "AlreadyExists", 'pods "web" already exists'),
    (
        "POST to a name",
        "POST",
        f"{PODS}/web",
        pod(),
        {},
        405,
        "MethodNotAllowed",
        "does not allow this method",
    ),
    (
        "missing target namespace",
        "POST",
        "/api/v1/namespaces/missing/pods",
        pod(),
        {},
        404,
        "NotFound",
        'namespaces "missing" not found',
    ),
    (
        "apply patch type",
        "PATCH",
        f"{PODS}/web",
        {},
        {"content_type": "application/apply-patch+yaml"},
        415,
        "UnsupportedMediaType",
        "unknown format",
    ),
    (
        "empty patch",
        "PATCH",
        f"{PODS}/web",
        None,
        {"content_type": "application/merge-patch+json"},
        400,
        "BadRequest",
        "PATCH body is empty",
    ),
    (
        "failing json patch test",
        "PATCH",
        f"{PODS}/web",
        [{"op": "test", "path": "/metadata/name", "value": "x"}],
        {"content_type": "application/json-patch+json"},
        422,
        "Invalid",
        "test operation",
    ),
    (
        "strategic patch without merge key",
        "PATCH",
        f"{PODS}/web",
        {"spec": {"containers": [{"image": "x"}]}},
        {"content_type": "application/strategic-merge-patch+json"},
        400,
        "BadRequest",
        "merge key: name",
    ),
    (
        "immutable pod spec",
        "PATCH",
        f"{PODS}/web",
        {"spec": {"restartPolicy": "Never"}},
        {"content_type": "application/merge-patch+json"},
        422,
        "Invalid",
        "pod updates may not change fields",
    ),
    (
        "bad label selector",
        "GET",
        f"{PODS}?labelSelector=app%20in%20web",
        None,
        {},
        400,
        "BadRequest",
        "unable to parse requirement",
    ),
    (
        "bad field selector",
        "GET",
        f"{PODS}?fieldSelector=spec.hostname%3Dx",
        None,
        {},
        400,
        "BadRequest",
        "field label not supported: spec.hostname",
    ),
    (
        "bad watch resourceVersion",
        "GET",
        f"{PODS}?watch=1&resourceVersion=abc",
        None,
        {},
        400,
        "BadRequest",
        "invalid resource version",
    ),
    (
        "bad gracePeriodSeconds",
        "DELETE",
        f"{PODS}/web?gracePeriodSeconds=soon",
        None,
        {},
        400,
        "BadRequest",
        "gracePeriodSeconds must be an integer",
    ),
    ("no credentials", "GET", PODS, None, {"token": None}, 401, "Unauthorized", "Unauthorized"),
    ("unknown token", "GET", PODS, None, {"token": "not-a-token"}, 401, "Unauthorized", "Unauthorized"),
    (
        "forbidden create",
        "POST",
        PODS,
        pod("x"),
        {"token": BOB_TOKEN},
        403,
        "Forbidden",
        'pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the namespace "bad"',
    ),
    (
        "forbidden node list",
        "GET",
        "/api/v1/nodes",
        None,
        {"token": BOB_TOKEN},
        403,
        "Forbidden",
        'User "bob" cannot list resource "nodes" in API group "" at the cluster scope',
    ),
    (
        "quota exceeded",
        "POST",
        PODS,
        pod("big", containers=[{"name": "c", "image": "i", "resources": {"requests": {"cpu": "2"}}}]),
        {},
        403,
        "Forbidden",
        'pods "big" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=100m, limited: cpu=1',
    ),
    (
        "quota needs requests",
        "POST",
        PODS,
        pod("norequests", containers=[{"name": "c", "image": "i"}]),
        {},
        403,
        "Forbidden",
        "failed quota: compute: must specify cpu",
    ),
    (
        "binding twice",
        "POST",
        f"{PODS}/web/binding",
        {"target": {"kind": "Node", "name": "esx-02"}},
        {},
        409,
        "Conflict",
        'pod web is already assigned to node "esx-09"',
    ),
    (
        "binding without target",
        "POST",
        f"{PODS}/web/binding",
        {"target": {}},
        {},
        422,
        "Invalid",
        "target.name: Required value",
    ),
    ("pod logs", "GET", f"{PODS}/web/log", None, {}, 503, "ServiceUnavailable", "node agent"),
    (
        "rolebinding to unknown role",
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings",
        {
            "metadata": {"name": "rb"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "bob"}],
        },
        {},
        422,
        "Invalid",
        'roleRef.name: Unsupported value: "cluster-admin"',
    ),
    (
        "bad quota",
        "POST",
        f"/api/v1/namespaces/{NS}/resourcequotas",
        {"metadata": {"name": "q2"}, "spec": {"hard": {"cpu": "much"}}},
        {},
        422,
        "Invalid",
        "spec.hard[cpu]",
    ),
    (
        "protobuf of an unserved kind",
        "POST",
        PODS,
        None,
        {
            "raw": b"k8s\x00\n\t\n\x02v1\x12\x03Pod\x12\x00",
            "content_type": "application/vnd.kubernetes.protobuf",
        },
        415,
        "UnsupportedMediaType",
        "send it as application/json",
    ),
    (
        "unsupported body type",
        "POST",
        PODS,
        None,
        {"raw": b"<pod/>", "content_type": "application/xml"},
        415,
        "UnsupportedMediaType",
        "unknown format",
    ),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in CASES])
def test_bad_request(apiserver: ApiServer, seeded: dict[str, Any], case: tuple[Any, ...]) -> None:
    _name, method, path, body, options, code, reason, message = case
    got, status = apiserver.request(method, path, body, **options)
    assert (got, status.get("kind"), status.get("reason"), status.get("code")) == (
        code,
        "Status",
        reason,
        code,
    ), status
    assert message in status["message"]
    assert status["status"] == "Failure"


def test_stale_update_is_conflict(apiserver: ApiServer, seeded: dict[str, Any]) -> None:
    code, current = apiserver.request("GET", f"{PODS}/web")
    assert code == 200
    labelled = {**current, "metadata": {**current["metadata"], "labels": {"v": "1"}}}
    assert apiserver.request("PUT", f"{PODS}/web", labelled)[0] == 200
    stale = {**current, "metadata": {**current["metadata"], "labels": {"v": "2"}}}
    code, status = apiserver.request("PUT", f"{PODS}/web", stale)
    assert (code, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on pods "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    renamed = {**current, "metadata": {**current["metadata"], "name": "other", "resourceVersion": ""}}
    code, status = apiserver.request("PUT", f"{PODS}/web", renamed)
    assert (code, status["reason"]) == (400, "BadRequest")
    code, status = apiserver.request("DELETE", f"{PODS}/web", {"preconditions": {"uid": "not-the-uid"}})
    assert (code, status["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID in precondition: not-the-uid" in status["message"]


def test_watch_from_compacted_revision_is_410(apiserver: ApiServer, seeded: dict[str, Any]) -> None:
    code, listed = apiserver.request("GET", PODS)
    assert code == 200
    old = int(listed["metadata"]["resourceVersion"])
    for value in ("a", "b"):
        patch = {"metadata": {"labels": {"churn": value}}}
        assert (
            apiserver.request("PATCH", f"{PODS}/web", patch, content_type="application/merge-patch+json")[0]
            == 200
        )
    etcd_url = seeded_etcd_url(apiserver)
    request = urllib.request.Request(  # noqa: S310 - loopback etcd
        f"{etcd_url}/v3/kv/compaction", data=b'{"revision": %d}' % (old + 2), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310
        pass
    code, status = apiserver.request("GET", f"{PODS}?watch=1&resourceVersion={old}")
    assert (code, status["reason"]) == (410, "Expired")
    assert "too old resource version" in status["message"]


def seeded_etcd_url(apiserver: ApiServer) -> str:
    """The first etcd client URL the API server was started with (read from its command line)."""
    argv = apiserver.process.argv
    return argv[argv.index("--etcd-servers") + 1].split(",")[0]


def test_server_never_answered_500(apiserver: ApiServer, seeded: dict[str, Any]) -> None:
    log = apiserver.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Warning" not in log, log[-3000:]  # deprecations would break on the next aiohttp


def test_paginated_list_is_one_snapshot(apiserver: ApiServer) -> None:
    base = "/api/v1/namespaces/pages/events"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": "pages"}})[0] == 201
    try:
        for index in range(5):
            event = {"metadata": {"name": f"e{index}"}, "involvedObject": {"kind": "Pod", "name": "x"}}
            assert apiserver.request("POST", base, event)[0] == 201
        code, first = apiserver.request("GET", f"{base}?limit=2")
        assert code == 200
        assert [e["metadata"]["name"] for e in first["items"]] == ["e0", "e1"]
        token = first["metadata"]["continue"]
        late = {"metadata": {"name": "e2a"}, "involvedObject": {"kind": "Pod", "name": "x"}}
        assert apiserver.request("POST", base, late)[0] == 201  # after the snapshot: not in this list
        names, pages = [], 0
        while token:
            code, page = apiserver.request("GET", f"{base}?limit=2&continue={token}")
            assert code == 200, page
            assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            names += [e["metadata"]["name"] for e in page["items"]]
            token, pages = page["metadata"].get("continue", ""), pages + 1
        assert names == ["e2", "e3", "e4"]
        assert pages == 2
        code, status = apiserver.request("GET", f"{base}?limit=2&continue=bm90LWpzb24=")
        assert (code, status["reason"]) == (400, "BadRequest")
        etcd_url = seeded_etcd_url(apiserver)
        _, current = apiserver.request("GET", base)
        request = urllib.request.Request(  # noqa: S310 - loopback etcd
            f"{etcd_url}/v3/kv/compaction",
            data=b'{"revision": %d}' % int(current["metadata"]["resourceVersion"]),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass
        code, status = apiserver.request("GET", f"{base}?limit=2&continue={first['metadata']['continue']}")
        assert (code, status["reason"]) == (410, "Expired")
        assert "continue parameter is too old" in status["message"]
    finally:
        apiserver.request("DELETE", "/api/v1/namespaces/pages")
