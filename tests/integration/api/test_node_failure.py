"""A failed host, as upstream, against the real etcd and API server: the node lifecycle controller
and the NoExecute taint manager run in-process on a fake Node whose Lease stops being renewed.

The silent node gets unreachable:NoSchedule+NoExecute and its pods Ready=False; a pod without a
usable toleration is evicted at once, one tolerating for 2 s no sooner than 2 s after the taint's
timeAdded, one tolerating forever stays; when the Lease is renewed the taints go and a pending
eviction is cancelled (with upstream's Events).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller.leader import micro_time, parse_time
from nestlab.controller.nodelifecycle import NodeLifecycle
from nestlab.controller.podgc import PodGC
from nestlab.controller.taintmanager import TaintManager
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    ApiServer,
    EtcdMember,
    Pki,
    start_apiserver,
    wait_until,
)

pytestmark = pytest.mark.integration
NS = "evict"
NODE = "evict-1"
GC_NS = "evict-gc"
GC_NODE = "evict-2"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture(scope="module")
def server(
    pki: Pki, etcd_cluster: list[EtcdMember], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """An API server of its own, with zero default toleration seconds: a pod that does not tolerate
    the unreachable taint is evicted at once whether or not the server adds default tolerations."""
    directory = tmp_path_factory.mktemp("apiserver-evict")
    url, process, log = start_apiserver(
        pki,
        [m.client_url for m in etcd_cluster],
        directory,
        "--default-not-ready-toleration-seconds=0",
        "--default-unreachable-toleration-seconds=0",
    )
    try:
        yield ApiServer(url, pki, log, process)
    finally:
        process.stop()
    assert "Traceback" not in log.read_text()


class Controllers:
    """NodeLifecycle, TaintManager and PodGC passes every 0.2 s on their own thread and event loop."""

    def __init__(self, api: ApiServer, grace: int) -> None:
        self.api = api
        self.grace = grace
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        client = ApiClient(Credentials(self.api.url, self.api.pki.ca, ADMIN_TOKEN))
        passes = [
            NodeLifecycle(client, self.grace).pass_once,
            TaintManager(client).pass_once,
            PodGC(client).pass_once,
        ]
        try:
            while not self.stop.is_set():
                for one_pass in passes:
                    try:
                        await one_pass()
                    except Exception as exc:  # kept for the test to report
                        self.errors.append(exc)
                await asyncio.sleep(0.2)
        finally:
            await client.close()


@contextlib.contextmanager
def controllers_running(api: ApiServer, grace: int = 2) -> Iterator[Controllers]:
    """The controllers running in-process until the block ends; none of their passes may fail."""
    controllers = Controllers(api, grace)
    controllers.thread.start()
    try:
        yield controllers
    finally:
        controllers.stop.set()
        controllers.thread.join(timeout=30)
    assert not controllers.errors, controllers.errors


def pod(name: str, tolerations: list[dict[str, Any]], node: str = NODE) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "tolerations": tolerations,
        },
    }


def unreachable(seconds: int | None) -> list[dict[str, Any]]:
    toleration: dict[str, Any] = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        toleration["tolerationSeconds"] = seconds
    return [toleration]


@contextlib.contextmanager
def failing_node(api: ApiServer, ns: str, node: str) -> Iterator[ApiServer]:
    """A Ready node with a fresh Lease and four running, ready pods; all removed at the end."""
    try:
        assert api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
        code, created = api.request("POST", "/api/v1/nodes", {"metadata": {"name": node}})
        assert code == 201, created
        created["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
        assert api.request("PUT", f"/api/v1/nodes/{node}/status", created)[0] == 200
        lease = {
            "metadata": {"name": node},
            "spec": {"holderIdentity": node, "renewTime": micro_time(datetime.now(UTC))},
        }
        assert api.request("POST", LEASES, lease)[0] == 201
        for name, tolerations in (
            ("plain", []),
            ("patient", unreachable(2)),
            ("forever", unreachable(None)),
            ("slow", unreachable(3600)),
        ):
            code, body = api.request("POST", f"/api/v1/namespaces/{ns}/pods", pod(name, tolerations, node))
            assert code == 201, body
            running = {
                "status": {
                    "phase": "Running",
                    "conditions": [
                        {"type": "ContainersReady", "status": "True"},
                        {"type": "Ready", "status": "True"},
                    ],
                }
            }
            code, body = api.request(
                "PATCH",
                f"/api/v1/namespaces/{ns}/pods/{name}/status",
                running,
                content_type="application/merge-patch+json",
            )
            assert code == 200, body
        yield api
    finally:
        listed = api.request("GET", f"/api/v1/namespaces/{ns}/pods")[1]
        for item in listed.get("items", []) if isinstance(listed, dict) else []:
            api.request(
                "DELETE", f"/api/v1/namespaces/{ns}/pods/{item['metadata']['name']}?gracePeriodSeconds=0"
            )
        api.request("DELETE", f"/api/v1/namespaces/{ns}")
        api.request("DELETE", f"{LEASES}/{node}")
        api.request("DELETE", f"/api/v1/nodes/{node}")


def get_pod(api: ApiServer, name: str, ns: str = NS) -> dict[str, Any]:
    code, body = api.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert code == 200, body
    return dict(body)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj["status"].get("conditions") or [] if c["type"] == kind), {})


def taints(api: ApiServer, node: str = NODE) -> list[dict[str, Any]]:
    return list(api.request("GET", f"/api/v1/nodes/{node}")[1]["spec"].get("taints") or [])


def events(api: ApiServer, namespace: str, reason: str) -> list[str]:
    code, body = api.request("GET", f"/api/v1/namespaces/{namespace}/events")
    assert code == 200, body
    return [e["message"] for e in body["items"] if e["reason"] == reason]


def test_failed_host_taints_marks_and_evicts(server: ApiServer) -> None:
    with failing_node(server, NS, NODE) as api, controllers_running(api):
        wait_until(
            lambda: (
                {(t["key"], t["effect"]) for t in taints(api)}
                == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
            ),
            "the unreachable NoSchedule and NoExecute taints",
            timeout=60,
        )
        node = api.request("GET", f"/api/v1/nodes/{NODE}")[1]
        ready = condition(node, "Ready")
        assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
        added = parse_time(next(t for t in taints(api) if t["effect"] == "NoExecute")["timeAdded"])

        wait_until(
            lambda: "deletionTimestamp" in get_pod(api, "plain")["metadata"], "plain evicted", timeout=60
        )
        wait_until(
            lambda: "deletionTimestamp" in get_pod(api, "patient")["metadata"], "patient evicted", timeout=60
        )
        patient = get_pod(api, "patient")
        disruption = condition(patient, "DisruptionTarget")
        assert (disruption["status"], disruption["reason"]) == ("True", "DeletionByTaintManager")
        # Never before its 2 s toleration had run out (timestamps have whole seconds).
        assert parse_time(disruption["lastTransitionTime"]) >= added + timedelta(seconds=2)
        assert condition(get_pod(api, "plain"), "DisruptionTarget")["reason"] == "DeletionByTaintManager"
        marked = events(api, NS, "TaintManagerEviction")
        assert f"Marking for deletion Pod {NS}/plain" in marked
        assert f"Marking for deletion Pod {NS}/patient" in marked

        for name in ("forever", "slow"):  # evaluated in the pass that evicted patient: they stay
            staying = get_pod(api, name)
            assert "deletionTimestamp" not in staying["metadata"], name
        wait_until(
            lambda: all(
                condition(get_pod(api, n), "Ready")["status"] == "False" for n in ("forever", "slow")
            ),
            "Ready=False on the pods of the silent node",
            timeout=60,
        )
        assert condition(get_pod(api, "forever"), "ContainersReady")["status"] == "True"  # the kubelet's
        assert any(
            f"Node {NODE} status is now: NodeNotReady" == m for m in events(api, "default", "NodeNotReady")
        )

        code, current = api.request("GET", f"{LEASES}/{NODE}")
        assert code == 200, current
        current["spec"]["renewTime"] = micro_time(
            datetime.now(UTC) + timedelta(hours=1)
        )  # heartbeats are back
        assert api.request("PUT", f"{LEASES}/{NODE}", current)[0] == 200
        wait_until(lambda: not taints(api), "the taints removed", timeout=60)
        wait_until(
            lambda: f"Cancelling deletion of Pod {NS}/slow" in events(api, NS, "TaintManagerEviction"),
            "the pending eviction of slow cancelled",
            timeout=60,
        )
        assert "deletionTimestamp" not in get_pod(api, "slow")["metadata"]
        assert "deletionTimestamp" not in get_pod(api, "forever")["metadata"]


def gone(api: ApiServer, name: str, ns: str) -> bool:
    return api.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}")[0] == 404


def test_evicted_pods_stay_terminating_until_the_host_is_declared_out_of_service(server: ApiServer) -> None:
    """Upstream: no agent confirms the deletion, so the pod stays Terminating (a StatefulSet cannot
    reuse its name); the out-of-service taint (non-graceful node shutdown) lets PodGC force-delete."""
    with failing_node(server, GC_NS, GC_NODE) as api, controllers_running(api):
        wait_until(
            lambda: "deletionTimestamp" in get_pod(api, "plain", GC_NS)["metadata"],
            "plain evicted",
            timeout=60,
        )
        wait_until(
            lambda: "deletionTimestamp" in get_pod(api, "patient", GC_NS)["metadata"],
            "patient evicted",
            timeout=60,
        )
        # Several passes later the evicted pods are still there, Terminating, as upstream.
        wait_until(
            lambda: condition(get_pod(api, "slow", GC_NS), "Ready").get("status") == "False",
            "Ready=False on slow",
            timeout=60,
        )
        assert not gone(api, "plain", GC_NS)

        code, node = api.request("GET", f"/api/v1/nodes/{GC_NODE}")
        assert code == 200, node
        node["spec"]["taints"] = [
            *node["spec"]["taints"],
            {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"},
        ]
        assert api.request("PUT", f"/api/v1/nodes/{GC_NODE}", node)[0] == 200
        # Every pod goes: the terminating ones by PodGC, the others evicted by the new NoExecute
        # taint (which they do not tolerate) and then collected.
        for name in ("plain", "patient", "forever", "slow"):
            wait_until(lambda n=name: gone(api, n, GC_NS), f"{name} force-deleted", timeout=60)
