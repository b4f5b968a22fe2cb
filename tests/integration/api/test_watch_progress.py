"""A quiet watch's bookmarks follow etcd's progress (real etcd with progress notifications).

A client watching a kind nobody writes used to get bookmarks at the revision it started from; once
etcd compacted that revision away, its resume cost a 410 and a full list. Now the API server's
bookmarks carry how far etcd says the watch has seen.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer

pytestmark = pytest.mark.integration
QUIET, BUSY = "progress-quiet", "progress-busy"
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def namespaces(apiserver: ApiServer) -> Iterator[None]:
    for name in (QUIET, BUSY):
        assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    yield
    for name in (QUIET, BUSY):
        apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def test_bookmarks_of_a_quiet_watch_reach_a_later_write_elsewhere(
    apiserver: ApiServer, namespaces: None
) -> None:
    code, listed = apiserver.request("GET", f"/api/v1/namespaces/{QUIET}/configmaps")
    assert code == 200
    start = int(listed["metadata"]["resourceVersion"])
    path = f"/api/v1/namespaces/{QUIET}/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion={start}"
    request = urllib.request.Request(apiserver.url + path)  # noqa: S310 - the test's own server
    request.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
    with urllib.request.urlopen(request, context=apiserver.context(), timeout=20) as stream:  # noqa: S310
        code, made = apiserver.request(
            "POST", f"/api/v1/namespaces/{BUSY}/configmaps", {"metadata": {"name": "x"}}
        )
        assert code == 201, made
        written = int(made["metadata"]["resourceVersion"])
        seen: list[str] = []
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            event = json.loads(stream.readline())
            assert event["type"] == "BOOKMARK", event  # nothing happens in the quiet namespace
            seen.append(event["object"]["metadata"]["resourceVersion"])
            if int(seen[-1]) >= written:
                break
        assert int(seen[-1]) >= written, f"bookmarks stayed below {written}: {seen}"
        assert all(int(rv) >= start for rv in seen), seen  # never before the watch's start
