"""ConfigMaps and Secrets reaching a pod: the REAL agent, API server (etcd), registry and pod VM (TCG).

One pod, one boot: a volume naming a ConfigMap that does not exist yet keeps it Pending with
upstream's FailedMount Event; once it exists the pod runs with a ConfigMap as env and as files and
a Secret mounted 0400 (``-r--------``); then the ConfigMap changes and the running pod's file
follows (the agent re-reads it and pod-init swaps the generation), while the env keeps its value.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nestlab.images import oci
from tests.integration.agent.conftest import NODE, AgentProcess, Registry, push_image, wait_until
from tests.integration.agent.test_agent import (
    BOOT_S,
    NS,
    _delete_and_wait_gone,
    _events,
    _logs,
    _wait_phase,
    namespace,
)
from tests.integration.api.conftest import ApiServer

pytestmark = pytest.mark.integration
__all__ = ["namespace"]  # the fixture
SCRIPT = (
    'echo "ENV $COLOR"; ls -lL /etc/db/password; echo "LATE $(cat /etc/late/k)"; last=;'
    ' while true; do cur=$(cat /etc/app/color); busybox test "$cur" = "$last" || echo "FILE $cur";'
    " last=$cur; sleep 0.5; done"
)


def _post(apiserver: ApiServer, plural: str, obj: dict[str, Any]) -> None:
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{NS}/{plural}", obj)
    assert code == 201, body


def _says(agent: AgentProcess, apiserver: ApiServer, line: str) -> bool:
    return line in _logs(agent, apiserver, "cfg").splitlines()


def test_configmap_and_secret_as_env_files_and_a_live_update(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, registry: Registry, busybox_root: Any
) -> None:
    push_image(registry, "demo/busybox", ["1"], busybox_root, oci.Recipe(cmd=("sh",)))
    _post(apiserver, "configmaps", {"metadata": {"name": "app"}, "data": {"color": "blue"}})
    _post(
        apiserver,
        "secrets",
        {"metadata": {"name": "db"}, "data": {"password": base64.b64encode(b"s3cret").decode()}},
    )
    container = {
        "name": "main",
        "image": "demo/busybox:1",
        "command": ["sh", "-c", SCRIPT],
        "env": [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "color"}}}],
        "volumeMounts": [
            {"name": "app", "mountPath": "/etc/app"},
            {"name": "db", "mountPath": "/etc/db", "readOnly": True},
            {"name": "late", "mountPath": "/etc/late"},
        ],
    }
    pod = {
        "metadata": {"name": "cfg", "namespace": NS},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [container],
            "volumes": [
                {"name": "app", "configMap": {"name": "app"}},
                {"name": "db", "secret": {"secretName": "db", "defaultMode": 0o400}},
                {"name": "late", "configMap": {"name": "late"}},
            ],
        },
    }
    _post(apiserver, "pods", pod)
    expected = 'MountVolume.SetUp failed for volume "late" : configmap "late" not found'
    wait_until(
        lambda: any(
            e["reason"] == "FailedMount" and e["message"] == expected for e in _events(apiserver, "cfg")
        ),
        "FailedMount Event",
        timeout=BOOT_S,
    )
    assert apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/cfg")[1]["status"]["phase"] == "Pending"

    _post(apiserver, "configmaps", {"metadata": {"name": "late"}, "data": {"k": "here"}})
    _wait_phase(apiserver, "cfg", ("Running",))
    wait_until(lambda: _says(node_agent, apiserver, "FILE blue"), "the ConfigMap's file", timeout=BOOT_S)
    lines = _logs(node_agent, apiserver, "cfg").splitlines()
    assert lines[0] == "ENV blue"
    assert lines[1].startswith("-r-------- "), lines[1]
    assert lines[2] == "LATE here"

    patch = {"data": {"color": "green"}}
    code, body = apiserver.request(
        "PATCH", f"/api/v1/namespaces/{NS}/configmaps/app", patch, content_type="application/merge-patch+json"
    )
    assert code == 200, body
    wait_until(
        lambda: _says(node_agent, apiserver, "FILE green"), "the updated file in the pod", timeout=BOOT_S
    )
    assert "ENV green" not in _logs(node_agent, apiserver, "cfg")
    _delete_and_wait_gone(apiserver, "cfg")
