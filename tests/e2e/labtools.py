"""Helpers shared by the e2e modules: kubectl and SSH against the shared lab, waiting, pod shortcuts.

The fixtures built on them (``agents``: every host's Node Ready; ``namespace``: a namespace of the
test's own) are in conftest.py, so every module gets the same ones.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from nestlab.runtime import proc
from tests.e2e.conftest import LiveLab, nestlab

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
