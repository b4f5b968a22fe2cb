"""vSphere Pods on the teaching lab: kubectl apply -> a microVM with its own kernel on the scheduled host.

Needs the hosts' agents: roles/esx_host in playbooks/site.yml (with the variables of
``nestlab.provision.agentcerts.ansible_vars``) and the demo images pushed to the depot
(``nestlab.images.demo.publish``): `nestlab up` does both. Logs are read with `kubectl logs`
(the API server proxies pods/log to the agent) and straight from the agent's log port.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import (
    REGISTRY,
    address_of,
    agent_logs,
    apply,
    kubectl,
    nodes,
    on_node,
    pod_json,
    wait_for,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]


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
