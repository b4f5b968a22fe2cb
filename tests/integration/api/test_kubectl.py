"""Real kubectl binaries, old (Debian's 1.20) and new (1.27 .. 1.33), against nestlab-apiserver."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.runtime import proc
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  containers:
  - name: httpd
    image: {image}
    ports: [{{containerPort: 80}}]
    resources:
      requests: {{cpu: 100m, memory: 64Mi}}
"""


@pytest.fixture(scope="module")
def lab_node(apiserver: ApiServer) -> Iterator[str]:
    """A Ready node, registered the way the node agent will register it."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "esx-01", "labels": {"kubernetes.io/hostname": "esx-01"}},
    }
    code, body = apiserver.request("POST", "/api/v1/nodes", node)
    assert code == 201, body
    body["status"] = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AgentReady",
                "message": "nestlab-agent is posting ready status",
            }
        ],
        "addresses": [{"type": "InternalIP", "address": "198.18.0.11"}],
        "nodeInfo": {
            "kubeletVersion": "v1.30.0-nestlab",
            "osImage": "Debian GNU/Linux 12",
            "kernelVersion": "6.1",
            "containerRuntimeVersion": "nestlab://microvm",
            "architecture": "amd64",
            "operatingSystem": "linux",
            "bootID": "",
            "machineID": "",
            "systemUUID": "",
            "kubeProxyVersion": "",
        },
    }
    code, body = apiserver.request("PUT", "/api/v1/nodes/esx-01/status", body)
    assert code == 200, body
    yield "esx-01"
    apiserver.request("DELETE", "/api/v1/nodes/esx-01")


def test_kubectl_workflow(kubectl, lab_node: str, apiserver: ApiServer, tmp_path: Path) -> None:
    ns = "kc-" + kubectl.version.replace(".", "-")

    nodes = kubectl("get", "nodes").stdout
    assert re.search(rf"^{lab_node}\s+Ready\s", nodes, re.MULTILINE), nodes

    assert f"namespace/{ns} created" in kubectl("create", "namespace", ns).stdout
    assert "Active" in kubectl("get", "namespace", ns).stdout
    chunked = kubectl("get", "namespaces", "--chunk-size=1").stdout  # one ?limit=1&continue= per row
    assert f"\n{ns} " in chunked
    assert "\ndefault " in chunked

    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(POD.format(image="busybox:1.36"))
    assert "pod/web created" in kubectl("apply", "-n", ns, "-f", str(pod_file)).stdout
    pod_file.write_text(POD.format(image="busybox:1.37"))
    assert "pod/web configured" in kubectl("apply", "-n", ns, "-f", str(pod_file)).stdout
    image = kubectl("get", "pod", "web", "-n", ns, "-o", "jsonpath={.spec.containers[0].image}").stdout
    assert image == "busybox:1.37"
    assert "pod/web unchanged" in kubectl("apply", "-n", ns, "-f", str(pod_file)).stdout

    wide = kubectl("get", "pods", "-A", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:3] == ["NAMESPACE", "NAME", "READY"]
    assert "NODE" in wide[0]
    row = next(line.split() for line in wide if line.startswith(ns + " "))
    assert row[1:4] == ["web", "0/1", "Pending"], wide

    watch_log = tmp_path / "watch.log"
    watcher = proc.spawn([kubectl.argv0, "get", "pod", "web", "-n", ns, "-w"], log=watch_log, env=kubectl.env)
    try:
        deadline = time.monotonic() + 20
        while "web" not in watch_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        code, body = apiserver.request(
            "PATCH",
            f"/api/v1/namespaces/{ns}/pods/web/status",
            {"status": {"phase": "Running", "podIP": "198.18.8.5"}},
            content_type="application/merge-patch+json",
        )
        assert code == 200, body
        while "Running" not in watch_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watcher.stop()
    lines = [line for line in watch_log.read_text().splitlines() if line.startswith("web")]
    assert "Pending" in lines[0], lines
    assert "Running" in lines[-1], lines

    code, body = apiserver.request("GET", f"/api/v1/namespaces/{ns}/pods/web")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1"},
        "type": "Normal",
        "reason": "Pulled",
        "message": "image staged on esx-01",
        "source": {"component": "nestlab-agent"},
        "count": 1,
        "involvedObject": {
            "kind": "Pod",
            "namespace": ns,
            "name": "web",
            "uid": body["metadata"]["uid"],
            "apiVersion": "v1",
        },
        "firstTimestamp": body["metadata"]["creationTimestamp"],
        "lastTimestamp": body["metadata"]["creationTimestamp"],
    }
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{ns}/events", event)
    assert code == 201, body
    described = kubectl("describe", "pod", "web", "-n", ns).stdout
    for expected in ("busybox:1.37", "Running", "198.18.8.5", "image staged on esx-01"):
        assert expected in described, described

    assert 'pod "web" deleted' in kubectl("delete", "pod", "web", "-n", ns).stdout
    missing = kubectl("get", "pod", "web", "-n", ns, check=False)
    assert missing.returncode != 0
    assert 'pods "web" not found' in missing.stderr

    assert f'namespace "{ns}" deleted' in kubectl("delete", "namespace", ns).stdout
    gone = kubectl("get", "namespace", ns, check=False)
    assert gone.returncode != 0
    assert f'namespaces "{ns}" not found' in gone.stderr


TYPO_POD = """apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  containers:
  - name: c
    image: busybox:1.36
    imagePullPolicyy: Always
"""


def test_unknown_fields_are_refused_or_warned(kubectl, apiserver: ApiServer, tmp_path: Path) -> None:
    """kubectl 1.27+ asks for fieldValidation=Strict (our OpenAPI v3 says PATCH supports it); 1.20
    sends nothing and gets the server default, Warn, with the field dropped."""
    ns = "typo-" + kubectl.version.replace(".", "-")
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        manifest = tmp_path / "typo.yaml"
        manifest.write_text(TYPO_POD)
        result = kubectl("apply", "-n", ns, "-f", str(manifest), check=False)
        message = 'unknown field "spec.containers[0].imagePullPolicyy"'
        assert message in result.stderr, result.stderr
        if kubectl.version == "1.20":
            assert result.returncode == 0
            assert f"Warning: {message}" in result.stderr
            code, stored = apiserver.request("GET", f"/api/v1/namespaces/{ns}/pods/typo")
            assert code == 200
            assert "imagePullPolicyy" not in stored["spec"]["containers"][0]
        else:
            assert result.returncode != 0
            assert "strict decoding error" in result.stderr
            assert apiserver.request("GET", f"/api/v1/namespaces/{ns}/pods/typo")[0] == 404
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


def test_server_side_dry_run(kubectl, apiserver: ApiServer, tmp_path: Path) -> None:
    """--dry-run=server: kubectl 1.20 finds dryRun on the PATCH operation of /openapi/v2 (protobuf),
    newer ones in /openapi/v3; deletes carry it in DeleteOptions. Nothing may change."""
    ns = "dry-" + kubectl.version.replace(".", "-")
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        manifest = tmp_path / "pod.yaml"
        manifest.write_text(POD.format(image="busybox:1.36"))
        assert (
            "pod/web created (server dry run)"
            in kubectl("apply", "-n", ns, "-f", str(manifest), "--dry-run=server").stdout
        )
        assert apiserver.request("GET", f"/api/v1/namespaces/{ns}/pods/web")[0] == 404
        kubectl("apply", "-n", ns, "-f", str(manifest))
        deleted = kubectl("delete", "pod", "web", "-n", ns, "--dry-run=server").stdout
        assert 'pod "web" deleted (server dry run)' in deleted
        assert apiserver.request("GET", f"/api/v1/namespaces/{ns}/pods/web")[0] == 200
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")
