"""``kubectl rollout status|history|undo|pause|resume|restart``, ``set image`` and ``scale``.

Every kubectl generation on the machine (Debian's 1.20 and 1.27 .. 1.33) against the REAL API
server with the Deployment, ReplicaSet and garbage collector controllers running in-process and a
fake kubelet making pods Ready. ``rollout history`` and ``undo`` are client-side in kubectl: they
read the ReplicaSets' revision and change-cause annotations the controller writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.controller.deployment import DeploymentController
from nestlab.controller.gc import GarbageCollector
from nestlab.controller.replicaset import ReplicaSetController
from tests.integration.api.conftest import ApiServer, wait_until
from tests.integration.api.workloads import Harness

pytestmark = pytest.mark.integration
PREFIX = "ro-"
# Applied rather than `kubectl create deployment`: 1.33 sends that one as protobuf, which this
# server reads for core kinds only.
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: busybox, image: "busybox:1.36"}]
"""


@pytest.fixture(scope="module")
def harness(apiserver: ApiServer) -> Iterator[Harness]:
    running = Harness(apiserver, [ReplicaSetController, DeploymentController, GarbageCollector], PREFIX)
    try:
        yield running
    finally:
        running.close()


def history(kubectl: Any, ns: str) -> dict[str, str]:
    """REVISION -> CHANGE-CAUSE from ``kubectl rollout history``."""
    out = kubectl("-n", ns, "rollout", "history", "deployment/web").stdout
    rows = [line.split(None, 1) for line in out.splitlines() if re.match(r"^\d+\s", line)]
    return {row[0]: row[1].strip() if len(row) > 1 else "" for row in rows}


def test_rollout_commands(kubectl: Any, harness: Harness, apiserver: ApiServer) -> None:
    ns = PREFIX + kubectl.version.replace(".", "-")
    apps = f"/apis/apps/v1/namespaces/{ns}"

    def status(*extra: str) -> str:
        return str(kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=50s", *extra).stdout)

    def replica_sets() -> list[dict[str, Any]]:
        return list(apiserver.request("GET", f"{apps}/replicasets")[1]["items"])

    def observed() -> bool:
        deploy = apiserver.request("GET", f"{apps}/deployments/web")[1]
        return bool(deploy["status"].get("observedGeneration", 0) >= deploy["metadata"].get("generation", 0))

    kubectl("create", "namespace", ns)
    try:
        kubectl("-n", ns, "apply", "-f", "-", stdin=DEPLOYMENT)
        assert 'deployment "web" successfully rolled out' in status()

        kubectl("-n", ns, "set", "image", "deployment/web", "busybox=busybox:1.37")
        kubectl("-n", ns, "annotate", "deployment/web", "kubernetes.io/change-cause=image 1.37")
        assert 'deployment "web" successfully rolled out' in status()
        wait_until(
            lambda: history(kubectl, ns) == {"1": "<none>", "2": "image 1.37"}, "history 1, 2", timeout=30
        )

        assert "rolled back" in kubectl("-n", ns, "rollout", "undo", "deployment/web").stdout
        assert 'deployment "web" successfully rolled out' in status()
        image = kubectl(
            "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
        )
        assert image.stdout == "busybox:1.36"
        try:
            wait_until(lambda: set(history(kubectl, ns)) == {"2", "3"}, "revision 1 reused as 3", timeout=30)
        except AssertionError:
            print(
                "DEBUG",
                history(kubectl, ns),
                [
                    (r["metadata"]["name"], r["metadata"].get("annotations"), r["spec"]["replicas"])
                    for r in replica_sets()
                ],
            )
            raise
        reused = next(
            rs
            for rs in replica_sets()
            if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
        )
        assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"

        kubectl("-n", ns, "rollout", "pause", "deployment/web")
        kubectl("-n", ns, "set", "image", "deployment/web", "busybox=busybox:1.38")
        wait_until(observed, "paused deployment observed", timeout=30)
        deploy = apiserver.request("GET", f"{apps}/deployments/web")[1]
        progressing = next(c for c in deploy["status"]["conditions"] if c["type"] == "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")
        assert len(replica_sets()) == 2  # no rollout while paused
        kubectl("-n", ns, "rollout", "resume", "deployment/web")
        assert 'deployment "web" successfully rolled out' in status()
        assert len(replica_sets()) == 3

        kubectl("-n", ns, "rollout", "restart", "deployment/web")
        assert 'deployment "web" successfully rolled out' in status()
        assert len(replica_sets()) == 4

        kubectl("-n", ns, "scale", "deployment/web", "--replicas=3")
        assert 'deployment "web" successfully rolled out' in status()
        ready = kubectl("-n", ns, "get", "deployment", "web", "--no-headers").stdout.split()
        assert ready[:2] == ["web", "3/3"], ready
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)
