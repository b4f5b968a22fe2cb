"""A pod's claims become block volumes only when bound and attached to this node, with the kubelet's
waiting messages meanwhile (pure: no API, no VM)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from nestlab.agent import pvattach
from nestlab.api.kinds.volumeattachment import attachment_name
from nestlab.controller import attacher
from nestlab.runtime.poddesc import Mount, Volume

Obj = dict[str, Any]
NODE = "esx-01"
URL = "nbd://198.18.0.9:10809/Zq3k"
PREFIX = "Unable to attach or mount volumes: "


def pod(*volumes: Obj) -> Obj:
    return {"metadata": {"namespace": "ns", "name": "web"}, "spec": {"volumes": list(volumes)}}


def claim_volume(name: str = "data", claim: str = "data-web-0", **source: Any) -> Obj:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, **source}}


def pvc(name: str = "data-web-0", *, phase: str = "Bound", volume: str = "pvc-1", **meta: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": "u-1", **meta},
        "spec": {"volumeName": volume},
        "status": {"phase": phase},
    }


def pv(name: str = "pvc-1", *, uid: str = "u-1", **spec: Any) -> Obj:
    csi = {"driver": "datastore.nestlab.io", "volumeHandle": "vol-7", "fsType": "ext4"}
    return {
        "metadata": {"name": name},
        "spec": {"claimRef": {"namespace": "ns", "name": "data-web-0", "uid": uid}, "csi": csi, **spec},
    }


def va(pv_name: str = "pvc-1", node: str = NODE, *, attached: bool = True, **extra: Any) -> Obj:
    status: Obj = {"attached": attached}
    if attached:
        status["attachmentMetadata"] = {"nbd": URL}
    status.update(extra.pop("status", {}))
    return {
        "metadata": {"name": attachment_name("vol-7", node), **extra},
        "spec": {
            "attacher": "datastore.nestlab.io",
            "nodeName": node,
            "source": {"persistentVolumeName": pv_name},
        },
        "status": status,
    }


def resolve(p: Obj, pvcs: list[Obj], pvs: list[Obj], vas: list[Obj]) -> tuple[Volume, ...] | pvattach.Waiting:
    return pvattach.resolve(
        p,
        NODE,
        {c["metadata"]["name"]: c for c in pvcs},
        {v["metadata"]["name"]: v for v in pvs},
        vas,
    )


def test_a_bound_attached_claim_is_a_block_volume_whose_url_stays_on_the_host() -> None:
    (volume,) = resolve(pod(claim_volume()), [pvc()], [pv()], [va()])  # type: ignore[misc]
    assert volume == Volume(
        "data", "block", serial=pvattach.serial_of(pv()), fs_type="ext4", read_only=False, source=URL
    )
    assert volume.serial.startswith("pv-")
    assert len(volume.serial) == 19


def test_a_pod_without_claims_needs_nothing() -> None:
    assert resolve(pod({"name": "tmp", "emptyDir": {}}), [], [], []) == ()


@pytest.mark.parametrize(
    ("pvcs", "pvs", "why"),
    [
        (
            [],
            [],
            "error processing PVC ns/data-web-0: failed to fetch PVC from API server: persistentvolumeclaims "
            '"data-web-0" not found',
        ),
        ([pvc(phase="Pending", volume="")], [], "error processing PVC ns/data-web-0: PVC is not bound"),
        (
            [pvc(deletionTimestamp="2026-12-05T20:00:00Z")],
            [pv()],
            "error processing PVC ns/data-web-0: PVC is being deleted",
        ),
        (
            [pvc()],
            [],
            "error processing PVC ns/data-web-0: failed to fetch PV pvc-1 from API server: persistentvolumes "
            '"pvc-1" not found',
        ),
        (
            [pvc()],
            [pv(uid="u-other")],
            "error processing PVC ns/data-web-0: found PV object pvc-1 but its pv.Spec.ClaimRef.UID u-other "
            "does not point to claim.UID u-1",
        ),
        (
            [pvc()],
            [pv(volumeMode="Block")],
            "volume data has volumeMode Block, but is specified in volumeMounts",
        ),
    ],
)
def test_a_claim_that_cannot_be_used_yet_waits_with_the_kubelets_reason(
    pvcs: list[Obj], pvs: list[Obj], why: str
) -> None:
    waiting = resolve(pod(claim_volume()), pvcs, pvs, [va()])
    assert waiting == pvattach.Waiting(
        "FailedMount",
        f"{PREFIX}unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: {why}",
    )


def test_an_unattached_volume_waits_and_other_nodes_attachments_do_not_count() -> None:
    waiting = resolve(pod(claim_volume()), [pvc()], [pv()], [va(node="esx-02"), va("pvc-9")])
    assert isinstance(waiting, pvattach.Waiting)
    assert waiting.reason == "FailedMount"
    assert waiting.message.startswith(
        f'{PREFIX}unmounted volumes=[data], unattached volumes=[data]: volume "pvc-1" is not attached to '
        'node "esx-01" yet'
    )
    assert resolve(pod(claim_volume()), [pvc()], [pv()], [va(attached=False)]) == waiting


def test_a_detaching_attachment_is_not_used() -> None:
    waiting = resolve(pod(claim_volume()), [pvc()], [pv()], [va(deletionTimestamp="2026-12-05T20:00:00Z")])
    assert isinstance(waiting, pvattach.Waiting)
    assert waiting.message.endswith('volume "pvc-1" is being detached from node "esx-01"')


def test_a_failed_attach_keeps_the_pod_waiting_with_the_attachers_error() -> None:
    failed = va(attached=False, status={"attachError": {"message": "datastore unreachable"}})
    waiting = resolve(pod(claim_volume()), [pvc()], [pv()], [failed])
    assert waiting == pvattach.Waiting(
        "FailedMount",
        f"{PREFIX}unmounted volumes=[data], unattached volumes=[data]: "
        'AttachVolume.Attach failed for volume "pvc-1" : datastore unreachable',
    )


def test_every_claim_volume_is_listed_while_one_is_not_ready() -> None:
    other_pvc = pvc("logs", volume="pvc-2")
    other_pvc["metadata"]["uid"] = "u-2"
    other_pv = pv("pvc-2", uid="u-2")
    p = pod(claim_volume(), claim_volume("logs", "logs"))
    waiting = resolve(p, [pvc(), other_pvc], [pv(), other_pv], [va()])
    assert isinstance(waiting, pvattach.Waiting)
    assert waiting.message.startswith(f"{PREFIX}unmounted volumes=[data logs], unattached volumes=[logs]: ")


def test_read_only_sources_mount_read_only_and_force_every_mount_read_only() -> None:
    p = pod(claim_volume(readOnly=True))
    (volume,) = resolve(p, [pvc()], [pv()], [va()])  # type: ignore[misc]
    assert volume.read_only
    mounts = (Mount("data", "/data"), Mount("other", "/other"))
    assert pvattach.read_only_mounts(mounts, (volume,), p) == (
        Mount("data", "/data", read_only=True),
        Mount("other", "/other"),
    )
    csi_ro = pv()
    csi_ro["spec"]["csi"]["readOnly"] = True
    (volume,) = resolve(pod(claim_volume()), [pvc()], [csi_ro], [va()])  # type: ignore[misc]
    assert volume.read_only


def test_two_pod_volumes_of_one_claim_share_its_disk_writable_if_either_is() -> None:
    p = pod(claim_volume(), claim_volume("again", readOnly=True))
    volumes = resolve(p, [pvc()], [pv()], [va()])
    assert isinstance(volumes, tuple)
    assert [(v.name, v.serial, v.read_only) for v in volumes] == [
        ("data", pvattach.serial_of(pv()), False),
        ("again", pvattach.serial_of(pv()), False),
    ]
    assert pvattach.read_only_mounts((Mount("again", "/a"),), volumes, p) == (Mount("again", "/a", True),)


def test_the_fs_type_defaults_to_the_datastores_ext4() -> None:
    bare = pv()
    del bare["spec"]["csi"]["fsType"]
    (volume,) = resolve(pod(claim_volume()), [pvc()], [bare], [va()])  # type: ignore[misc]
    assert volume.fs_type == "ext4"


def test_claims_and_the_pod_without_them() -> None:
    p = pod({"name": "tmp", "emptyDir": {}}, claim_volume())
    assert pvattach.claims(p) == {"data": "data-web-0"}
    assert pvattach.without_claims(p)["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert len(p["spec"]["volumes"]) == 2  # the pod itself is untouched
    assert pvattach.serial_of(pv()) == pvattach.serial_of(pv()) != pvattach.serial_of(pv("pvc-2"))


def test_the_attachment_name_is_upstreams_and_the_controllers() -> None:
    name = attachment_name("vol-7", NODE)
    assert name == "csi-" + hashlib.sha256(b"vol-7datastore.nestlab.ioesx-01").hexdigest()
    assert pvattach.attachment_of(pv(), NODE) == name
    assert pvattach.attachment_of(pv(), "esx-02") != name  # the node is part of the name
    assert attacher.attachment(pv(), NODE)["metadata"]["name"] == name
    assert pvattach.attachment_of({"metadata": {"name": "nfs"}, "spec": {}}, NODE) == ""


def served(uid: str) -> Obj:
    """The attachment of this node, serving the pod VM of ``uid`` (the attacher's ``podUID``)."""
    return va(status={"attachmentMetadata": {"nbd": URL, pvattach.ATTACHED_POD: uid}})


def test_an_attachment_serves_only_the_pod_it_names() -> None:
    """A vSphere Pod is its own VM and the NBD export takes one connection: another pod of this node
    waits (FailedMount, with the reason) until the attacher names it."""
    mine = pod(claim_volume())
    mine["metadata"]["uid"] = "p-web"
    (volume,) = resolve(mine, [pvc()], [pv()], [served("p-web")])  # type: ignore[misc]
    assert volume.source == URL

    waiting = resolve(mine, [pvc()], [pv()], [served("p-other")])
    assert isinstance(waiting, pvattach.Waiting)
    assert waiting.reason == "FailedMount"
    assert waiting.message == (
        f'{PREFIX}unmounted volumes=[data], unattached volumes=[data]: volume "pvc-1" is attached to '
        f'node "{NODE}" for another pod (uid p-other): a vSphere Pod is its own VM, and a ReadWriteOnce '
        "volume attaches to one VM at a time; this pod starts once that one has ended (its "
        "FailedAttachVolume Multi-Attach Event names it)"
    )


def test_an_attachment_naming_no_pod_serves_whichever_asks() -> None:
    """An attacher from before ``podUID``: the pod is not held back by a key that is not there."""
    mine = pod(claim_volume())
    mine["metadata"]["uid"] = "p-web"
    (volume,) = resolve(mine, [pvc()], [pv()], [va()])  # type: ignore[misc]
    assert volume.source == URL
