"""A pod's PersistentVolumeClaims as disks for its VM: pure, from the objects the agent fetched.

vSphere attaches a CNS volume to the ESXi host and the Spherelet hands it to the pod's VM as a
disk; here the attacher in nestlab-controller asks the lab datastore to export the volume over NBD
to this node and records it in a VolumeAttachment (``status.attached``, ``attachmentMetadata.nbd``:
``nbd://host:port/export``). :func:`resolve` follows the kubelet's volume manager: each
``persistentVolumeClaim`` volume needs its claim Bound (not being deleted) to a PersistentVolume
whose ``claimRef`` points back at it, and that volume attached to this node. Until then the answer
is :class:`Waiting`, worded as the kubelet's ``FailedMount`` Event (``Unable to attach or mount
volumes: ...``, with the attach error when the attacher recorded one: its own ``FailedAttachVolume``
Event says that too); the agent keeps the pod ContainerCreating and asks again every
:data:`RETRY_S`. Once everything is there the answer is one ``block``
:class:`~nestlab.runtime.poddesc.Volume` per pod volume: pod-init mounts the disk found by its
serial with the volume's file system, and QEMU's own NBD client reads it from the URL (which stays
on the host: the description only names the serial).

One attachment serves one pod VM, not the whole node: a vSphere Pod is its own VM, and the NBD
export takes one connection (``max-connections=1``), so a second pod VM on the same node could not
open a ReadWriteOnce volume the first one holds. The attacher names the pod whose VM may open it in
``attachmentMetadata`` (:data:`ATTACHED_POD`: its uid); any other pod of this node waits, worded as
the kubelet's ``FailedMount`` with the reason (the attacher's ``FailedAttachVolume`` Multi-Attach
Event names the pod holding it), and starts once the attacher hands the volume over, after that pod
ended. An attachment without the key (an older attacher) serves whichever pod asks.

``readOnly`` on the pod's volume source (or the PersistentVolume's ``csi.readOnly``) mounts the file
system read-only and forces every container's mount of it read-only, as upstream.

The node finds its attachment by name, never by listing them all (the Node authorizer lets a host
get only the VolumeAttachments of its own ``spec.nodeName``): :func:`attachment_name` is upstream's
CSI ``getAttachmentName``, which the attacher in nestlab-controller names them with too.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nestlab.api.kinds.persistentvolume import DRIVER
from nestlab.api.kinds.volumeattachment import NBD, attachment_name
from nestlab.runtime.poddesc import DiskSerial, Mount, Volume

Obj = dict[str, Any]
DEFAULT_FS_TYPE = "ext4"  # what the datastore formats with (``mkfs.ext4 -F``) when the PV names none
RETRY_S = 1.0  # a waiting pod looks again this often: attaching takes seconds, polling costs 3 reads
SERIAL_PREFIX = "pv-"  # pv- + 16 hex digits: within virtio-blk's 20-byte serial, never an image's (img-)
ATTACHED_POD = "podUID"
"""The ``status.attachmentMetadata`` key naming (by uid) the one pod whose VM may open the volume."""
ONE_VM = "a vSphere Pod is its own VM, and a ReadWriteOnce volume attaches to one VM at a time"


@dataclass(frozen=True)
class ClaimObjects:
    """What exists now of a pod's claims (by name), their volumes (by name) and their attachments to
    the pod's node (:func:`nestlab.agent.pvsources.fetch` reads them)."""

    pvcs: dict[str, Obj] = dataclasses.field(default_factory=dict)
    pvs: dict[str, Obj] = dataclasses.field(default_factory=dict)
    attachments: list[Obj] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Waiting:
    """The pod cannot have its volumes yet: an Event (``reason``, ``message``), then the agent retries."""

    reason: str
    """The Event reason: ``FailedMount``, as the kubelet's while a claim is not bound or attached."""
    message: str


def claims(pod: Obj) -> dict[str, str]:
    """The pod's ``persistentVolumeClaim`` volumes: volume name -> claim name, in spec order."""
    out: dict[str, str] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim")
        if isinstance(source, dict):
            out[str(volume.get("name", ""))] = str(source.get("claimName", ""))
    return out


def without_claims(pod: Obj) -> Obj:
    """A copy of ``pod`` without its claim volumes (what :mod:`nestlab.agent.podvolumes` forms)."""
    spec = pod.get("spec") or {}
    kept = [v for v in spec.get("volumes") or [] if "persistentVolumeClaim" not in v]
    return {**pod, "spec": {**spec, "volumes": copy.deepcopy(kept)}}


def serial_of(pv: Obj) -> DiskSerial:
    """The disk serial of a PersistentVolume: ``pv-`` and 16 hex digits of a hash of its name."""
    name = str((pv.get("metadata") or {}).get("name", ""))
    return DiskSerial(SERIAL_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:16])


def attachment_of(pv: Obj, node: str) -> str:
    """The name of the VolumeAttachment giving ``pv`` to ``node`` ("" when it is no CSI volume)."""
    csi = (pv.get("spec") or {}).get("csi") or {}
    handle, driver = str(csi.get("volumeHandle") or ""), str(csi.get("driver") or "")
    return attachment_name(handle, node, driver) if handle and driver else ""


def _attachment(attachments: Iterable[Obj], pv: str, node: str) -> Obj | None:
    for va in attachments:
        spec = va.get("spec") or {}
        if (
            spec.get("attacher") == DRIVER
            and spec.get("nodeName") == node
            and (spec.get("source") or {}).get("persistentVolumeName") == pv
        ):
            return va
    return None


@dataclass
class _Progress:
    """What the kubelet's message lists: every claim volume, the unattached ones, the failed ones."""

    unmounted: list[str] = dataclasses.field(default_factory=list)
    unattached: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    why: str = ""

    def note(self, volume: str, why: str, *, failed: bool = False) -> None:
        """``volume`` is not ready: it could not be processed (``failed``) or is not attached."""
        (self.failed if failed else self.unattached).append(volume)
        self.why = self.why or why

    def waiting(self) -> Waiting:
        text = (
            f"Unable to attach or mount volumes: unmounted volumes=[{' '.join(sorted(self.unmounted))}], "
            f"unattached volumes=[{' '.join(sorted(self.unattached))}]"
        )
        if self.failed:
            text += f", failed to process volumes=[{' '.join(sorted(self.failed))}]"
        return Waiting("FailedMount", f"{text}: {self.why}")


def _claim_error(pvc: Obj | None, namespace: str, claim: str) -> str:
    """The kubelet's reason a claim cannot be used yet (empty: it is usable)."""
    prefix = f"error processing PVC {namespace}/{claim}: "
    if pvc is None:
        return f'{prefix}failed to fetch PVC from API server: persistentvolumeclaims "{claim}" not found'
    if (pvc.get("metadata") or {}).get("deletionTimestamp"):
        return f"{prefix}PVC is being deleted"
    if (pvc.get("status") or {}).get("phase") != "Bound":
        return f"{prefix}PVC is not bound"
    if not (pvc.get("spec") or {}).get("volumeName"):
        return f"{prefix}PVC has empty pvc.Spec.VolumeName"
    return ""


def _volume_error(pv: Obj | None, pvc: Obj, name: str, namespace: str, claim: str) -> str:
    """The kubelet's reason a bound claim's PersistentVolume cannot be used (empty: it can)."""
    prefix = f"error processing PVC {namespace}/{claim}: "
    pv_name = str((pvc.get("spec") or {}).get("volumeName", ""))
    if pv is None:
        return (
            f'{prefix}failed to fetch PV {pv_name} from API server: persistentvolumes "{pv_name}" not found'
        )
    spec = pv.get("spec") or {}
    ref, uid = spec.get("claimRef"), str((pvc.get("metadata") or {}).get("uid", ""))
    if not isinstance(ref, dict):
        return (
            f"{prefix}found PV object {pv_name} but it has a nil pv.Spec.ClaimRef "
            "indicating it is not yet bound to the claim"
        )
    if str(ref.get("uid", "")) != uid:
        return (
            f"{prefix}found PV object {pv_name} but its pv.Spec.ClaimRef.UID {ref.get('uid', '')} "
            f"does not point to claim.UID {uid}"
        )
    if spec.get("volumeMode") == "Block":
        return f"volume {name} has volumeMode Block, but is specified in volumeMounts"
    if (spec.get("csi") or {}).get("driver") != DRIVER:
        return (
            f"{prefix}PV {pv_name} is not a lab datastore volume (csi driver {DRIVER}): no host can attach it"
        )
    return ""


def _attached_url(va: Obj | None, pv: str, node: str, progress: _Progress, name: str, *, uid: str) -> str:
    """The NBD URL of ``pv`` on ``node`` for the pod ``uid``, or "" after noting why it is not
    attached to it (yet)."""
    status = (va or {}).get("status") or {}
    metadata = status.get("attachmentMetadata") or {}
    url, holder = str(metadata.get(NBD, "")), str(metadata.get(ATTACHED_POD) or "")
    detaching = va is not None and bool((va.get("metadata") or {}).get("deletionTimestamp"))
    error = (status.get("attachError") or {}).get("message")
    attached = (
        va is not None and not detaching and status.get("attached") is True and url.startswith("nbd://")
    )
    if attached and holder in ("", uid):
        return url
    if attached:
        why = (
            f'volume "{pv}" is attached to node "{node}" for another pod (uid {holder}): {ONE_VM}; this '
            "pod starts once that one has ended (its FailedAttachVolume Multi-Attach Event names it)"
        )
    elif detaching:
        why = f'volume "{pv}" is being detached from node "{node}"'
    elif error:  # the attacher's FailedAttachVolume Event says it too; the kubelet waits, FailedMount
        why = f'AttachVolume.Attach failed for volume "{pv}" : {error}'
    else:
        why = (
            f'volume "{pv}" is not attached to node "{node}" yet (its VolumeAttachment comes from the '
            "attacher in nestlab-controller; a ReadWriteOnce volume waits until no other node holds it)"
        )
    progress.note(name, why)
    return ""


def resolve(
    pod: Obj,
    node: str,
    pvcs: Mapping[str, Obj],
    pvs: Mapping[str, Obj],
    attachments: Sequence[Obj],
) -> tuple[Volume, ...] | Waiting:
    """The pod's claim volumes as ``block`` volumes, or why the pod must wait for them.

    ``pvcs``: the pod's claims that exist (by name), ``pvs``: their volumes that exist (by name),
    ``attachments``: VolumeAttachments (any; those of other volumes or nodes are ignored)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    sources = {
        str(v.get("name", "")): v.get("persistentVolumeClaim") or {} for v in spec.get("volumes") or []
    }
    progress, out = _Progress(), []
    for name, claim in claims(pod).items():
        progress.unmounted.append(name)
        pvc = pvcs.get(claim)
        error = _claim_error(pvc, namespace, claim)
        pv_name = str(((pvc or {}).get("spec") or {}).get("volumeName", ""))
        pv = pvs.get(pv_name)
        if pvc is not None and not error:
            error = _volume_error(pv, pvc, name, namespace, claim)
        if error or pv is None:
            progress.note(name, error, failed=True)
            continue
        va = _attachment(attachments, pv_name, node)
        url = _attached_url(va, pv_name, node, progress, name, uid=str(meta.get("uid") or ""))
        if not url:
            continue
        csi = (pv.get("spec") or {}).get("csi") or {}
        read_only = bool(sources.get(name, {}).get("readOnly")) or bool(csi.get("readOnly"))
        fs_type = str(csi.get("fsType") or DEFAULT_FS_TYPE)
        out.append(
            Volume(name, "block", serial=serial_of(pv), fs_type=fs_type, read_only=read_only, source=url)
        )
    if progress.unattached or progress.failed:
        return progress.waiting()
    return _shared(tuple(out))


def _shared(volumes: tuple[Volume, ...]) -> tuple[Volume, ...]:
    """Two pod volumes of one claim share its disk: the file system is read-only only if both are."""
    writable = {v.serial for v in volumes if not v.read_only}
    return tuple(dataclasses.replace(v, read_only=v.serial not in writable) for v in volumes)


def read_only_mounts(mounts: Sequence[Mount], volumes: Iterable[Volume], pod: Obj) -> tuple[Mount, ...]:
    """``mounts`` with every mount of a read-only claim volume read-only (the source's ``readOnly``
    "will force the ReadOnly setting in VolumeMounts")."""
    forced = {v.name for v in volumes if v.kind == "block" and v.read_only}
    spec = pod.get("spec") or {}
    for volume in spec.get("volumes") or []:
        if (volume.get("persistentVolumeClaim") or {}).get("readOnly"):
            forced.add(str(volume.get("name", "")))
    return tuple(dataclasses.replace(m, read_only=True) if m.volume in forced else m for m in mounts)
