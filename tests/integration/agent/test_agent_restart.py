"""A REAL nestlab-agent whose pod VMs (REAL QEMU under TCG) end behind its back.

What a host restart does to a pod, played on one machine: the agent is stopped, the pod's QEMU is
killed (as the host's reboot would), and the agent started again. The pod must run again (a new
QEMU, restartCount 1, an Event), and from the agent's first word on, the API must never say Running
while no QEMU runs for the pod. A QEMU killed while the agent runs comes back after the back-off.
A pod deleted while its VM is gone is confirmed as soon as the agent is back.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent.network import tap_name
from nestlab.images import oci
from nestlab.runtime import proc
from tests.integration.agent.conftest import (
    NODE,
    AgentProcess,
    Registry,
    push_image,
    qemu_pids,
    start_agent,
    stop_agent,
    wait_until,
)
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration
NS = "agent-restart-it"
BOOT_S = 240.0  # a TCG pod boots in seconds; a loaded two-core machine may need much more
LOOP = ["sh", "-c", "echo up; while true; do sleep 1; done"]


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


def _create(apiserver: ApiServer, name: str, image: str, restart: str) -> None:
    pod = {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": image, "command": LOOP}],
        },
    }
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)
    assert code == 201, body


def _get(apiserver: ApiServer, name: str) -> dict[str, Any]:
    code, body = apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
    assert code == 200, body
    return dict(body)


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(((pod.get("status") or {}).get("containerStatuses") or [{}])[0])


def _running_ready(apiserver: ApiServer, name: str) -> bool:
    pod = _get(apiserver, name)
    return pod["status"].get("phase") == "Running" and bool(_main(pod).get("ready"))


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), f"QEMU pid {pid} gone", timeout=30)


class Sampler:
    """Samples a pod's status and its QEMUs together: Running must mean a QEMU runs for that pod."""

    def __init__(self, apiserver: ApiServer, agent: AgentProcess, name: str) -> None:
        self.apiserver, self.agent, self.name = apiserver, agent, name
        self.violations: list[str] = []

    def until(self, done: Any, what: str, *, stale: dict[str, Any], dead: list[int]) -> dict[str, Any]:
        """Sample until ``done(pod)``. Samples still at the ``stale`` pod's resourceVersion (the
        agent has not spoken since the VM died) are not judged; ``dead``: PIDs that were killed."""
        seen: dict[str, Any] = {}
        workdir = self.agent.state / "pods" / stale["metadata"]["uid"]

        def check() -> bool:
            pod = _get(self.apiserver, self.name)
            if pod["metadata"]["resourceVersion"] == stale["metadata"]["resourceVersion"]:
                return False
            pids = qemu_pids(workdir)  # read after the status: a VM live then is live now
            running = pod["status"].get("phase") == "Running" or "running" in _main(pod).get("state", {})
            if running and (not pids or set(pids) & set(dead)):
                self.violations.append(f"Running with QEMUs {pids}: {pod['status']}")
            seen.clear()
            seen.update(pod)
            return bool(done(pod))

        wait_until(check, what, timeout=BOOT_S)
        return seen


def test_a_pod_whose_vm_died_while_the_agent_was_down_runs_again_never_running_without_a_vm(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    _create(apiserver, "web", busybox_image, "Always")
    wait_until(lambda: _running_ready(apiserver, "web"), "pod web running", timeout=BOOT_S)
    [first] = qemu_pids(node_agent.state)

    node_agent.stop()  # the host goes down: the agent with it, and the pod's VM
    _kill(first)
    stale = _get(apiserver, "web")
    assert stale["status"]["phase"] == "Running", "nobody has told the API yet"
    node_agent.start()

    sampler = Sampler(apiserver, node_agent, "web")
    back = sampler.until(
        lambda pod: pod["status"].get("phase") == "Running" and _main(pod).get("ready"),
        "pod web running again",
        stale=stale,
        dead=[first],
    )
    assert sampler.violations == []
    [second] = qemu_pids(node_agent.state)
    assert second != first
    assert _main(back)["restartCount"] == 1
    lost = _main(back)["lastState"]["terminated"]
    assert (lost["exitCode"], lost["reason"]) == (137, "ContainerStatusUnknown")
    events = apiserver.request("GET", f"/api/v1/namespaces/{NS}/events")[1]["items"]
    restarted = [e for e in events if e["involvedObject"]["name"] == "web" and e["reason"] == "HostRestarted"]
    assert restarted, [e["reason"] for e in events]
    assert "starting a new pod VM" in restarted[0]["message"]

    # now the VM dies while the agent watches: back-off (10 s), then a new VM
    before = _get(apiserver, "web")
    _kill(second)
    again = sampler.until(
        lambda pod: (
            pod["status"].get("phase") == "Running"
            and _main(pod).get("ready")
            and _main(pod)["restartCount"] == 2
        ),
        "pod web running after its QEMU was killed",
        stale=before,
        dead=[second],
    )
    assert sampler.violations == []
    assert _main(again)["lastState"]["terminated"]["exitCode"] == 137
    assert qemu_pids(node_agent.state) not in ([], [second])
    reasons = [e["reason"] for e in apiserver.request("GET", f"/api/v1/namespaces/{NS}/events")[1]["items"]]
    assert "BackOff" in reasons

    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/web")
    wait_until(
        lambda: apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/web")[0] == 404,
        "web removed",
        timeout=120,
    )
    wait_until(lambda: qemu_pids(node_agent.state) == [], "QEMU gone", timeout=60)
    assert "Traceback" not in node_agent.log.read_text(errors="replace")


def test_deleting_a_pod_whose_vm_is_gone_completes_when_the_agent_is_back(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    _create(apiserver, "job", busybox_image, "Never")
    wait_until(lambda: _running_ready(apiserver, "job"), "pod job running", timeout=BOOT_S)
    [pid] = qemu_pids(node_agent.state)

    node_agent.stop()
    _kill(pid)
    code, body = apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/job")
    assert code == 200, body
    assert _get(apiserver, "job")["metadata"].get("deletionTimestamp"), "Terminating: only its node confirms"
    node_agent.start()

    wait_until(
        lambda: apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/job")[0] == 404,
        "the deletion confirmed by the agent",
        timeout=60,
    )
    assert qemu_pids(node_agent.state) == []
    wait_until(lambda: not list((node_agent.state / "pods").iterdir()), "the pod's state removed", timeout=10)
    assert "Traceback" not in node_agent.log.read_text(errors="replace")


RESTART_SUBNET = "198.18.248.0/28"  # this file's own pod range (test_agent.py uses .247, labs .241-245)


@pytest.fixture
def addressed_agent(
    apiserver: ApiServer, registry: Registry, pod_boot: tuple[Path, Path], tmp_path: Path
) -> Iterator[AgentProcess]:
    """An agent with a pod bridge of its own (root); bridge and taps removed afterwards."""
    bridge = f"nlrs{os.getpid() % 100000}"
    agent = start_agent(
        apiserver, registry, pod_boot, tmp_path, "--pod-subnet", RESTART_SUBNET, "--pod-bridge", bridge
    )
    try:
        yield agent
    finally:
        stop_agent(agent)
        for line in proc.run(
            ["ip", "-o", "link", "show", "master", bridge], timeout=10, check=False
        ).stdout.splitlines():
            proc.run(["ip", "link", "del", line.split(":")[1].strip().split("@")[0]], timeout=10, check=False)
        proc.run(["ip", "link", "del", bridge], timeout=10, check=False)


@pytest.mark.root
def test_pods_with_addresses_all_come_back_after_a_host_restart(
    apiserver: ApiServer, addressed_agent: AgentProcess, namespace: str, busybox_image: str
) -> None:
    names = ("web-a", "web-b")
    for name in names:
        _create(apiserver, name, busybox_image, "Always")
    for name in names:
        wait_until(lambda name=name: _running_ready(apiserver, name), f"pod {name} running", timeout=BOOT_S)
    pods = {name: _get(apiserver, name) for name in names}
    old = qemu_pids(addressed_agent.state)
    assert len(old) == 2

    addressed_agent.stop()  # the host reboots: every VM and every tap is gone, the leases stay on disk
    for pid in old:
        _kill(pid)
    for pod in pods.values():
        proc.run(["ip", "link", "del", tap_name(pod["metadata"]["uid"])], timeout=10, check=False)
    addressed_agent.start()

    for name in names:
        sampler = Sampler(apiserver, addressed_agent, name)
        back = sampler.until(
            lambda pod: pod["status"].get("phase") == "Running" and _main(pod).get("ready"),
            f"pod {name} running again",
            stale=pods[name],
            dead=old,
        )
        assert sampler.violations == []
        assert _main(back)["restartCount"] == 1
        assert back["status"]["podIP"].startswith("198.18.248.")
    now = qemu_pids(addressed_agent.state)
    assert len(now) == 2
    assert not set(now) & set(old)
    leases = addressed_agent.state / "network" / "leases"
    assert sorted(p.read_text() for p in leases.iterdir()) == sorted(
        p["metadata"]["uid"] for p in pods.values()
    )
    log = addressed_agent.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert "FileNotFoundError" not in log

    for name in names:
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}")
    for name in names:
        wait_until(
            lambda name=name: apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")[0] == 404,
            f"{name} removed",
            timeout=120,
        )
    assert list(leases.iterdir()) == []
