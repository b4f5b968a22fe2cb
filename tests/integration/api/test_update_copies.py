"""Two real API servers over one real etcd: updates start from each server's own copy, and a copy
the other server made stale never loses an update nor decides an answer (nestlab.api.store)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.conftest import ApiServer, EtcdMember, Pki, service_account_apiserver

pytestmark = pytest.mark.integration
NS = "copies"
PODS = f"/api/v1/namespaces/{NS}/pods"
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def second(pki: Pki, etcd_cluster: list[EtcdMember], apiserver: ApiServer) -> Iterator[ApiServer]:
    """Another API server on the same etcd, and the namespace both use (removed after)."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    try:
        with service_account_apiserver(pki, etcd_cluster, "copies-") as server:
            yield server
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def bind(server: ApiServer, name: str, node: str) -> tuple[int, Any]:
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"name": node}}
    return server.request("POST", f"{PODS}/{name}/binding", body)


def patch(server: ApiServer, name: str, labels: dict[str, str]) -> tuple[int, Any]:
    return server.request("PATCH", f"{PODS}/{name}", {"metadata": {"labels": labels}}, content_type=MERGE)


def test_a_copy_made_stale_by_the_other_server_loses_no_update(
    apiserver: ApiServer, second: ApiServer
) -> None:
    assert apiserver.request("POST", PODS, pod("kept"))[0] == 201
    assert second.request("GET", f"{PODS}/kept")[0] == 200  # the second server's copy
    assert patch(apiserver, "kept", {"by": "first"})[0] == 200  # ... now stale there
    code, answer = bind(second, "kept", "esx-01")
    assert code == 201, answer
    code, stored = apiserver.request("GET", f"{PODS}/kept")
    assert code == 200
    assert stored["metadata"]["labels"] == {"by": "first"}
    assert stored["spec"]["nodeName"] == "esx-01"


def test_a_stale_copy_decides_no_answer(apiserver: ApiServer, second: ApiServer) -> None:
    # (pods are created through the first server: the second admits service accounts, which
    # this namespace has none of)
    assert apiserver.request("POST", PODS, pod("again"))[0] == 201
    assert bind(second, "again", "esx-01")[0] == 201  # the second server's copy: bound
    code, _ = apiserver.request("DELETE", f"{PODS}/again", {"gracePeriodSeconds": 0})
    assert code == 200
    assert apiserver.request("POST", PODS, pod("again"))[0] == 201  # same name, not bound
    code, answer = bind(second, "again", "esx-02")
    assert code == 201, answer  # not "already assigned", which the stale copy said
    code, refused = bind(apiserver, "again", "esx-03")
    assert code == 409, refused
    assert 'already assigned to node "esx-02"' in refused["message"]

    assert apiserver.request("POST", PODS, pod("labels"))[0] == 201
    assert patch(second, "labels", {"tier": "one"})[0] == 200  # second's copy says tier=one
    code, moved = patch(apiserver, "labels", {"tier": "two"})
    assert code == 200
    code, back = patch(second, "labels", {"tier": "one"})  # no change on its copy; a change in etcd
    assert code == 200
    assert int(back["metadata"]["resourceVersion"]) > int(moved["metadata"]["resourceVersion"])
    assert apiserver.request("GET", f"{PODS}/labels")[1]["metadata"]["labels"] == {"tier": "one"}
