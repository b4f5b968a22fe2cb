"""The Supervisor control plane on the teaching lab, through the VIP, with real kubectl.

kubectl (the machine's modern one, and Debian's 1.20) talks to https://<VIP>:6443 with the kubeconfig
`nestlab up` wrote: the kubeconfig command, a namespace and a pod through the VIP.

The failures are made once each elsewhere: the VIP holder stopped (the VIP moves, a write made
meanwhile stays) by exercise 13 and the vip-holder-loss drill (test_drills.py); the etcd leader's
node stopped by exercise 13, and riding on it (tests/e2e/riders.py) a second control-plane node
stopped (no quorum: writes refused, none acknowledged is lost) and, once the exercise wrote with
two of three members, 10 reads and 10 writes through the VIP without a retry.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nestlab.runtime import proc
from tests.e2e.conftest import LiveLab, nestlab
from tests.integration.api.conftest import kubectl_120  # noqa: F401 - a fixture reused here

pytestmark = [pytest.mark.e2e, pytest.mark.root]

KUBECTL = "kubectl"
WAIT_S = 60.0  # a pod deletion seen through the VIP on a loaded lab
POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app: e2e}}
spec:
  containers:
    - name: web
      image: depot:5000/busybox:latest
      command: [httpd, -f, -p, "8080"]
"""


def kubectl(lab: LiveLab, *args: str, binary: str = KUBECTL, stdin: str | None = None, check: bool = True,
            timeout: float = 60.0) -> proc.Result:  # fmt: skip
    """kubectl with the lab's kubeconfig (server: the VIP)."""
    argv = [binary, "--kubeconfig", str(lab.files.kubeconfig), "--request-timeout=20s", *args]
    return proc.run(argv, timeout=timeout, check=check, stdin=stdin)


def plan(lab: LiveLab) -> dict[str, object]:
    document: dict[str, object] = json.loads(lab.files.plan.read_text())
    return document


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"{what}: not true after {timeout:g}s")


@pytest.fixture
def namespace(lab_up: LiveLab) -> Iterator[str]:
    """A fresh namespace, deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    kubectl(lab_up, "create", "namespace", name)
    try:
        yield name
    finally:
        kubectl(lab_up, "delete", "namespace", name, "--wait=false", check=False)


def test_kubeconfig_command_prints_the_vip_kubeconfig(lab_up: LiveLab) -> None:
    path = nestlab("kubeconfig", "--name", lab_up.name, "--path").stdout.strip()
    assert Path(path) == lab_up.files.kubeconfig
    printed = nestlab("kubeconfig", "--name", lab_up.name).stdout
    assert f"server: https://{plan(lab_up)['vip']}:6443" in printed


def test_kubectl_through_the_vip(lab_up: LiveLab) -> None:
    kubectl(lab_up, "get", "nodes")
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    assert "created" in kubectl(lab_up, "create", "namespace", name).stdout
    try:
        assert kubectl(lab_up, "get", "namespace", name, "-o", "jsonpath={.status.phase}").stdout == "Active"
        kubectl(lab_up, "apply", "-f", "-", stdin=POD.format(name="web", namespace=name))
        wide = kubectl(lab_up, "get", "pods", "-A", "-o", "wide").stdout
        assert any(line.split()[:2] == [name, "web"] for line in wide.splitlines()), wide
        kubectl(lab_up, "delete", "pod", "web", "-n", name, "--wait=false")
        wait_for(
            lambda: "web" not in kubectl(lab_up, "get", "pods", "-n", name, "-o", "name").stdout,
            "pod deleted",
            timeout=60,
        )
    finally:
        kubectl(lab_up, "delete", "namespace", name, "--wait=false", check=False)


def test_debian_kubectl_120_through_the_vip(lab_up: LiveLab, kubectl_120: Path, namespace: str) -> None:  # noqa: F811
    old = str(kubectl_120)
    assert namespace in kubectl(lab_up, "get", "namespaces", binary=old).stdout
    kubectl(lab_up, "apply", "-f", "-", binary=old, stdin=POD.format(name="old", namespace=namespace))
    assert "old" in kubectl(lab_up, "get", "pods", "-n", namespace, binary=old).stdout
    kubectl(lab_up, "delete", "pod", "old", "-n", namespace, "--wait=false", binary=old)
