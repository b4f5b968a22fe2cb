"""The provisioner: PV shape (pure) and its syncs over a fake API and a fake datastore."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api.resources import (
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    STORAGECLASSES,
    VOLUMEATTACHMENTS,
)
from nestlab.controller.provisioner import (
    NO_DATASTORE,
    ProvisionerController,
    persistent_volume,
    requested_bytes,
)
from nestlab.datastore.errors import DatastoreFullError
from tests.unit.controller.volumefakes import FakeApi, FakeDatastore, drain

Obj = dict[str, Any]
MIB = 1024 * 1024


def storage_class(name: str, mode: str = "Immediate", reclaim: str = "Delete") -> Obj:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "provisioner": "datastore.nestlab.io",
        "volumeBindingMode": mode,
        "reclaimPolicy": reclaim,
    }


def claim(name: str, class_name: str = "fast", size: str = "1Gi", **annotations: str) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "demo", "uid": f"u-{name}", "annotations": annotations},
        "spec": {
            "storageClassName": class_name,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        },
        "status": {"phase": "Pending"},
    }


class Setup:
    def __init__(self, datastore: FakeDatastore | None = None, with_datastore: bool = True) -> None:
        self.api = FakeApi()
        self.datastore = datastore or FakeDatastore()
        self.controller = ProvisionerController(
            self.api.client(), self.api.informers, self.datastore if with_datastore else None
        )
        for made in (
            storage_class("fast"),
            storage_class("keep", reclaim="Retain"),
            storage_class("later", "WaitForFirstConsumer"),
        ):
            self.api.informers.informer(STORAGECLASSES).apply("ADDED", made)

    def add_claim(self, obj: Obj) -> None:
        self.api.informers.informer(PERSISTENTVOLUMECLAIMS).apply("ADDED", obj)

    async def drain(self) -> None:
        await drain(self.controller)

    def claim(self, name: str) -> Obj:
        found = self.api.informers.informer(PERSISTENTVOLUMECLAIMS).get(f"demo/{name}")
        assert found is not None
        return found

    def volume(self, name: str) -> Obj | None:
        return self.api.informers.informer(PERSISTENTVOLUMES).get(name)


def test_requested_bytes_round_up_to_mib() -> None:
    assert requested_bytes(claim("a", size="1Gi")) == 1024 * MIB
    assert requested_bytes(claim("a", size="1G")) == 954 * MIB  # 10^9 bytes -> 953.67 MiB -> 954
    assert requested_bytes(claim("a", size="1")) == MIB


def test_pv_shape() -> None:
    volume = persistent_volume(claim("data"), storage_class("keep", reclaim="Retain"), "vol-1", 1024 * MIB)
    assert volume["metadata"] == {
        "name": "pvc-u-data",
        "annotations": {"pv.kubernetes.io/provisioned-by": "datastore.nestlab.io"},
    }
    spec = volume["spec"]
    assert spec["csi"] == {"driver": "datastore.nestlab.io", "volumeHandle": "vol-1", "fsType": "ext4"}
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["storageClassName"] == "keep"
    assert spec["claimRef"]["uid"] == "u-data"
    assert spec["claimRef"]["kind"] == "PersistentVolumeClaim"


def test_immediate_claim_is_provisioned_and_bound() -> None:
    async def scenario() -> None:
        s = Setup()
        s.add_claim(claim("data"))
        await s.drain()
        bound = s.claim("data")
        assert bound["spec"]["volumeName"] == "pvc-u-data"
        assert bound["status"] == {
            "phase": "Bound",
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
        }
        assert (
            bound["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"]
            == "datastore.nestlab.io"
        )
        volume = s.volume("pvc-u-data")
        assert volume is not None
        assert volume["status"] == {"phase": "Bound"}
        assert [v.name for v in s.datastore.volumes.values()] == ["pvc-u-data"]
        assert s.api.reasons("data") == [
            ("Provisioning", 'External provisioner is provisioning volume for claim "demo/data"'),
            ("ProvisioningSucceeded", "Successfully provisioned volume pvc-u-data"),
        ]

    asyncio.run(scenario())


def test_wait_for_first_consumer_until_a_node_is_selected() -> None:
    async def scenario() -> None:
        s = Setup()
        s.add_claim(claim("data", "later"))
        await s.drain()
        s.controller.queue.add("claim:demo/data")
        await s.drain()
        assert s.datastore.volumes == {}
        assert s.api.reasons("data") == [
            ("WaitForFirstConsumer", "waiting for first consumer to be created before binding")
        ]
        s.api.informers.informer(PERSISTENTVOLUMECLAIMS).apply(
            "MODIFIED", claim("data", "later", **{"volume.kubernetes.io/selected-node": "esx-01"})
        )
        await s.drain()
        assert s.claim("data")["status"]["phase"] == "Bound"

    asyncio.run(scenario())


def test_a_missing_class_is_reported_once_and_a_new_class_wakes_the_claim() -> None:
    async def scenario() -> None:
        s = Setup()
        s.add_claim(claim("data", "gold"))
        await s.drain()
        s.controller.queue.add("claim:demo/data")
        await s.drain()
        assert s.api.reasons("data") == [
            ("ProvisioningFailed", 'storageclass.storage.k8s.io "gold" not found')
        ]
        assert s.api.events[0]["source"]["component"] == "persistentvolume-controller"
        assert s.api.events[0]["type"] == "Warning"
        s.api.informers.informer(STORAGECLASSES).apply("ADDED", storage_class("gold"))
        await s.drain()
        assert s.claim("data")["status"]["phase"] == "Bound"

    asyncio.run(scenario())


def test_other_provisioners_and_classless_claims_are_left_alone() -> None:
    async def scenario() -> None:
        s = Setup()
        other = storage_class("ebs")
        other["provisioner"] = "ebs.csi.aws.com"
        s.api.informers.informer(STORAGECLASSES).apply("ADDED", other)
        s.add_claim(claim("theirs", "ebs"))
        s.add_claim(claim("none", ""))
        await s.drain()
        assert s.api.events == []
        assert s.datastore.calls == []

    asyncio.run(scenario())


def test_datastore_failures_are_events_and_retried() -> None:
    async def scenario() -> None:
        datastore = FakeDatastore()
        datastore.failing = DatastoreFullError("no room on the depot")
        s = Setup(datastore)
        s.add_claim(claim("data"))
        with pytest.raises(DatastoreFullError):
            await s.drain()
        assert s.api.reasons("data")[-1] == (
            "ProvisioningFailed",
            'failed to provision volume with StorageClass "fast": no room on the depot',
        )
        assert s.volume("pvc-u-data") is None

        bare = Setup(with_datastore=False)
        bare.add_claim(claim("data"))
        await bare.drain()
        assert bare.api.reasons("data") == [
            ("ProvisioningFailed", f'failed to provision volume with StorageClass "fast": {NO_DATASTORE}')
        ]

    asyncio.run(scenario())


def test_an_interrupted_provisioning_finishes_without_a_second_volume() -> None:
    async def scenario() -> None:
        s = Setup()
        info = await s.datastore.create_volume("pvc-u-data", 1024 * MIB)
        made = persistent_volume(claim("data"), storage_class("fast"), info.id, info.size_bytes)
        s.api.informers.informer(PERSISTENTVOLUMES).apply("ADDED", made)  # crash before the bind
        s.add_claim(claim("data"))
        await s.drain()
        assert s.claim("data")["status"]["phase"] == "Bound"
        assert len(s.datastore.volumes) == 1

    asyncio.run(scenario())


def test_reclaim_delete_waits_for_detach_then_removes_both() -> None:
    async def scenario() -> None:
        s = Setup()
        s.add_claim(claim("data"))
        await s.drain()
        va = {
            "metadata": {"name": "csi-1", "uid": "va-1"},
            "spec": {
                "attacher": "datastore.nestlab.io",
                "nodeName": "esx-01",
                "source": {"persistentVolumeName": "pvc-u-data"},
            },
        }
        s.api.informers.informer(VOLUMEATTACHMENTS).apply("ADDED", va)
        s.api.informers.informer(PERSISTENTVOLUMECLAIMS).apply("DELETED", s.claim("data"))
        await s.drain()
        volume = s.volume("pvc-u-data")
        assert volume is not None
        assert volume["status"]["phase"] == "Released"
        assert s.api.reasons("pvc-u-data") == [
            ("VolumeFailedDelete", "persistentvolume pvc-u-data is still attached to node esx-01")
        ]
        assert s.api.events[-1]["metadata"]["namespace"] == "default"  # a PV's Events, as upstream files them
        assert s.api.events[-1]["involvedObject"]["namespace"] == ""
        assert len(s.datastore.volumes) == 1
        s.api.informers.informer(VOLUMEATTACHMENTS).apply("DELETED", va)  # the attacher detached
        await s.drain()
        assert s.volume("pvc-u-data") is None
        assert s.datastore.volumes == {}

    asyncio.run(scenario())


def test_reclaim_retain_keeps_volume_released() -> None:
    async def scenario() -> None:
        s = Setup()
        s.add_claim(claim("data", "keep"))
        await s.drain()
        s.api.informers.informer(PERSISTENTVOLUMECLAIMS).apply("DELETED", s.claim("data"))
        await s.drain()
        volume = s.volume("pvc-u-data")
        assert volume is not None
        assert volume["status"]["phase"] == "Released"
        assert len(s.datastore.volumes) == 1
        # a new claim of the same name (another uid) does not get the released volume back
        s.add_claim(
            dict(claim("data", "keep"), metadata={"name": "data", "namespace": "demo", "uid": "u-new"})
        )
        await s.drain()
        assert s.claim("data")["spec"]["volumeName"] == "pvc-u-new"
        released = s.volume("pvc-u-data")
        assert released is not None
        assert released["status"]["phase"] == "Released"

    asyncio.run(scenario())
