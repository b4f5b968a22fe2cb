"""A REAL nestlab-agent against the REAL API server (etcd), a REAL registry and REAL pod microVMs (TCG).

Pods are created already bound (spec.nodeName), as the scheduler would leave them. Each test checks
what a user sees through the API (phase, exit codes, reasons, Events), the logs the agent serves,
and that a deleted pod leaves no QEMU and no state behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent.network import tap_name
from nestlab.api import nodeagent
from nestlab.images import oci
from nestlab.runtime import proc
from tests.integration.agent.conftest import NODE, AgentProcess, Registry, push_image, qemu_pids, wait_until
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration
NS = "agent-it"
BOOT_S = 240.0  # a TCG pod boots in seconds; a loaded two-core machine may need much more


@pytest.fixture
def namespace(apiserver: ApiServer) -> Any:
    code, body = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    assert code in (201, 409), body
    yield NS
    pods = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods")[1]
    for item in pods.get("items", []) if isinstance(pods, dict) else []:
        apiserver.request(
            "DELETE", f"/api/v1/namespaces/{NS}/pods/{item['metadata']['name']}?gracePeriodSeconds=0"
        )


@pytest.fixture
def busybox_image(registry: Registry, busybox_root: Path) -> str:
    push_image(registry, "demo/busybox", ["1"], busybox_root, oci.Recipe(cmd=("sh",)))
    return "demo/busybox:1"


def _pod(name: str, image: str, command: list[str], restart: str = "Never", **extra: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": command, **extra}
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [container],
        },
    }


def _get(apiserver: ApiServer, name: str) -> dict[str, Any]:
    code, body = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
    assert code == 200, body
    return dict(body)


def _wait_phase(apiserver: ApiServer, name: str, phases: tuple[str, ...]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(_get(apiserver, name))
        return (seen.get("status") or {}).get("phase") in phases

    wait_until(reached, f"pod {name} in {phases}", timeout=BOOT_S)
    return seen


def _logs(agent: AgentProcess, apiserver: ApiServer, name: str, container: str = "main") -> str:
    context = ssl.create_default_context(cafile=str(apiserver.pki.ca))
    # the log port answers only clients with a certificate from the lab CA (the API servers)
    context.load_cert_chain(str(apiserver.pki.alice_cert), str(apiserver.pki.alice_key))
    url = f"{agent.log_url}/containerLogs/{NS}/{name}/{container}"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


async def _fetch(node: dict[str, Any], path: str, params: dict[str, str], context: ssl.SSLContext) -> str:
    """What the API server's pods/log does: the shared node-agent client, with a lab-CA client certificate."""
    async with nodeagent.stream(node, path, params, context) as answer:
        return b"".join([chunk async for chunk in answer.chunks()]).decode()


def _events(apiserver: ApiServer, name: str) -> list[dict[str, Any]]:
    body = apiserver.request("GET", f"/api/v1/namespaces/{NS}/events")[1]
    return [e for e in body.get("items", []) if e["involvedObject"]["name"] == name]


def _delete_and_wait_gone(apiserver: ApiServer, name: str) -> None:
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}")
    wait_until(
        lambda: apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")[0] == 404,
        f"pod {name} removed",
        timeout=120,
    )


def _wait_no_pod_state(node_agent: AgentProcess) -> None:
    wait_until(
        lambda: not list((node_agent.state / "pods").iterdir()), "the agent forgot every pod", timeout=30
    )


def test_node_registers_ready_with_a_lease(apiserver: ApiServer, node_agent: AgentProcess) -> None:
    def ready() -> bool:
        code, node = apiserver.request("GET", f"/api/v1/nodes/{NODE}")
        conditions = (node.get("status") or {}).get("conditions", []) if code == 200 else []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_until(ready, "node Ready", timeout=60)
    node = apiserver.request("GET", f"/api/v1/nodes/{NODE}")[1]
    assert node["status"]["allocatable"]["memory"] == "1024Mi"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == int(
        node_agent.log_url.rsplit(":", 1)[1]
    )
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
    # the agent reports the Node Ready first, then creates its Lease
    wait_until(lambda: apiserver.request("GET", lease_path)[0] == 200, "node Lease", timeout=60)
    code, lease = apiserver.request("GET", lease_path)
    assert code == 200, lease
    assert lease["spec"]["holderIdentity"] == NODE


def test_jobs_succeed_and_fail_with_exit_codes_and_logs(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    for name, code in (("job-ok", 0), ("job-fail", 3)):
        pod = _pod(name, busybox_image, ["sh", "-c", f"echo hello from {name}; exit {code}"])
        assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)[0] == 201
    ok = _wait_phase(apiserver, "job-ok", ("Succeeded", "Failed"))
    failed = _wait_phase(apiserver, "job-fail", ("Succeeded", "Failed"))

    assert ok["status"]["phase"] == "Succeeded", json.dumps(ok["status"])
    assert ok["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert failed["status"]["phase"] == "Failed", json.dumps(failed["status"])
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert _logs(node_agent, apiserver, "job-ok") == "hello from job-ok\n"
    anonymous = ssl.create_default_context(cafile=str(apiserver.pki.ca))
    url = f"{node_agent.log_url}/containerLogs/{NS}/job-ok/main"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url, context=anonymous, timeout=10)  # noqa: S310 - loopback
    assert "hello from job-fail" in _logs(node_agent, apiserver, "job-fail")
    # what the API server's pods/log will do: find the node's log endpoint and ask its agent
    node = apiserver.request("GET", f"/api/v1/nodes/{NODE}")[1]
    context = ssl.create_default_context(cafile=str(apiserver.pki.ca))
    context.load_cert_chain(str(apiserver.pki.server_cert), str(apiserver.pki.server_key))
    fetched = asyncio.run(_fetch(node, f"/containerLogs/{NS}/job-fail/main", {"tailLines": "1"}, context))
    assert fetched == "hello from job-fail\n"
    # and the API server's pods/log itself proxies to the agent (what `kubectl logs` calls)
    assert apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/job-fail/log?tailLines=1") == (
        200,
        "hello from job-fail\n",
    )
    with pytest.raises(nodeagent.AgentAnswerError, match="404"):
        asyncio.run(_fetch(node, f"/containerLogs/{NS}/no-such-pod/main", {}, context))

    for name in ("job-ok", "job-fail"):
        _delete_and_wait_gone(apiserver, name)
    # a finished pod is removed by the API server at once (grace 0, as upstream); its agent forgets
    # it when its watch brings the deletion, a moment later
    _wait_no_pod_state(node_agent)
    assert qemu_pids(node_agent.state) == []


def test_running_pod_survives_an_agent_restart_and_delete_leaves_nothing(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    pod = _pod(
        "sleeper", busybox_image, ["sh", "-c", "echo up; while true; do sleep 1; done"], restart="Always"
    )
    side = ["sh", "-c", "echo sidecar; while true; do sleep 1; done"]
    pod["spec"]["containers"].append({"name": "side", "image": busybox_image, "command": side})
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)[0] == 201
    running = _wait_phase(apiserver, "sleeper", ("Running", "Failed", "Succeeded"))
    assert running["status"]["phase"] == "Running", json.dumps(running["status"])
    assert running["status"]["hostIP"] == "127.0.0.1"

    def both_ready() -> bool:  # Running comes with the first container; restart once both report
        statuses = _get(apiserver, "sleeper")["status"].get("containerStatuses", [])
        return len(statuses) == 2 and all(c["ready"] for c in statuses)

    wait_until(both_ready, "both containers ready", timeout=120)
    before = qemu_pids(node_agent.state)
    assert len(before) == 1

    node_agent.restart()
    time.sleep(3)  # let the new agent list, adopt and re-report
    wait_until(lambda: "adopted QEMU pid" in node_agent.log.read_text(), "adoption", timeout=60)
    assert qemu_pids(node_agent.state) == before
    after = _get(apiserver, "sleeper")
    assert after["status"]["phase"] == "Running"
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert "up" in _logs(node_agent, apiserver, "sleeper")
    assert _logs(node_agent, apiserver, "sleeper", "side") == "sidecar\n"
    assert [c["name"] for c in after["status"]["containerStatuses"]] == ["main", "side"]
    assert all(c["ready"] for c in after["status"]["containerStatuses"])

    _delete_and_wait_gone(apiserver, "sleeper")
    wait_until(lambda: qemu_pids(node_agent.state) == [], "QEMU gone", timeout=60)
    _wait_no_pod_state(node_agent)  # the agent confirms the deletion, then forgets the pod
    reasons = [e["reason"] for e in _events(apiserver, "sleeper")]
    assert "Killing" in reasons


def test_bad_command_fails_with_127_and_a_crash_loop_reports_back_off(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    bad = _pod("bad-command", busybox_image, ["/no/such/program"])
    loop = _pod("crash-loop", busybox_image, ["sh", "-c", "echo crashing; exit 1"], restart="Always")
    for pod in (bad, loop):
        assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)[0] == 201

    failed = _wait_phase(apiserver, "bad-command", ("Failed", "Succeeded"))
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (failed["status"]["phase"], terminated["exitCode"]) == ("Failed", 127)

    def backing_off() -> bool:
        status = _get(apiserver, "crash-loop").get("status") or {}
        c = (status.get("containerStatuses") or [{}])[0]
        return (
            c.get("restartCount", 0) >= 1
            and c.get("lastState", {}).get("terminated", {}).get("exitCode") == 1
        )

    wait_until(backing_off, "a restart after exit 1", timeout=BOOT_S)
    assert any(e["reason"] == "BackOff" for e in _events(apiserver, "crash-loop"))
    assert _get(apiserver, "crash-loop")["status"]["phase"] == "Running", "a crash-looping pod is not done"
    for name in ("bad-command", "crash-loop"):
        _delete_and_wait_gone(apiserver, name)
    assert qemu_pids(node_agent.state) == []


def test_missing_image_and_oversize_pod_get_reasons_and_events(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    missing = _pod("no-image", "demo/nosuch:1", ["true"])
    huge = _pod("huge", busybox_image, ["true"], resources={"requests": {"memory": "64Gi"}})
    for pod in (missing, huge):
        assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)[0] == 201

    failed = _wait_phase(apiserver, "huge", ("Failed",))
    assert failed["status"]["reason"] == "OutOfmemory"

    def pull_failed() -> bool:
        statuses = (_get(apiserver, "no-image").get("status") or {}).get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting", {}).get("reason") in (
            "ErrImagePull",
            "ImagePullBackOff",
        )

    wait_until(pull_failed, "ErrImagePull", timeout=60)
    assert _get(apiserver, "no-image")["status"]["phase"] == "Pending"
    assert any("not in registry" in e["message"] for e in _events(apiserver, "no-image"))
    assert any(e["reason"] == "OutOfmemory" for e in _events(apiserver, "huge"))

    _delete_and_wait_gone(apiserver, "no-image")
    _delete_and_wait_gone(apiserver, "huge")
    assert qemu_pids(node_agent.state) == []


@pytest.mark.root
def test_pods_get_addresses_on_the_pod_bridge_and_reach_each_other_and_the_host_reaches_them(
    apiserver: ApiServer, networked_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    web = _pod("web", busybox_image, ["httpd", "-f", "-p", "80", "-h", "/etc"], restart="Always")
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", web)[0] == 201
    running = _wait_phase(apiserver, "web", ("Running", "Failed"))
    assert running["status"]["phase"] == "Running", json.dumps(running["status"])
    pod_ip = running["status"]["podIP"]
    assert pod_ip.startswith("198.18.247.")

    def answers() -> bool:
        with urllib.request.urlopen(f"http://{pod_ip}/motd", timeout=5) as response:
            return bool(response.read() == b"hello from the image\n")

    wait_until(answers, "the pod's httpd from the host", timeout=BOOT_S)

    client = _pod("client", busybox_image, ["sh", "-c", f"wget -q -O - http://{pod_ip}/motd && uname -r"])
    assert apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", client)[0] == 201
    done = _wait_phase(apiserver, "client", ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"])
    output = _logs(networked_agent, apiserver, "client").splitlines()
    assert output[0] == "hello from the image"
    assert output[1] != os.uname().release, "the pod runs its own kernel"
    assert done["status"]["podIP"] != pod_ip

    taps = [tap_name(p["metadata"]["uid"]) for p in (running, done)]

    def tap_exists(name: str) -> bool:
        return proc.run(["ip", "link", "show", "dev", name], timeout=10, check=False).returncode == 0

    assert tap_exists(taps[0]), "the running pod has its tap"
    for name in ("web", "client"):
        _delete_and_wait_gone(apiserver, name)
    wait_until(lambda: not any(tap_exists(t) for t in taps), "pod taps removed", timeout=30)
    assert qemu_pids(networked_agent.state) == []


def test_an_agent_certificate_from_provisioning_is_accepted_as_its_node(
    apiserver: ApiServer, tmp_path: Path
) -> None:
    import asyncio
    import shutil

    from nestlab.agent.node import NodeInfo, NodeReporter
    from nestlab.api.client import ApiClient, Credentials
    from nestlab.provision.agentcerts import ensure_agent_certs
    from nestlab.spec import make_plan, parse_spec
    from tests.unit.spec.helpers import spec_yaml

    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    for name in ("ca.crt", "ca.key"):  # the test API server's CA signs the agent's certificate
        shutil.copy(apiserver.pki.ca.parent / name, pki_dir / name)
    plan = make_plan(parse_spec(spec_yaml()))
    issued = ensure_agent_certs(plan, pki_dir)
    host = sorted(issued)[0]

    async def register() -> None:
        client = ApiClient(
            Credentials(apiserver.url, apiserver.pki.ca, cert=issued[host].cert, key=issued[host].key)
        )
        try:
            await NodeReporter(client, NodeInfo(host, "127.0.0.1", 1000, 512, 4, 10250)).register()
        finally:
            await client.close()

    try:
        asyncio.run(register())
        code, node = apiserver.request("GET", f"/api/v1/nodes/{host}")
        assert code == 200, node
        assert node["status"]["allocatable"]["cpu"] == "1000m"
    finally:
        apiserver.request("DELETE", f"/api/v1/nodes/{host}")
