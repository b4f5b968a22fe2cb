"""Lab behaviour a learner trips over, against the real API server (issues 15/16).

- A namespace deleted and created again at once survives the old namespace's sweepers, on this
  server and on a second one sharing the etcd cluster (each received the delete, as a kubectl
  retry or a second client would send it).
- A second pod delete with a shorter grace period shortens the running one (upstream).
- ``--field-selector spec.unschedulable=false`` lists nodes that leave the field unset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.api import encryption
from tests.integration.api.conftest import (
    ENCRYPTION_KEY,
    ENCRYPTION_KEY_NAME,
    ApiServer,
    EtcdMember,
    start_apiserver,
)

pytestmark = pytest.mark.integration
NS = "hfix-recreate"
SWEEP_WINDOW_S = 3.0  # several sweep passes (0.5 s each) of any sweeper left from the old namespace


@pytest.fixture
def second_apiserver(
    apiserver: ApiServer, etcd_cluster: list[EtcdMember], tmp_path: Path
) -> Iterator[ApiServer]:
    """Another API server on the same etcd cluster (a lab has one per control-plane node)."""
    at_rest = tmp_path / "encryption-config.yaml"
    at_rest.write_text(encryption.render(ENCRYPTION_KEY_NAME, ENCRYPTION_KEY))
    url, process, log = start_apiserver(
        apiserver.pki,
        [m.client_url for m in etcd_cluster],
        tmp_path,
        "--encryption-provider-config",
        str(at_rest),
    )
    try:
        yield ApiServer(url, apiserver.pki, log, process)
    finally:
        process.stop()
    assert "Traceback" not in log.read_text()


def config_map(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


def test_recreated_namespace_survives_the_old_ones_sweepers(
    apiserver: ApiServer, second_apiserver: ApiServer
) -> None:
    maps = f"/api/v1/namespaces/{NS}/configmaps"
    try:
        assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
        assert apiserver.request("POST", maps, config_map("old"))[0] == 201
        assert apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")[0] == 200
        assert second_apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")[0] == 200
        deadline = time.monotonic() + 30
        while apiserver.request("GET", f"/api/v1/namespaces/{NS}")[0] != 404:
            assert time.monotonic() < deadline, "the old namespace was never removed"
        code, new = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        assert code == 201, new
        assert apiserver.request("POST", maps, config_map("new"))[0] == 201
        # absence of harm can only be watched for a while: every check in the window must hold
        window_end = time.monotonic() + SWEEP_WINDOW_S
        while time.monotonic() < window_end:
            for server in (apiserver, second_apiserver):
                code, ns = server.request("GET", f"/api/v1/namespaces/{NS}")
                assert code == 200, f"the new namespace was removed: {ns}"
                assert ns["metadata"]["uid"] == new["metadata"]["uid"]
                assert not ns["metadata"].get("deletionTimestamp")
                code, listed = server.request("GET", maps)
                assert [i["metadata"]["name"] for i in listed["items"]] == ["new"]
            time.sleep(0.1)
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def test_second_delete_with_a_shorter_grace_period_wins(apiserver: ApiServer) -> None:
    ns = "hfix-grace"
    pods = f"/api/v1/namespaces/{ns}/pods"
    pod = {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        code, body = apiserver.request("POST", pods, pod)
        assert code == 201, body
        binding = {"target": {"kind": "Node", "name": "esx-07"}}
        assert apiserver.request("POST", f"{pods}/web/binding", binding)[0] == 201
        code, first = apiserver.request("DELETE", f"{pods}/web")
        assert code == 200, first
        assert first["metadata"]["deletionGracePeriodSeconds"] == 30
        code, longer = apiserver.request("DELETE", f"{pods}/web", {"gracePeriodSeconds": 60})
        assert code == 200, longer
        assert longer["metadata"]["deletionGracePeriodSeconds"] == 30
        code, shorter = apiserver.request("DELETE", f"{pods}/web?gracePeriodSeconds=1")
        assert code == 200, shorter
        assert shorter["metadata"]["deletionGracePeriodSeconds"] == 1
        assert shorter["metadata"]["deletionTimestamp"] < first["metadata"]["deletionTimestamp"]
        assert apiserver.request("GET", f"{pods}/web")[1]["metadata"]["deletionGracePeriodSeconds"] == 1
    finally:
        apiserver.request("DELETE", f"{pods}/web?gracePeriodSeconds=0")  # no agent here to confirm it
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


def test_nodes_without_unschedulable_match_unschedulable_false(apiserver: ApiServer) -> None:
    names = ("hfix-node-unset", "hfix-node-cordoned")
    try:
        assert apiserver.request("POST", "/api/v1/nodes", {"metadata": {"name": names[0]}})[0] == 201
        cordoned = {"metadata": {"name": names[1]}, "spec": {"unschedulable": True}}
        assert apiserver.request("POST", "/api/v1/nodes", cordoned)[0] == 201
        for value, expected in (("false", names[0]), ("true", names[1])):
            code, listed = apiserver.request(
                "GET", f"/api/v1/nodes?fieldSelector=spec.unschedulable%3D{value}"
            )
            assert code == 200, listed
            assert [i["metadata"]["name"] for i in listed["items"] if i["metadata"]["name"] in names] == [
                expected
            ]
    finally:
        for name in names:
            apiserver.request("DELETE", f"/api/v1/nodes/{name}")
