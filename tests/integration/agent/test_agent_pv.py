"""A PersistentVolumeClaim reaching a pod: the REAL agent, API server (etcd), registry, pod VM (TCG)
and a REAL qemu-storage-daemon exporting an ext4 volume over NBD.

The test plays the provisioner and the attacher (no controller runs): a claim pre-bound to its
PersistentVolume, then a VolumeAttachment to this node whose status carries the export's URL. Until
it is attached the pod stays Pending with the kubelet's FailedMount Event; then the agent gives the
VM the disk, the pod writes a file and succeeds; a second pod of the same claim, ``readOnly``, reads
it back and cannot write.
"""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api.kinds.volumeattachment import attachment_name
from tests.integration.agent.conftest import NODE, AgentProcess, wait_until
from tests.integration.agent.test_agent import (
    BOOT_S,
    NS,
    _delete_and_wait_gone,
    _events,
    _logs,
    _pod,
    _wait_phase,
    busybox_image,
    namespace,
)
from tests.integration.api.conftest import ApiServer
from tests.integration.runtime.test_pod_pv import Export, export

pytestmark = pytest.mark.integration
__all__ = ["busybox_image", "export", "namespace"]  # the fixtures
PV = "pvc-agent-it"
CLAIM = f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data"
HANDLE = "vol-agent-it"
ATTACHMENT_NAME = attachment_name(HANDLE, NODE)  # the agent GETs it by this name only
ATTACHMENT = f"/apis/storage.k8s.io/v1/volumeattachments/{ATTACHMENT_NAME}"
WRITE = "busybox grep ' /data ' /proc/mounts; echo kept-by-the-datastore > /data/msg; busybox sync"
READ = "echo read $(cat /data/msg); busybox touch /data/new 2>/dev/null && echo writable || echo read-only"


def _request(apiserver: ApiServer, method: str, path: str, body: Any, expected: int) -> dict[str, Any]:
    code, answer = apiserver.request(method, path, body)
    assert code == expected, answer
    return dict(answer)


def _claim_pod(name: str, image: str, script: str, read_only: bool = False) -> dict[str, Any]:
    pod = _pod(name, image, ["sh", "-c", script], volumeMounts=[{"name": "data", "mountPath": "/data"}])
    source = {"claimName": "data", "readOnly": read_only}
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": source}]
    return pod


def _bound_claim(apiserver: ApiServer) -> None:
    """What the provisioner leaves: a claim Bound to a datastore volume."""
    claim = _request(
        apiserver,
        "POST",
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "64Mi"}},
                "storageClassName": "",
                "volumeName": PV,
            },
        },
        201,
    )
    volume = {
        "metadata": {"name": PV},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "64Mi"},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": NS, "name": "data", "uid": claim["metadata"]["uid"]},
            "csi": {"driver": "datastore.nestlab.io", "volumeHandle": HANDLE, "fsType": "ext4"},
        },
    }
    _request(apiserver, "POST", "/api/v1/persistentvolumes", volume, 201)
    claim = _request(apiserver, "GET", CLAIM, None, 200)
    claim["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "64Mi"}}
    _request(apiserver, "PUT", f"{CLAIM}/status", claim, 200)


def _attach(apiserver: ApiServer, url: str) -> None:
    """What the attacher leaves: the volume attached to this node, its export's URL in the status."""
    spec = {"attacher": "datastore.nestlab.io", "nodeName": NODE, "source": {"persistentVolumeName": PV}}
    body = {"metadata": {"name": ATTACHMENT_NAME}, "spec": spec}
    attachment = _request(apiserver, "POST", "/apis/storage.k8s.io/v1/volumeattachments", body, 201)
    attachment["status"] = {"attached": True, "attachmentMetadata": {"nbd": url}}
    _request(apiserver, "PUT", f"{ATTACHMENT}/status", attachment, 200)


def test_a_claim_waits_for_its_attachment_then_keeps_its_data_across_pods(
    apiserver: ApiServer, node_agent: AgentProcess, namespace: str, busybox_image: str, export: Export
) -> None:
    _bound_claim(apiserver)
    try:
        writer = _claim_pod("pv-w", busybox_image, WRITE)
        _request(apiserver, "POST", f"/api/v1/namespaces/{NS}/pods", writer, 201)
        wanted = f'volume "{PV}" is not attached to node "{NODE}" yet'
        wait_until(
            lambda: any(
                e["reason"] == "FailedMount" and wanted in e["message"] for e in _events(apiserver, "pv-w")
            ),
            "FailedMount Event while the volume is not attached",
            timeout=BOOT_S,
        )
        pending = _request(apiserver, "GET", f"/api/v1/namespaces/{NS}/pods/pv-w", None, 200)
        assert pending["status"]["phase"] == "Pending"

        _attach(apiserver, export(True))
        done = _wait_phase(apiserver, "pv-w", ("Succeeded", "Failed"))
        written = _logs(node_agent, apiserver, "pv-w").splitlines()
        assert done["status"]["phase"] == "Succeeded", written
        assert written[0].split()[1:3] == ["/data", "ext4"], written
        _delete_and_wait_gone(apiserver, "pv-w")

        reader = _claim_pod("pv-r", busybox_image, READ, read_only=True)
        _request(apiserver, "POST", f"/api/v1/namespaces/{NS}/pods", reader, 201)
        done = _wait_phase(apiserver, "pv-r", ("Succeeded", "Failed"))
        read = _logs(node_agent, apiserver, "pv-r").splitlines()
        assert read == ["read kept-by-the-datastore", "read-only"]
        assert done["status"]["phase"] == "Succeeded"
        _delete_and_wait_gone(apiserver, "pv-r")
    finally:
        # no pvc-protection controller runs here: the claim's finalizer goes with the claim
        apiserver.request(
            "PATCH", CLAIM, {"metadata": {"finalizers": None}}, content_type="application/merge-patch+json"
        )
        for path in (ATTACHMENT, f"/api/v1/persistentvolumes/{PV}", CLAIM):
            apiserver.request("DELETE", path)
