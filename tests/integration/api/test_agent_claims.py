"""The node agent's view of a pod's claims against the REAL API server (and etcd): as the node identity
(``system:node:esx-07``) it reads the claim, its PersistentVolume and the VolumeAttachment named for
it (:func:`nestlab.agent.pvsources.fetch`; the Node authorizer refuses it any listing of them) and
gets the kubelet's waiting reasons until the volume is attached to it, then the block volume with
the NBD URL the attacher recorded. Another node's attachment of the volume is no attachment here.

No controller runs: the test writes what the provisioner and the attacher would (a pre-bound claim,
its volume, the attachment and its status) through the same endpoints.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.agent import podspec, pvattach, pvsources
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.kinds.volumeattachment import attachment_name
from nestlab.runtime.poddesc import Volume
from tests.integration.api.conftest import NODE_TOKEN, ApiServer

pytestmark = pytest.mark.integration
NS = "claims-it"
NODE = "esx-07"  # the test API server's node identity
PV = "pvc-claims-it"
URL = "nbd://198.18.0.9:10809/Zq3kT0ken"
HANDLE = "vol-claims-it"
MINE = attachment_name(HANDLE, NODE)
THEIRS = attachment_name(HANDLE, "esx-08")
STORAGE = "/apis/storage.k8s.io/v1"
Obj = dict[str, Any]


def created(apiserver: ApiServer, path: str, body: Obj) -> Obj:
    code, answer = apiserver.request("POST", path, body)
    assert code == 201, answer
    return dict(answer)


def replaced(apiserver: ApiServer, path: str, body: Obj) -> Obj:
    code, answer = apiserver.request("PUT", path, body)
    assert code == 200, answer
    return dict(answer)


def node_view(apiserver: ApiServer, pod: Obj) -> tuple[Volume, ...] | str:
    """The block volumes the node agent forms for ``pod``, or the message it waits with."""

    async def go() -> tuple[Volume, ...] | str:
        client = ApiClient(Credentials(apiserver.url, apiserver.pki.ca, NODE_TOKEN))
        try:
            return podspec.claim_volumes(pod, NODE, await pvsources.fetch(client, pod))
        except podspec.WaitingForMount as exc:
            return f"{exc.reason}: {exc}"
        finally:
            await client.close()

    return asyncio.run(go())


def test_the_node_waits_for_the_claim_and_the_attachment_then_gets_the_volume(apiserver: ApiServer) -> None:
    code, answer = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    assert code in (201, 409), answer
    pod: Obj = {
        "metadata": {"namespace": NS, "name": "web-0"},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}],
        },
    }
    # The node may read a claim only when a pod bound to it names it (the Node authorizer).
    apiserver.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "default"}})
    created(apiserver, f"/api/v1/namespaces/{NS}/pods", pod)
    assert "failed to fetch PVC from API server" in str(node_view(apiserver, pod))

    claim = created(
        apiserver,
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
        {
            "metadata": {"name": "data-web-0"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "20Mi"}},
                "storageClassName": "",
                "volumeName": PV,
            },
        },
    )
    assert str(node_view(apiserver, pod)).endswith(
        "error processing PVC claims-it/data-web-0: PVC is not bound"
    )

    volume = {
        "metadata": {"name": PV},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "20Mi"},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": NS, "name": "data-web-0", "uid": claim["metadata"]["uid"]},
            "csi": {"driver": "datastore.nestlab.io", "volumeHandle": HANDLE, "fsType": "ext4"},
        },
    }
    created(apiserver, "/api/v1/persistentvolumes", volume)
    claim_path = f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-web-0"
    current = dict(apiserver.request("GET", claim_path)[1])
    current["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "20Mi"}}
    replaced(apiserver, f"{claim_path}/status", current)
    waiting = str(node_view(apiserver, pod))
    assert waiting.startswith("FailedMount: Unable to attach or mount volumes: unmounted volumes=[data], ")
    assert f'volume "{PV}" is not attached to node "{NODE}" yet' in waiting

    def attachment(name: str, node: str) -> Obj:
        spec = {"attacher": "datastore.nestlab.io", "nodeName": node, "source": {"persistentVolumeName": PV}}
        return created(apiserver, f"{STORAGE}/volumeattachments", {"metadata": {"name": name}, "spec": spec})

    # attached to another node (under that node's name): not this node's, and not readable by it
    theirs = attachment(THEIRS, "esx-08")
    theirs["status"] = {"attached": True, "attachmentMetadata": {"nbd": URL}}
    replaced(apiserver, f"{STORAGE}/volumeattachments/{THEIRS}/status", theirs)
    assert f'volume "{PV}" is not attached to node "{NODE}" yet' in str(node_view(apiserver, pod))
    apiserver.request("DELETE", f"{STORAGE}/volumeattachments/{THEIRS}")

    mine = attachment(MINE, NODE)
    assert f'volume "{PV}" is not attached' in str(node_view(apiserver, pod))
    mine["status"] = {"attached": True, "attachmentMetadata": {"nbd": URL}}
    replaced(apiserver, f"{STORAGE}/volumeattachments/{MINE}/status", mine)

    volumes = node_view(apiserver, pod)
    assert isinstance(volumes, tuple), volumes
    (block,) = volumes
    assert (block.name, block.kind, block.fs_type, block.read_only, block.source) == (
        "data",
        "block",
        "ext4",
        False,
        URL,
    )
    assert block.serial == pvattach.serial_of(volume)
    pod_path = f"/api/v1/namespaces/{NS}/pods/web-0?gracePeriodSeconds=0"
    for path in (
        pod_path,
        f"{STORAGE}/volumeattachments/{MINE}",
        f"/api/v1/persistentvolumes/{PV}",
        claim_path,
    ):
        apiserver.request("DELETE", path)
    apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")
