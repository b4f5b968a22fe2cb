"""The attacher: names and messages (pure) and its syncs over a fake API and a fake datastore."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from nestlab.api.kinds.volumeattachment import attachment_name
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, VOLUMEATTACHMENTS
from nestlab.controller.attacher import AttacherController, multi_attach_message, needs_volume, one_vm_message
from nestlab.datastore.errors import DatastoreUnavailableError
from tests.unit.controller.volumefakes import FakeApi, FakeDatastore, drain

Obj = dict[str, Any]
PV = "pvc-u-data"


def pod(name: str, node: str, *, namespace: str = "demo", phase: str = "Pending", created: str = "") -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"p-{name}",
            "creationTimestamp": created or name,
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        },
        "status": {"phase": phase},
    }


class Setup:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.datastore = FakeDatastore()
        self.controller = AttacherController(self.api.client(), self.api.informers, self.datastore)
        self.api.informers.informer(PERSISTENTVOLUMECLAIMS).apply(
            "ADDED",
            {
                "metadata": {"name": "data", "namespace": "demo", "uid": "u-data"},
                "spec": {"volumeName": PV},
                "status": {"phase": "Bound"},
            },
        )
        self.api.informers.informer(PERSISTENTVOLUMES).apply(
            "ADDED",
            {
                "metadata": {"name": PV, "uid": "v-1"},
                "spec": {
                    "csi": {"driver": "datastore.nestlab.io", "volumeHandle": "vol-1", "fsType": "ext4"},
                    "claimRef": {"namespace": "demo", "name": "data", "uid": "u-data"},
                },
                "status": {"phase": "Bound"},
            },
        )

    async def drain(self) -> None:
        await drain(self.controller)

    def attachments(self) -> list[tuple[str, Any, Any]]:
        return [
            (
                a["spec"]["nodeName"],
                (a.get("status") or {}).get("attached"),
                (a.get("status") or {}).get("attachmentMetadata"),
            )
            for a in self.api.informers.informer(VOLUMEATTACHMENTS).list()
        ]


def test_attachment_name_is_upstreams() -> None:
    name = attachment_name("vol-1", "esx-01")
    assert name == "csi-" + hashlib.sha256(b"vol-1datastore.nestlab.ioesx-01").hexdigest()
    assert len(name) == 68


def test_multi_attach_messages() -> None:
    waiting = pod("b", "esx-02")
    assert multi_attach_message(PV, waiting, [pod("a", "esx-01")]) == (
        f'Multi-Attach error for volume "{PV}" Volume is already used by pod(s) a'
    )
    others = [pod("a", "esx-01"), pod("x", "esx-01", namespace="other")]
    assert multi_attach_message(PV, waiting, others).endswith(
        "used by pod(s) a and 1 pod(s) in different namespaces"
    )
    assert multi_attach_message(PV, waiting, others[1:]).endswith("used by 1 pod(s) in different namespaces")
    assert multi_attach_message(PV, waiting, []).endswith(
        "Volume is already exclusively attached to one node and can't be attached to another"
    )


def test_terminated_and_unbound_pods_hold_nothing() -> None:
    assert needs_volume(pod("a", "esx-01"))
    assert needs_volume(pod("a", "esx-01", phase="Running"))
    assert not needs_volume(pod("a", "esx-01", phase="Succeeded"))
    assert not needs_volume(pod("a", "esx-01", phase="Failed"))
    assert not needs_volume(pod("a", ""))


def test_a_failed_pod_whose_container_still_runs_keeps_its_volume() -> None:
    """Failed at its deadline, killed after: its VM may still write until the agent reports no
    container running (which it does once the VM ended)."""
    killing = pod("a", "esx-01", phase="Failed")
    killing["status"]["containerStatuses"] = [{"name": "c", "state": {"running": {"startedAt": "t"}}}]
    assert needs_volume(killing)
    killing["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 137}}
    assert not needs_volume(killing)
    killing["status"]["initContainerStatuses"] = [{"name": "i", "state": {"running": {}}}]
    assert needs_volume(killing)


def test_one_node_at_a_time_and_the_waiting_node_follows() -> None:
    async def scenario() -> None:
        s = Setup()
        pods = s.api.informers.informer(PODS)
        pods.apply("ADDED", pod("a", "esx-01"))
        await s.drain()
        url = "nbd://198.18.0.5:10809/vol-1-esx-01"
        assert s.attachments() == [("esx-01", True, {"nbd": url, "podUID": "p-a"})]
        va = s.api.informers.informer(VOLUMEATTACHMENTS).list()[0]
        assert va["metadata"]["name"] == attachment_name("vol-1", "esx-01")
        assert va["spec"] == {
            "attacher": "datastore.nestlab.io",
            "nodeName": "esx-01",
            "source": {"persistentVolumeName": PV},
        }
        assert s.api.reasons("a") == [
            ("SuccessfulAttachVolume", f'AttachVolume.Attach succeeded for volume "{PV}" ')
        ]

        pods.apply("ADDED", pod("b", "esx-02"))
        await s.drain()
        assert s.attachments() == [("esx-01", True, {"nbd": url, "podUID": "p-a"})]
        assert s.datastore.attached == {"vol-1": "esx-01"}
        assert s.api.reasons("b") == [
            ("FailedAttachVolume", f'Multi-Attach error for volume "{PV}" Volume is already used by pod(s) a')
        ]
        s.controller.queue.add(PV)
        await s.drain()
        assert len(s.api.reasons("b")) == 1  # told once

        pods.apply("DELETED", pod("a", "esx-01"))  # confirmed gone (agent, or pod GC after a node loss)
        await s.drain()
        assert s.attachments() == [
            ("esx-02", True, {"nbd": "nbd://198.18.0.5:10809/vol-1-esx-02", "podUID": "p-b"})
        ]
        assert ("detach", "vol-1") in s.datastore.calls
        assert s.datastore.calls.index(("detach", "vol-1")) < s.datastore.calls.index(
            ("attach", "vol-1", "esx-02")
        )

        pods.apply("MODIFIED", pod("b", "esx-02", phase="Succeeded"))
        await s.drain()
        assert s.attachments() == []
        assert s.datastore.attached == {}

    asyncio.run(scenario())


def test_a_deleting_pod_still_holds_its_volume() -> None:
    async def scenario() -> None:
        s = Setup()
        going = pod("a", "esx-01")
        going["metadata"]["deletionTimestamp"] = "2026-12-05T10:00:00Z"
        s.api.informers.informer(PODS).apply("ADDED", going)
        s.api.informers.informer(PODS).apply("ADDED", pod("b", "esx-02"))
        await s.drain()
        assert [n for n, _a, _m in s.attachments()] == ["esx-01"]

    asyncio.run(scenario())


def test_attach_failures_are_in_the_status_and_events() -> None:
    async def scenario() -> None:
        s = Setup()
        s.datastore.failing = DatastoreUnavailableError("datastore https://depot:9443 unreachable")
        s.api.informers.informer(PODS).apply("ADDED", pod("a", "esx-01"))
        with pytest.raises(DatastoreUnavailableError):
            await s.drain()
        va = s.api.informers.informer(VOLUMEATTACHMENTS).list()[0]
        assert va["status"]["attached"] is False
        assert va["status"]["attachError"]["message"] == "datastore https://depot:9443 unreachable"
        assert s.api.reasons("a") == [
            (
                "FailedAttachVolume",
                f'AttachVolume.Attach failed for volume "{PV}" : datastore https://depot:9443 unreachable',
            )
        ]
        s.datastore.failing = None
        await s.controller.sync(PV)
        assert s.attachments() == [
            ("esx-01", True, {"nbd": "nbd://198.18.0.5:10809/vol-1-esx-01", "podUID": "p-a"})
        ]
        assert "attachError" not in s.api.informers.informer(VOLUMEATTACHMENTS).list()[0]["status"]

    asyncio.run(scenario())


def test_a_claim_bound_elsewhere_or_missing_holds_nothing() -> None:
    async def scenario() -> None:
        s = Setup()
        other = pod("a", "esx-01")
        other["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "unknown"
        s.api.informers.informer(PODS).apply("ADDED", other)
        s.controller.queue.add(PV)
        await s.drain()
        assert s.attachments() == []
        assert s.datastore.calls == []

    asyncio.run(scenario())


def test_a_claim_deleted_under_a_running_pod_keeps_the_volume_attached() -> None:
    async def scenario() -> None:
        s = Setup()
        s.api.informers.informer(PODS).apply("ADDED", pod("a", "esx-01"))
        await s.drain()
        claims = s.api.informers.informer(PERSISTENTVOLUMECLAIMS)
        gone = claims.get("demo/data")
        assert gone is not None
        claims.apply("DELETED", gone)
        await s.drain()
        assert [n for n, _a, _m in s.attachments()] == ["esx-01"]
        s.api.informers.informer(PODS).apply("DELETED", pod("a", "esx-01"))
        await s.drain()
        assert s.attachments() == []

    asyncio.run(scenario())


def test_an_attachment_under_another_name_is_renamed_without_a_detach() -> None:
    async def scenario() -> None:
        s = Setup()
        attachments = s.api.informers.informer(VOLUMEATTACHMENTS)
        old = {
            "metadata": {"name": "va-by-hand", "uid": "va-1"},
            "spec": {
                "attacher": "datastore.nestlab.io",
                "nodeName": "esx-01",
                "source": {"persistentVolumeName": PV},
            },
            "status": {
                "attached": True,
                "attachmentMetadata": {"nbd": "nbd://198.18.0.5:10809/vol-1-esx-01"},
            },
        }
        attachments.apply("ADDED", old)
        s.datastore.attached["vol-1"] = "esx-01"
        s.api.informers.informer(PODS).apply("ADDED", pod("a", "esx-01", phase="Running"))
        await s.drain()
        names = [a["metadata"]["name"] for a in attachments.list()]
        assert names == [attachment_name("vol-1", "esx-01")]  # the node GETs it by this name
        assert s.attachments() == [
            ("esx-01", True, {"nbd": "nbd://198.18.0.5:10809/vol-1-esx-01", "podUID": "p-a"})
        ]
        assert ("detach", "vol-1") not in s.datastore.calls  # the node kept the volume throughout
        assert s.datastore.attached == {"vol-1": "esx-01"}

    asyncio.run(scenario())


ONE_VM = "a vSphere Pod is its own VM, and a ReadWriteOnce volume attaches to one VM at a time"


def test_the_one_vm_message_is_upstreams_multi_attach_then_vspheres_reason() -> None:
    assert one_vm_message(PV, pod("b", "esx-01"), pod("a", "esx-01")) == (
        f'Multi-Attach error for volume "{PV}" Volume is already used by pod(s) a; {ONE_VM}'
    )


def test_one_pod_vm_at_a_time_on_the_attached_node_too() -> None:
    """Two pods of one node and one ReadWriteOnce claim: the attachment serves the first pod's VM
    (``podUID``), the second waits with the Multi-Attach Event, then gets it without a detach."""

    async def scenario() -> None:
        s = Setup()
        pods = s.api.informers.informer(PODS)
        url = "nbd://198.18.0.5:10809/vol-1-esx-01"
        pods.apply("ADDED", pod("a", "esx-01", phase="Running"))
        await s.drain()
        pods.apply("ADDED", pod("b", "esx-01"))
        await s.drain()
        assert s.attachments() == [("esx-01", True, {"nbd": url, "podUID": "p-a"})]
        assert s.api.reasons("b") == [
            (
                "FailedAttachVolume",
                f'Multi-Attach error for volume "{PV}" Volume is already used by pod(s) a; {ONE_VM}',
            )
        ]
        assert s.api.reasons("a") == [
            ("SuccessfulAttachVolume", f'AttachVolume.Attach succeeded for volume "{PV}" ')
        ]

        going = pod("a", "esx-01", phase="Running")
        going["metadata"]["deletionTimestamp"] = "2026-12-06T10:00:00Z"
        pods.apply("MODIFIED", going)  # Terminating: its VM may still write
        await s.drain()
        assert s.attachments() == [("esx-01", True, {"nbd": url, "podUID": "p-a"})]

        pods.apply("DELETED", going)  # the agent confirmed its VM is gone
        await s.drain()
        assert s.attachments() == [("esx-01", True, {"nbd": url, "podUID": "p-b"})]
        assert ("detach", "vol-1") not in s.datastore.calls  # the node kept the volume throughout
        assert s.api.reasons("b")[-1] == (
            "SuccessfulAttachVolume",
            f'AttachVolume.Attach succeeded for volume "{PV}" ',
        )

    asyncio.run(scenario())


def test_the_served_pod_keeps_the_volume_even_when_an_older_pod_arrives() -> None:
    async def scenario() -> None:
        s = Setup()
        pods = s.api.informers.informer(PODS)
        pods.apply("ADDED", pod("young", "esx-01", phase="Running", created="2026-12-06T10:00:00Z"))
        await s.drain()
        pods.apply("ADDED", pod("old", "esx-01", created="2026-12-01T10:00:00Z"))  # bound later
        await s.drain()
        assert [m["podUID"] for _n, _a, m in s.attachments()] == ["p-young"]
        assert s.api.reasons("old")[-1][0] == "FailedAttachVolume"

        pods.apply("MODIFIED", pod("young", "esx-01", phase="Succeeded", created="2026-12-06T10:00:00Z"))
        await s.drain()
        assert [m["podUID"] for _n, _a, m in s.attachments()] == ["p-old"]

    asyncio.run(scenario())


def test_a_renamed_attachment_keeps_the_pod_it_serves() -> None:
    async def scenario() -> None:
        s = Setup()
        attachments = s.api.informers.informer(VOLUMEATTACHMENTS)
        url = "nbd://198.18.0.5:10809/vol-1-esx-01"
        attachments.apply(
            "ADDED",
            {
                "metadata": {"name": "va-by-hand", "uid": "va-1"},
                "spec": {
                    "attacher": "datastore.nestlab.io",
                    "nodeName": "esx-01",
                    "source": {"persistentVolumeName": PV},
                },
                "status": {"attached": True, "attachmentMetadata": {"nbd": url, "podUID": "p-b"}},
            },
        )
        pods = s.api.informers.informer(PODS)
        pods.apply("ADDED", pod("a", "esx-01"))
        pods.apply("ADDED", pod("b", "esx-01", phase="Running"))
        await s.drain()
        assert s.attachments() == [("esx-01", True, {"nbd": url, "podUID": "p-b"})]
        assert s.api.reasons("a")[-1][1].endswith(f"used by pod(s) b; {ONE_VM}")

    asyncio.run(scenario())
