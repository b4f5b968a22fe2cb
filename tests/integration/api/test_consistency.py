"""Consistency: compare-and-swap updates, watches from compacted revisions, paginated snapshots."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration
NS = "consistency"
PODS = f"/api/v1/namespaces/{NS}/pods"


@pytest.fixture(scope="module")
def seeded(apiserver: ApiServer) -> Iterator[dict[str, Any]]:
    """Namespace ``consistency`` with an unscheduled pod ``web``."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    body = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    code, web = apiserver.request("POST", PODS, body)
    assert code == 201, web
    yield web
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def compact(apiserver: ApiServer, revision: int) -> None:
    """Compact etcd history up to ``revision`` through the first etcd the server uses."""
    argv = apiserver.process.argv
    etcd_url = argv[argv.index("--etcd-servers") + 1].split(",")[0]
    request = urllib.request.Request(  # noqa: S310 - loopback etcd
        f"{etcd_url}/v3/kv/compaction", data=b'{"revision": %d}' % revision, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310
        pass


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
    compact(apiserver, old + 2)
    code, status = apiserver.request("GET", f"{PODS}?watch=1&resourceVersion={old}")
    assert (code, status["reason"]) == (410, "Expired")
    assert "too old resource version" in status["message"]


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
        _, current = apiserver.request("GET", base)
        compact(apiserver, int(current["metadata"]["resourceVersion"]))
        code, status = apiserver.request("GET", f"{base}?limit=2&continue={first['metadata']['continue']}")
        assert (code, status["reason"]) == (410, "Expired")
        assert "continue parameter is too old" in status["message"]
    finally:
        apiserver.request("DELETE", "/api/v1/namespaces/pages")
