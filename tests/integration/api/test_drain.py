"""Real ``kubectl cordon/drain/uncordon`` (Debian's 1.20 and a modern one) against nestlab-apiserver.

Pods owned by a controller drain without ``--force``; a PodDisruptionBudget (its status computed
by the real disruption controller, running in a thread) makes kubectl retry and time out until a
replacement is Ready; the test plays the host's agent, confirming deletions with grace 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, wait_until, write_kubeconfig
from tests.integration.api.control_thread import control_plane

pytestmark = pytest.mark.integration
MODERN = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
Obj = dict[str, Any]


@pytest.fixture(params=["1.20", "modern"])
def kubectl(
    request: pytest.FixtureRequest, kubectl_120: Path, apiserver: ApiServer, tmp_path: Path
) -> Callable[..., proc.Result]:
    if request.param == "modern" and not MODERN.exists():
        pytest.skip(f"{MODERN} is not installed")
    binary = kubectl_120 if request.param == "1.20" else MODERN
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver, token=ADMIN_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}

    def run(*args: str, check: bool = True) -> proc.Result:
        return proc.run([str(binary), *args], timeout=90, check=check, env=env)

    return run


def owned_pod(name: str, node: str | None) -> Obj:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u-1", "controller": True}
    spec: Obj = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": {"app": "web"}, "ownerReferences": [owner]}, "spec": spec}


def test_drain_honours_the_budget_and_uncordon_restores(
    kubectl: Callable[..., proc.Result], apiserver: ApiServer, request: pytest.FixtureRequest
) -> None:
    suffix = request.node.callspec.id.replace(".", "-")
    node, ns = f"drain-{suffix}", f"drain-{suffix}"
    call = apiserver.request
    try:
        code, created = call("POST", "/api/v1/nodes", {"metadata": {"name": node}})
        assert code == 201, created
        created["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        assert call("PUT", f"/api/v1/nodes/{node}/status", created)[0] == 200
        assert call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
        for name, where in (("web-a", node), ("web-b", node), ("web-c", None)):
            code, created = call("POST", f"/api/v1/namespaces/{ns}/pods", owned_pod(name, where))
            assert code == 201, created
            ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
            path = f"/api/v1/namespaces/{ns}/pods/{name}/status"
            assert call("PATCH", path, ready, content_type="application/merge-patch+json")[0] == 200
        budget = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        }
        assert call("POST", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", budget)[0] == 201
        with control_plane(apiserver, node):

            def allowed() -> bool:
                got = call("GET", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/web")[1]
                return bool(got.get("status", {}).get("disruptionsAllowed") == 1)

            wait_until(allowed, "the budget's status (one disruption allowed)")
            blocked = kubectl("drain", node, "--timeout=12s", check=False)
            output = blocked.stdout + blocked.stderr
            assert blocked.returncode != 0, output
            assert "Cannot evict pod as it would violate the pod's disruption budget." in output, output
            assert re.search(rf"^{node}\s+Ready,SchedulingDisabled\s", kubectl("get", "nodes").stdout, re.M)
            # The ReplicaSet's part: a replacement is Ready elsewhere, so the last pod may go.
            code, created = call("POST", f"/api/v1/namespaces/{ns}/pods", owned_pod("web-d", None))
            assert code == 201, created
            ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
            path = f"/api/v1/namespaces/{ns}/pods/web-d/status"
            assert call("PATCH", path, ready, content_type="application/merge-patch+json")[0] == 200
            drained = kubectl("drain", node, "--timeout=60s", check=False)
            assert drained.returncode == 0, drained.stdout + drained.stderr
            assert re.search(rf"^node/{node} (drained|evicted)$", drained.stdout, re.M), (
                drained.stdout
            )  # 1.20: evicted
        left = call("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")[1]["items"]
        assert left == []
        assert f"node/{node} uncordoned" in kubectl("uncordon", node).stdout
        assert re.search(rf"^{node}\s+Ready\s", kubectl("get", "nodes").stdout, re.M)
    finally:
        pods = call("GET", f"/api/v1/namespaces/{ns}/pods")[1]
        for item in pods.get("items", []) if isinstance(pods, dict) else []:
            call("DELETE", f"/api/v1/namespaces/{ns}/pods/{item['metadata']['name']}?gracePeriodSeconds=0")
        call("DELETE", f"/api/v1/namespaces/{ns}")
        call("DELETE", f"/api/v1/nodes/{node}")
