"""The provisioner, the attacher and pvc-protection against the REAL API server and etcd and the REAL
lab datastore.

The three controllers run in-process on their informers (:class:`~nestlab.controller.manager.Term`,
as in production), talking to a real ``nestlab-datastore`` process (mutual TLS with the test CA,
the test's client certificate ``alice`` allowed) which exports volumes through the real
qemu-storage-daemon; exported URLs are opened with QEMU's real NBD client. No agent runs: pods are
created already bound to a node (``spec.nodeName``) and stay Pending, which holds their volumes as
a running pod would; deleting them with grace 0 is what an agent (or the pod GC) confirms.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.api.client import ApiClient
from nestlab.api.kinds.volumeattachment import attachment_name
from nestlab.controller import attacher, provisioner
from nestlab.controller.informer import InformerFactory
from nestlab.controller.manager import Term
from nestlab.controller.pvcprotection import PVCProtectionController
from nestlab.datastore.client import DatastoreClient
from nestlab.provision.pki import Issued
from nestlab.runtime import proc
from tests.integration.api.conftest import ApiServer, wait_until
from tests.integration.api.workloads import LoopThread, credentials
from tests.integration.datastore.conftest import Datastore, LabPki, run

pytestmark = pytest.mark.integration
NS = "volumes-it"
CORE = f"/api/v1/namespaces/{NS}"
STORAGE = "/apis/storage.k8s.io/v1"
MIB = 1024 * 1024
Obj = dict[str, Any]


class Controllers:
    """The provisioner, the attacher and pvc-protection on their own term, with one datastore client."""

    def __init__(self, apiserver: ApiServer, datastore: Datastore) -> None:
        self.thread = LoopThread()
        self.client = ApiClient(credentials(apiserver))
        self.datastore: DatastoreClient = datastore.client()
        self.informers = InformerFactory(self.client)
        factories = [
            provisioner.factory(self.datastore),
            attacher.factory(self.datastore),
            PVCProtectionController,
        ]
        self.term = Term(self.client, factories, self.informers)
        self.thread.run(self._start())

    async def _start(self) -> None:
        self.term.start()
        await self.informers.wait_synced()

    def close(self) -> None:
        try:
            self.thread.run(self.term.stop())
            self.thread.run(self.client.close())
            self.thread.run(self.datastore.close())
        finally:
            self.thread.stop()


@pytest.fixture(scope="module")
def datastore(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Datastore]:
    test_pki = apiserver.pki
    lab = LabPki(
        ca=Issued(test_pki.ca, test_pki.ca.with_suffix(".key")),
        depot=Issued(test_pki.server_cert, test_pki.server_key),
        controller=Issued(test_pki.alice_cert, test_pki.alice_key),
        node=Issued(test_pki.carol_cert, test_pki.carol_key),
    )
    service = Datastore(lab, tmp_path_factory.mktemp("volumes-it") / "datastore", allow="alice")
    try:
        service.start()
        yield service
    finally:
        service.stop()
        service.kill_exports()


@pytest.fixture(scope="module")
def controllers(apiserver: ApiServer, datastore: Datastore) -> Iterator[Controllers]:
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    for name, mode, reclaim in (
        ("ds-now", "Immediate", "Delete"),
        ("ds-keep", "Immediate", "Retain"),
    ):
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "datastore.nestlab.io",
            "volumeBindingMode": mode,
            "reclaimPolicy": reclaim,
        }
        code, answer = apiserver.request("POST", f"{STORAGE}/storageclasses", body)
        assert code in (201, 409), answer
    running = Controllers(apiserver, datastore)
    try:
        yield running
    finally:
        try:  # while pvc-protection runs: it lets the claims go once their pods are gone
            for plural in ("pods", "persistentvolumeclaims"):
                listed = apiserver.request("GET", f"{CORE}/{plural}")[1]
                for item in listed.get("items", []) if isinstance(listed, dict) else []:
                    apiserver.request(
                        "DELETE", f"{CORE}/{plural}/{item['metadata']['name']}?gracePeriodSeconds=0"
                    )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and claims_left(apiserver):
                time.sleep(0.5)
        finally:
            running.close()
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def claims_left(apiserver: ApiServer) -> bool:
    listed = apiserver.request("GET", f"{CORE}/persistentvolumeclaims")[1]
    return bool(listed.get("items")) if isinstance(listed, dict) else False


def claim(
    apiserver: ApiServer, name: str, storage_class: str | None, size: str = "20Mi", **annotations: str
) -> Obj:
    body: Obj = {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }
    if storage_class is not None:
        body["spec"]["storageClassName"] = storage_class
    code, answer = apiserver.request("POST", f"{CORE}/persistentvolumeclaims", body)
    assert code == 201, answer
    return dict(answer)


def get(apiserver: ApiServer, path: str) -> Obj | None:
    code, answer = apiserver.request("GET", path)
    if code == 404:
        return None
    assert code == 200, answer
    return dict(answer)


def bound(apiserver: ApiServer, name: str) -> Obj:
    found: list[Obj] = []

    def check() -> bool:
        current = get(apiserver, f"{CORE}/persistentvolumeclaims/{name}")
        found[:] = [current] if current else []
        return bool(current and (current.get("status") or {}).get("phase") == "Bound")

    wait_until(check, f"claim {name} Bound", timeout=60)
    return found[0]


def events(apiserver: ApiServer, name: str) -> list[tuple[str, str, str]]:
    listed = apiserver.request("GET", f"{CORE}/events")[1]
    return [
        (e["type"], e["reason"], e["message"])
        for e in listed.get("items", [])
        if e["involvedObject"]["name"] == name
    ]


def wait_event(apiserver: ApiServer, name: str, reason: str) -> str:
    messages: list[str] = []

    def check() -> bool:
        messages[:] = [m for _t, r, m in events(apiserver, name) if r == reason]
        return bool(messages)

    wait_until(check, f"{reason} event about {name}", timeout=60)
    return messages[-1]


def volumes(datastore: Datastore) -> dict[str, str]:
    """datastore volume name -> id."""

    async def go() -> dict[str, str]:
        client = datastore.client()
        try:
            return {v.name: v.id for v in await client.list_volumes()}
        finally:
            await client.close()

    return run(go())


def pod(apiserver: ApiServer, name: str, node: str, claim_name: str) -> None:
    body = {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }
    code, answer = apiserver.request("POST", f"{CORE}/pods", body)
    if code == 422 and "persistentVolumeClaim" in str(answer):
        pytest.skip(f"the API server refuses persistentVolumeClaim pod volumes yet: {answer.get('message')}")
    assert code == 201, answer


def attachments(apiserver: ApiServer, pv: str) -> list[Obj]:
    listed = apiserver.request("GET", f"{STORAGE}/volumeattachments")[1]
    return [a for a in listed.get("items", []) if a["spec"]["source"].get("persistentVolumeName") == pv]


def test_immediate_claim_is_provisioned_and_deleted(
    apiserver: ApiServer, controllers: Controllers, datastore: Datastore
) -> None:
    made = claim(apiserver, "fast", "ds-now")
    assert made["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    current = bound(apiserver, "fast")
    pv_name = f"pvc-{made['metadata']['uid']}"
    assert current["spec"]["volumeName"] == pv_name
    assert current["status"]["capacity"] == {"storage": "20Mi"}
    assert current["status"]["accessModes"] == ["ReadWriteOnce"]
    assert current["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    volume = get(apiserver, f"/api/v1/persistentvolumes/{pv_name}")
    assert volume is not None
    spec = volume["spec"]
    assert spec["csi"]["driver"] == "datastore.nestlab.io"
    assert spec["csi"]["fsType"] == "ext4"
    assert volumes(datastore)[pv_name] == spec["csi"]["volumeHandle"]
    assert spec["claimRef"]["uid"] == made["metadata"]["uid"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["storageClassName"] == "ds-now"
    assert spec["capacity"] == {"storage": "20Mi"}
    assert volume["status"]["phase"] == "Bound"
    assert 'provisioning volume for claim "volumes-it/fast"' in wait_event(apiserver, "fast", "Provisioning")
    assert (
        wait_event(apiserver, "fast", "ProvisioningSucceeded") == f"Successfully provisioned volume {pv_name}"
    )

    assert apiserver.request("DELETE", f"{CORE}/persistentvolumeclaims/fast")[0] == 200
    wait_until(
        lambda: get(apiserver, f"/api/v1/persistentvolumes/{pv_name}") is None, "the PV deleted", timeout=60
    )
    assert pv_name not in volumes(datastore)


def test_retain_keeps_volume_released(
    apiserver: ApiServer, controllers: Controllers, datastore: Datastore
) -> None:
    made = claim(apiserver, "kept", "ds-keep")
    bound(apiserver, "kept")
    pv_name = f"pvc-{made['metadata']['uid']}"
    assert apiserver.request("DELETE", f"{CORE}/persistentvolumeclaims/kept")[0] == 200

    def released() -> bool:
        volume = get(apiserver, f"/api/v1/persistentvolumes/{pv_name}")
        return bool(volume and volume["status"].get("phase") == "Released")

    wait_until(released, "the PV Released", timeout=60)
    assert pv_name in volumes(datastore)
    # an admin removes a retained volume by hand: the PV, then the datastore volume
    assert apiserver.request("DELETE", f"/api/v1/persistentvolumes/{pv_name}")[0] == 200

    volume_id = volumes(datastore)[pv_name]

    async def remove() -> bool:
        client = datastore.client()
        try:
            return await client.delete_volume(volume_id)
        finally:
            await client.close()

    assert asyncio.run(remove()) is True


def test_missing_class_keeps_claim_pending(apiserver: ApiServer, controllers: Controllers) -> None:
    claim(apiserver, "lost", "no-such-class")
    message = wait_event(apiserver, "lost", "ProvisioningFailed")
    assert message == 'storageclass.storage.k8s.io "no-such-class" not found'
    current = get(apiserver, f"{CORE}/persistentvolumeclaims/lost")
    assert current is not None
    assert current["status"]["phase"] == "Pending"
    assert ("Warning", "ProvisioningFailed", message) in events(apiserver, "lost")


def test_wait_for_first_consumer(apiserver: ApiServer, controllers: Controllers) -> None:
    claim(apiserver, "later", "datastore")
    assert wait_event(apiserver, "later", "WaitForFirstConsumer") == (
        "waiting for first consumer to be created before binding"
    )
    current = get(apiserver, f"{CORE}/persistentvolumeclaims/later")
    assert current is not None
    assert current["status"]["phase"] == "Pending"
    patch = {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "esx-01"}}}
    code, answer = apiserver.request(
        "PATCH", f"{CORE}/persistentvolumeclaims/later", patch, content_type="application/merge-patch+json"
    )
    assert code == 200, answer.get("message") if isinstance(answer, dict) else answer
    assert bound(apiserver, "later")["spec"]["volumeName"].startswith("pvc-")


def test_claim_annotated_at_creation_is_provisioned(apiserver: ApiServer, controllers: Controllers) -> None:
    claim(apiserver, "chosen", "datastore", **{"volume.kubernetes.io/selected-node": "esx-01"})
    assert bound(apiserver, "chosen")["spec"]["volumeName"].startswith("pvc-")
    assert not [r for _t, r, _m in events(apiserver, "chosen") if r == "WaitForFirstConsumer"]


def test_attach_one_node_at_a_time(
    apiserver: ApiServer, controllers: Controllers, datastore: Datastore
) -> None:
    made = claim(apiserver, "shared", "ds-now")
    bound(apiserver, "shared")
    pv_name = f"pvc-{made['metadata']['uid']}"
    pod(apiserver, "first", "esx-01", "shared")
    found: list[Obj] = []

    def attached_to(node: str) -> bool:
        found[:] = attachments(apiserver, pv_name)
        return [(a["spec"]["nodeName"], (a.get("status") or {}).get("attached")) for a in found] == [
            (node, True)
        ]

    wait_until(lambda: attached_to("esx-01"), "attached to esx-01", timeout=60)
    first = found[0]
    volume = get(apiserver, f"/api/v1/persistentvolumes/{pv_name}")
    assert volume is not None
    assert first["metadata"]["name"] == attachment_name(volume["spec"]["csi"]["volumeHandle"], "esx-01")
    assert first["spec"]["attacher"] == "datastore.nestlab.io"
    url = first["status"]["attachmentMetadata"]["nbd"]
    assert (
        f'"virtual-size": {20 * MIB}'
        in proc.run(["qemu-img", "info", "--output=json", url], timeout=60).stdout
    )
    assert wait_event(apiserver, "first", "SuccessfulAttachVolume").startswith(
        f'AttachVolume.Attach succeeded for volume "{pv_name}"'
    )

    pod(apiserver, "second", "esx-02", "shared")
    message = wait_event(apiserver, "second", "FailedAttachVolume")
    assert message == f'Multi-Attach error for volume "{pv_name}" Volume is already used by pod(s) first'
    assert [a["spec"]["nodeName"] for a in attachments(apiserver, pv_name)] == ["esx-01"]

    # the first pod goes (its agent confirmed, or its node was lost and the pod GC force-deleted it)
    assert apiserver.request("DELETE", f"{CORE}/pods/first?gracePeriodSeconds=0")[0] == 200
    wait_until(lambda: attached_to("esx-02"), "moved to esx-02", timeout=60)
    moved = found[0]["status"]["attachmentMetadata"]["nbd"]
    assert moved != url
    assert "virtual-size" in proc.run(["qemu-img", "info", "--output=json", moved], timeout=60).stdout
    with pytest.raises(proc.ProcessError):
        proc.run(["qemu-img", "info", url], timeout=60)

    # the claim is deleted while "second" still runs: pvc-protection keeps it (Terminating), bound
    assert apiserver.request("DELETE", f"{CORE}/persistentvolumeclaims/shared")[0] == 200
    time.sleep(3)  # a few controller syncs: nothing may let the claim go while its pod exists
    terminating = get(apiserver, f"{CORE}/persistentvolumeclaims/shared")
    assert terminating is not None
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    kept = get(apiserver, f"/api/v1/persistentvolumes/{pv_name}")
    assert kept is not None
    assert kept["status"]["phase"] == "Bound"
    assert [a["spec"]["nodeName"] for a in attachments(apiserver, pv_name)] == ["esx-02"]
    assert "virtual-size" in proc.run(["qemu-img", "info", "--output=json", moved], timeout=60).stdout

    # the pod ends: the claim goes, the volume is detached, then the Delete policy removes the PV
    # and the datastore volume
    assert apiserver.request("DELETE", f"{CORE}/pods/second?gracePeriodSeconds=0")[0] == 200
    wait_until(
        lambda: get(apiserver, f"{CORE}/persistentvolumeclaims/shared") is None, "the claim gone", timeout=60
    )
    wait_until(lambda: not attachments(apiserver, pv_name), "detached", timeout=60)
    wait_until(
        lambda: get(apiserver, f"/api/v1/persistentvolumes/{pv_name}") is None, "the PV deleted", timeout=60
    )
    assert pv_name not in volumes(datastore)


def test_one_pod_vm_at_a_time_on_one_node(
    apiserver: ApiServer, controllers: Controllers, datastore: Datastore
) -> None:
    """Two pods of one node, one ReadWriteOnce claim: the attachment serves the first pod's VM only
    (``podUID``; the export takes one NBD connection), the second gets the Multi-Attach Event, then
    the volume, without a detach, once the first is gone."""
    made = claim(apiserver, "duo", "ds-now")
    bound(apiserver, "duo")
    pv_name = f"pvc-{made['metadata']['uid']}"
    pod(apiserver, "one", "esx-03", "duo")
    first = get(apiserver, f"{CORE}/pods/one")
    assert first is not None
    found: list[Obj] = []

    def serving(uid: str) -> bool:
        found[:] = attachments(apiserver, pv_name)
        return [
            (a["spec"]["nodeName"], ((a.get("status") or {}).get("attachmentMetadata") or {}).get("podUID"))
            for a in found
        ] == [("esx-03", uid)]

    wait_until(lambda: serving(first["metadata"]["uid"]), "attached for pod one", timeout=60)
    url = found[0]["status"]["attachmentMetadata"]["nbd"]

    pod(apiserver, "two", "esx-03", "duo")
    second = get(apiserver, f"{CORE}/pods/two")
    assert second is not None
    assert wait_event(apiserver, "two", "FailedAttachVolume") == (
        f'Multi-Attach error for volume "{pv_name}" Volume is already used by pod(s) one; a vSphere Pod '
        "is its own VM, and a ReadWriteOnce volume attaches to one VM at a time"
    )
    assert serving(first["metadata"]["uid"])

    assert apiserver.request("DELETE", f"{CORE}/pods/one?gracePeriodSeconds=0")[0] == 200
    wait_until(lambda: serving(second["metadata"]["uid"]), "handed to pod two", timeout=60)
    assert found[0]["status"]["attachmentMetadata"]["nbd"] == url  # same export: no detach
    assert wait_event(apiserver, "two", "SuccessfulAttachVolume").startswith(
        f'AttachVolume.Attach succeeded for volume "{pv_name}"'
    )
