"""Learner trip-ups (issue 15, session 9) against the REAL etcd + nestlab-apiserver.

- Maintenance mode blocked by a budget explains "needs 3 and has 3"; the API's 429 keeps
  upstream's words byte for byte.
- A host that is unreachable gets no attestation-failed taint when the verifier records its silence.
- A host that comes back gets a ``NodeReady`` Event from the node lifecycle controller.
- ``kubectl exec`` to a pod on a host that is gone answers with ``error dialing backend`` at once
  (Node marked unreachable) or after the short dial timeout (host stopped a moment ago: still Ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nestlab.api import podstreams
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import NODES
from nestlab.controller import attestation
from nestlab.controller.leader import micro_time
from nestlab.controller.nodelifecycle import NodeLifecycle
from nestlab.controller.verifier import Verifier, VerifierSettings
from nestlab.maintenance import MaintenanceTimeoutError, evacuate
from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, write_kubeconfig

pytestmark = pytest.mark.integration
NS = "trips9"
HOST = "trip-esx-1"
Obj = dict[str, Any]
KUBECTL = next(
    (p for p in (Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33"), Path("/usr/bin/kubectl")) if p.exists()),
    None,
)
UNREACHABLE_BOTH = [
    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "2026-12-06T05:00:00Z"},
    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-12-06T05:00:00Z"},
]


def ok(answer: tuple[int, Any], *codes: int) -> Any:
    code, body = answer
    assert code in (codes or (200, 201)), body
    return body


def set_node(
    server: ApiServer, ready: str, taints: list[Obj] | None = None, port: int = 10250, name: str = HOST
) -> None:
    node = ok(server.request("GET", f"/api/v1/nodes/{name}"))
    node.setdefault("spec", {})["taints"] = taints or []
    node = ok(server.request("PUT", f"/api/v1/nodes/{name}", node))
    node["status"] = {
        "conditions": [
            {"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "Kubelet stopped posting node status."}
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
    }  # fmt: skip
    ok(server.request("PUT", f"/api/v1/nodes/{name}/status", node))


@pytest.fixture(scope="module")
def lab(apiserver: ApiServer) -> Iterator[ApiServer]:
    """A namespace and one fake host; removed at the end (the session's API server is shared)."""
    try:
        ok(apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}}), 201, 409)
        ok(apiserver.request("POST", "/api/v1/nodes", {"metadata": {"name": HOST}}), 201, 409)
        set_node(apiserver, "True")
        yield apiserver
    finally:
        pods = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]
        for item in pods.get("items", []) if isinstance(pods, dict) else []:
            name = item["metadata"]["name"]
            apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")
        apiserver.request("DELETE", f"/api/v1/nodes/{HOST}")
        apiserver.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{HOST}")


def client_of(server: ApiServer) -> ApiClient:
    return ApiClient(Credentials(server.url, server.pki.ca, ADMIN_TOKEN))


def running_pod(server: ApiServer, name: str, *, ready: bool = True) -> None:
    pod = {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": HOST, "containers": [{"name": "main", "image": "busybox:1.36"}]},
    }
    created = ok(server.request("POST", f"/api/v1/namespaces/{NS}/pods", pod))
    created["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    ok(server.request("PUT", f"/api/v1/namespaces/{NS}/pods/{name}/status", created))


def test_a_blocked_maintenance_explains_the_budget(lab: ApiServer) -> None:
    for index in range(3):
        running_pod(lab, f"web-{index}")
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
    }
    path = f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets"
    created = ok(lab.request("POST", path, pdb))
    created["status"] = {  # what the disruption controller computes for 3 Ready pods, minAvailable 3
        "observedGeneration": created["metadata"].get("generation", 1),
        "desiredHealthy": 3, "currentHealthy": 3, "expectedPods": 3, "disruptionsAllowed": 0,
    }  # fmt: skip
    ok(lab.request("PUT", f"{path}/web/status", created))
    upstream = "The disruption budget web needs 3 healthy pods and has 3 currently"

    code, answer = lab.request(
        "POST",
        f"/api/v1/namespaces/{NS}/pods/web-0/eviction",
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-0"}},
    )
    assert code == 429, answer
    assert answer["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert [c["message"] for c in answer["details"]["causes"]] == [upstream]

    async def enter() -> str:
        client = client_of(lab)
        try:
            with pytest.raises(MaintenanceTimeoutError) as caught:
                await evacuate(client, HOST, 3.0, lambda _line: None, retry=0.5)
            return str(caught.value)
        finally:
            with contextlib.suppress(Exception):
                await client.patch(NODES, "", HOST, {"spec": {"unschedulable": None}})
            await client.close()

    told = asyncio.run(enter())
    assert (
        f"{NS}/web-0 is blocked: {upstream}: it allows 0 disruptions now (status.disruptionsAllowed)" in told
    )
    assert "evicting one more pod would leave 2 healthy, fewer than the 3 it needs" in told
    for index in range(3):
        lab.request("DELETE", f"/api/v1/namespaces/{NS}/pods/web-{index}?gracePeriodSeconds=0")
    lab.request("DELETE", f"{path}/web")


def test_an_unreachable_host_gets_no_attestation_taint(lab: ApiServer, tmp_path: Path) -> None:
    set_node(lab, "Unknown", UNREACHABLE_BOTH)
    silence = (
        "the node agent at https://127.0.0.1:10250/attestation did not answer "
        "(timed out: is the host up and not overloaded?): TimeoutError()"
    )
    now = datetime.now(UTC)

    async def record() -> Obj:
        client = client_of(lab)
        try:
            settings = VerifierSettings(tmp_path / "policy.json", tmp_path / "ca.crt", None)
            node = await client.get(NODES, "", HOST)
            verdict = attestation.failed_verdict(HOST, now.isoformat(), silence)
            await Verifier(client, settings, clock=lambda: now).record(node, verdict, "lab")
            return await client.get(NODES, "", HOST)
        finally:
            await client.close()

    try:
        node = asyncio.run(record())
        keys = [t["key"] for t in node["spec"].get("taints") or []]
        assert attestation.TAINT_KEY not in keys
        assert keys == ["node.kubernetes.io/unreachable"] * 2
        attested = next(c for c in node["status"]["conditions"] if c["type"] == attestation.CONDITION)
        assert (attested["status"], attested["reason"]) == ("Unknown", attestation.UNREACHABLE)
    finally:
        set_node(lab, "True")


def test_a_host_that_comes_back_gets_a_node_ready_event(lab: ApiServer) -> None:
    set_node(lab, "True", UNREACHABLE_BOTH)  # the agent posted Ready again; the taints are still there
    renewed = micro_time(datetime.now(UTC))
    lease: Obj = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": HOST},
        "spec": {"holderIdentity": HOST, "leaseDurationSeconds": 40, "renewTime": renewed},
    }
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    if lab.request("POST", leases, lease)[0] == 409:
        current = ok(lab.request("GET", f"{leases}/{HOST}"))
        current["spec"]["renewTime"] = renewed
        ok(lab.request("PUT", f"{leases}/{HOST}", current))

    async def one_pass() -> None:
        client = client_of(lab)
        try:
            await NodeLifecycle(client).pass_once()
        finally:
            await client.close()

    asyncio.run(one_pass())
    node = ok(lab.request("GET", f"/api/v1/nodes/{HOST}"))
    assert not node["spec"].get("taints")
    events = ok(lab.request("GET", "/api/v1/namespaces/default/events"))["items"]
    ready = [e for e in events if e["involvedObject"].get("name") == HOST and e["reason"] == "NodeReady"]
    assert [e["message"] for e in ready] == [f"Node {HOST} status is now: NodeReady"]
    assert ready[0]["involvedObject"]["kind"] == "Node"


@pytest.fixture
def kubectl(lab: ApiServer, tmp_path: Path) -> Any:
    if KUBECTL is None:
        pytest.skip("no kubectl 1.33 or /usr/bin/kubectl on this machine")
    config = write_kubeconfig(tmp_path / "kubeconfig", lab, token=ADMIN_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}

    def run(*args: str) -> proc.Result:
        return proc.run([str(KUBECTL), "-n", NS, *args], timeout=60, check=False, env=env)

    return run


def test_exec_to_a_pod_on_an_unreachable_host_is_answered_at_once(lab: ApiServer, kubectl: Any) -> None:
    running_pod(lab, "shell")
    set_node(lab, "Unknown", UNREACHABLE_BOTH)
    try:
        refused = kubectl("exec", "shell", "--", "true")
        assert refused.returncode != 0
        assert f"error dialing backend: node {HOST} is NotReady (Kubelet stopped posting node status)" in (
            refused.stderr
        ), refused
    finally:
        set_node(lab, "True")
        lab.request("DELETE", f"/api/v1/namespaces/{NS}/pods/shell?gracePeriodSeconds=0")


def test_exec_to_a_host_stopped_a_moment_ago_times_out_its_dial(lab: ApiServer, kubectl: Any) -> None:
    """The Node is still Ready but nothing answers its address: a listener whose accept queue is
    full drops the SYNs, as a stopped host's address does."""
    running_pod(lab, "shell2")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            set_node(lab, "True", port=port)
            refused = kubectl("exec", "shell2", "--", "true")
        finally:
            for filler in fillers:
                filler.close()
            set_node(lab, "True")
            lab.request("DELETE", f"/api/v1/namespaces/{NS}/pods/shell2?gracePeriodSeconds=0")
    assert refused.returncode != 0
    wanted = f"error dialing backend: node {HOST}: dial tcp 127.0.0.1:{port}: i/o timeout"
    assert wanted in refused.stderr, refused
    assert f"no answer within {podstreams.DIAL_TIMEOUT_S:g}s" in refused.stderr
