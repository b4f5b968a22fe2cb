"""vSphere Pods on the teaching lab: kubectl apply -> a microVM with its own kernel on the scheduled host.

Needs the hosts' agents: roles/esx_host in playbooks/site.yml (with the variables of
``nestlab.agent.provisioning.ansible_vars``) and the demo images pushed to the depot
(``nestlab.agent.demo_images.publish``): `nestlab up` does both. Logs are read with `kubectl logs`
(the API server proxies pods/log to the agent) and straight from the agent's log port.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nestlab.runtime import proc
from tests.e2e.conftest import LiveLab, nestlab

pytestmark = [pytest.mark.e2e, pytest.mark.root]
REGISTRY = "depot:5000"
POD_TIMEOUT_S = 600.0  # TCG pods on a lab whose nine nodes share two cores
LOG_PORT = 10250


def kubectl(lab: LiveLab, *args: str, stdin: str | None = None, check: bool = True) -> proc.Result:
    """kubectl with the lab's kubeconfig (server: the VIP)."""
    argv = ["kubectl", "--kubeconfig", str(lab.files.kubeconfig), "--request-timeout=20s", *args]
    return proc.run(argv, timeout=POD_TIMEOUT_S, check=check, stdin=stdin)


def on_node(lab: LiveLab, node: str, command: str, *, check: bool = True) -> proc.Result:
    """A shell command on a lab node through `nestlab ssh`."""
    return nestlab("ssh", "--name", lab.name, node, "--", command, check=check)


def plan(lab: LiveLab) -> dict[str, Any]:
    return dict(json.loads(lab.files.plan.read_text()))


def nodes(lab: LiveLab, role: str) -> list[str]:
    return [str(n["name"]) for n in plan(lab)["nodes"] if n["role"] == role]


def wait_for(check: Callable[[], bool], what: str, timeout: float = POD_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"{what}: not true after {timeout:g}s")


@pytest.fixture(scope="module")
def agents(lab_up: LiveLab) -> LiveLab:
    """The lab, once every host's agent has registered a Ready Node."""
    hosts = nodes(lab_up, "host")

    def ready() -> bool:
        out = kubectl(lab_up, "get", "nodes", "-o", "json", check=False)
        if out.returncode != 0:
            return False
        items = json.loads(out.stdout)["items"]
        ready_nodes = {
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        }
        return set(hosts) <= ready_nodes

    wait_for(ready, "every host's Node Ready", timeout=POD_TIMEOUT_S)
    return lab_up


@pytest.fixture
def namespace(agents: LiveLab, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own (a deleted one stays Terminating for a while)."""
    name = f"pods-{zlib.crc32(request.node.name.encode()):08x}"
    kubectl(agents, "create", "namespace", name)
    yield name
    kubectl(agents, "delete", "pods", "--all", "-n", name, "--wait=false", check=False)
    kubectl(agents, "delete", "namespace", name, "--wait=false", check=False)


def apply(lab: LiveLab, pod: dict[str, Any]) -> None:
    kubectl(lab, "apply", "-f", "-", stdin=json.dumps(pod))


def pod_json(lab: LiveLab, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl(lab, "get", "pod", name, "-n", namespace, "-o", "json").stdout))


def wait_phase(lab: LiveLab, namespace: str, name: str, phases: tuple[str, ...]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(pod_json(lab, namespace, name))
        return (seen.get("status") or {}).get("phase") in phases

    wait_for(reached, f"pod {name} in {phases}", timeout=POD_TIMEOUT_S)
    return seen


def agent_logs(lab: LiveLab, host_ip: str, namespace: str, pod: str, container: str) -> str:
    context = ssl.create_default_context(cafile=str(lab.files.pki / "ca.crt"))
    context.load_cert_chain(str(lab.files.pki / "admin.crt"), str(lab.files.pki / "admin.key"))
    url = f"https://{host_ip}:{LOG_PORT}/containerLogs/{namespace}/{pod}/{container}"
    with urllib.request.urlopen(url, context=context, timeout=20) as response:
        return str(response.read().decode())


def address_of(lab: LiveLab, node: str) -> str:
    return next(str(n["address"]) for n in plan(lab)["nodes"] if n["name"] == node)


def test_two_container_pod_runs_its_own_kernel_and_answers_hosts_and_pods(
    agents: LiveLab, namespace: str
) -> None:
    web = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": f"{REGISTRY}/nestlab/web:1",
                    "resources": {"limits": {"memory": "64Mi"}},
                },
                {
                    "name": "side",
                    "image": f"{REGISTRY}/nestlab/web:1",
                    "command": ["sh", "-c", "uname -r; sleep 3600"],
                },
            ]
        },
    }
    apply(agents, web)
    running = wait_phase(agents, namespace, "web", ("Running", "Failed"))
    assert running["status"]["phase"] == "Running", json.dumps(running["status"])
    host, pod_ip = running["spec"]["nodeName"], running["status"]["podIP"]
    assert running["status"]["hostIP"] == address_of(agents, host)

    printed: list[str] = []

    def side_printed() -> bool:  # Running means started: the side container may not have printed yet
        printed.append(agent_logs(agents, address_of(agents, host), namespace, "web", "side").strip())
        return bool(printed[-1])

    wait_for(side_printed, "uname -r in the side container's log", timeout=120)
    pod_kernel = printed[-1]
    host_kernel = on_node(agents, host, "uname -r").stdout.strip()
    assert pod_kernel != host_kernel, "a vSphere Pod runs its own kernel"
    # kubectl logs goes VIP -> API server -> the agent on the pod's host
    assert kubectl(agents, "logs", "web", "-c", "side", "-n", namespace).stdout.strip() == pod_kernel

    other = next(h for h in nodes(agents, "host") if h != host)
    fetch = f"python3 -c \"import urllib.request; print(urllib.request.urlopen('http://{pod_ip}/').read().decode())\""
    wait_for(
        lambda: "nestlab vSphere Pod" in on_node(agents, other, fetch, check=False).stdout, "host -> pod HTTP"
    )

    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": namespace},
        "spec": {
            "nodeName": other,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": f"{REGISTRY}/nestlab/web:1",
                    "command": ["wget", "-q", "-O", "-", f"http://{pod_ip}/"],
                }
            ],
        },
    }
    apply(agents, client)
    done = wait_phase(agents, namespace, "client", ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", json.dumps(done["status"])
    assert "nestlab vSphere Pod" in agent_logs(agents, address_of(agents, other), namespace, "client", "c")

    uid = running["metadata"]["uid"]
    before = on_node(agents, host, f"pgrep -f '[q]emu-system.*{uid}'", check=False).stdout.split()
    assert len(before) == 1
    on_node(agents, host, "systemctl restart nestlab-agent")
    wait_for(
        lambda: "adopted QEMU pid" in on_node(agents, host, "journalctl -u nestlab-agent -n 50").stdout,
        "adopt",
    )
    assert on_node(agents, host, f"pgrep -f '[q]emu-system.*{uid}'", check=False).stdout.split() == before
    assert pod_json(agents, namespace, "web")["status"]["phase"] == "Running"

    kubectl(agents, "delete", "pod", "web", "client", "-n", namespace, "--timeout=300s")
    assert on_node(agents, host, f"pgrep -f '[q]emu-system.*{uid}'", check=False).stdout.strip() == ""
    assert on_node(agents, host, f"test -e /var/lib/nestlab-agent/pods/{uid}", check=False).returncode != 0
    assert "nlt" + uid.replace("-", "")[:12] not in on_node(agents, host, "ip -o link show").stdout


def test_jobs_succeed_and_fail_with_their_exit_codes(agents: LiveLab, namespace: str) -> None:
    for tag in ("ok", "fail"):
        job = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"job-{tag}", "namespace": namespace},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "job", "image": f"{REGISTRY}/nestlab/job:{tag}"}],
            },
        }
        apply(agents, job)
    ok = wait_phase(agents, namespace, "job-ok", ("Succeeded", "Failed"))
    fail = wait_phase(agents, namespace, "job-fail", ("Succeeded", "Failed"))
    assert ok["status"]["phase"] == "Succeeded"
    assert fail["status"]["phase"] == "Failed"
    assert fail["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    kubectl(agents, "delete", "pod", "job-ok", "job-fail", "-n", namespace, "--timeout=120s")
