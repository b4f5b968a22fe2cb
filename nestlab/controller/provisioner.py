"""The provisioner: a PersistentVolume from the lab datastore for each claim of a class of ours, and
the reclaim of that volume when its claim goes (CNS creating and deleting a vSphere datastore disk).

Upstream splits this between the PV controller (binding, Released, reclaim) and the CSI
external-provisioner (CreateVolume/DeleteVolume); the lab has one provisioner, so one controller
plays both, with upstream's objects and Events:

- a claim whose class's provisioner is ``datastore.nestlab.io`` is provisioned at once
  (``Immediate``) or once the scheduler annotated it ``volume.kubernetes.io/selected-node``
  (``WaitForFirstConsumer``; Event ``WaitForFirstConsumer`` until then); a claim naming a class that
  does not exist stays Pending with Event ``ProvisioningFailed`` ``storageclass.storage.k8s.io "x"
  not found``;
- provisioning: Event ``Provisioning``, a datastore volume named ``pvc-<claim uid>``, a PV of that
  name (CSI source: driver, volumeHandle = the datastore's id, fsType ext4; capacity, access modes,
  reclaim policy and class; claimRef), PV phase Bound, then the claim bound (``spec.volumeName``,
  phase Bound, capacity, access modes) and Event ``ProvisioningSucceeded``. Each step is idempotent,
  so a controller that died midway finishes the job on its next sync;
- reclaim: a bound PV whose claim is gone (or was recreated with another uid) turns Released;
  ``Delete`` then removes the datastore volume and the PV (waiting while a VolumeAttachment still
  holds the volume: Event ``VolumeFailedDelete``), ``Retain`` keeps both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from nestlab.api import quantity, status
from nestlab.api.client import ApiClient
from nestlab.api.kinds import persistentvolumeclaim as pvcs
from nestlab.api.kinds.storageclass import PROVISIONER, WAIT_FOR_FIRST_CONSUMER
from nestlab.api.resources import (
    EVENTS,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    STORAGECLASSES,
    VOLUMEATTACHMENTS,
)
from nestlab.controller.informer import Controller, EventHandler, InformerFactory, key_of
from nestlab.controller.recorder import Recorder
from nestlab.controller.recorder import event as recorder_event
from nestlab.controller.workqueue import WorkQueue
from nestlab.datastore.client import VolumeService
from nestlab.datastore.errors import DatastoreError
from nestlab.datastore.store import MIB

log = logging.getLogger(__name__)
Obj = dict[str, Any]
FS_TYPE = "ext4"  # what the datastore formats volumes with
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
CLAIM, VOLUME = "claim:", "volume:"  # the two kinds of keys in the one queue
PV_CONTROLLER = "persistentvolume-controller"  # upstream's component for class and binding Events
COMPONENT = f"{PROVISIONER}_nestlab-controller"  # external-provisioner's: <driver>_<identity>
NO_DATASTORE = "nestlab-controller runs without --datastore-url, so it cannot reach the lab datastore"


def volume_name(claim: Obj) -> str:
    """The PV (and datastore volume) name of a provisioned claim: ``pvc-<claim uid>``, as upstream."""
    return f"pvc-{claim['metadata']['uid']}"


def requested_bytes(claim: Obj) -> int:
    """The claim's storage request rounded up to whole MiB (what the datastore gives)."""
    wanted = int(pvcs.storage_request(claim).to_integral_value(rounding="ROUND_CEILING"))
    return max(-(-wanted // MIB), 1) * MIB


def persistent_volume(claim: Obj, storage_class: Obj, volume_id: str, size_bytes: int) -> Obj:
    """The PV the provisioner creates for ``claim`` (external-provisioner's shape, CSI source)."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": quantity.format_bytes(Decimal(size_bytes))},
            "accessModes": list(spec.get("accessModes") or [pvcs.RWO]),
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "csi": {"driver": PROVISIONER, "volumeHandle": volume_id, "fsType": FS_TYPE},
        },
    }


def claimed_by(volume: Obj, claim: Obj | None) -> bool:
    """Whether ``volume``'s claimRef names ``claim`` (same namespace, name and uid)."""
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    if claim is None or not ref:
        return False
    meta = claim["metadata"]
    return (ref.get("namespace"), ref.get("name"), ref.get("uid")) == (
        meta.get("namespace"), meta.get("name"), meta.get("uid"),
    )  # fmt: skip


def ours(volume: Obj) -> bool:
    """Whether ``volume`` is a datastore volume (its CSI driver is ours)."""
    return ((volume.get("spec") or {}).get("csi") or {}).get("driver") == PROVISIONER


class ProvisionerController:
    """See the module docstring; ``datastore`` None: every claim of ours fails with a message saying so."""

    name = "persistentvolume-provisioner"
    workers = 2

    def __init__(
        self, client: ApiClient, informers: InformerFactory, datastore: VolumeService | None
    ) -> None:
        self.client = client
        self.datastore = datastore
        self.queue = WorkQueue(self.name)
        self.claims = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.volumes = informers.informer(PERSISTENTVOLUMES)
        self.classes = informers.informer(STORAGECLASSES)
        self.attachments = informers.informer(VOLUMEATTACHMENTS)
        self.events = Recorder(client, COMPONENT)
        self.pv_events = Recorder(client, PV_CONTROLLER)
        self._told: dict[str, str] = {}  # object uid -> the last Event reason+message written about it
        self.claims.add_handler(
            EventHandler(
                on_add=self._claim_changed,
                on_update=lambda _old, new: self._claim_changed(new),
                on_delete=self._claim_deleted,
            )
        )
        self.volumes.add_handler(
            EventHandler(
                on_add=self._volume_changed,
                on_update=lambda _old, new: self._volume_changed(new),
                on_delete=self._volume_deleted,
            )
        )
        self.classes.add_handler(
            EventHandler(on_add=self._class_changed, on_update=lambda _o, n: self._class_changed(n))
        )
        self.attachments.add_handler(EventHandler(on_delete=self._attachment_gone))

    # -- handlers: keys only ------------------------------------------------------------------
    def _claim_changed(self, claim: Obj) -> None:
        self.queue.add(CLAIM + key_of(claim))
        uid = (claim.get("metadata") or {}).get("uid")
        for volume in self.volumes.list():
            if ((volume.get("spec") or {}).get("claimRef") or {}).get("uid") == uid:
                self.queue.add(VOLUME + key_of(volume))

    def _claim_deleted(self, claim: Obj) -> None:
        self._told.pop(str((claim.get("metadata") or {}).get("uid", "")), None)
        self._claim_changed(claim)

    def _volume_changed(self, volume: Obj) -> None:
        self.queue.add(VOLUME + key_of(volume))

    def _volume_deleted(self, volume: Obj) -> None:
        self._told.pop(str((volume.get("metadata") or {}).get("uid", "")), None)

    def _class_changed(self, storage_class: Obj) -> None:
        for claim in self.claims.list():
            if pvcs.class_of(claim) == storage_class["metadata"]["name"]:
                self.queue.add(CLAIM + key_of(claim))

    def _attachment_gone(self, attachment: Obj) -> None:
        name = ((attachment.get("spec") or {}).get("source") or {}).get("persistentVolumeName")
        if name:
            self.queue.add(VOLUME + str(name))

    # -- sync ---------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        if key.startswith(CLAIM):
            await self._sync_claim(key.removeprefix(CLAIM))
        elif key.startswith(VOLUME):
            await self._sync_volume(key.removeprefix(VOLUME))

    async def _tell(self, recorder: Recorder, obj: Obj, kind: str, reason: str, message: str) -> None:
        """Record an Event unless the last one about this object said the same (one per change)."""
        uid = str(obj["metadata"].get("uid", ""))
        if self._told.get(uid) == reason + message:
            return
        self._told[uid] = reason + message
        if obj["metadata"].get("namespace"):
            await recorder.record(obj, kind, reason, message)
            return
        # a PV is cluster-scoped: upstream's recorder files its Events in the default namespace
        body = recorder_event(obj, kind, reason, message, component=recorder.component, now=datetime.now(UTC))
        body["metadata"]["namespace"] = "default"
        try:
            await self.client.create(EVENTS, "default", body)
        except status.ApiError as exc:
            log.warning("could not record %s event for %s: %s", reason, obj["metadata"]["name"], exc.message)

    async def _sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return
        spec = claim.get("spec") or {}
        if spec.get("volumeName"):
            volume = self.volumes.get(str(spec["volumeName"]))
            if (
                volume is not None
                and claimed_by(volume, claim)
                and (claim.get("status") or {}).get("phase") != pvcs.BOUND
            ):
                await self._bind_claim(claim, volume)  # a bind that a crash interrupted
            return
        class_name = pvcs.class_of(claim)
        if not class_name:
            return  # no class: binds to a pre-made volume only (not this controller's job)
        storage_class = self.classes.get(class_name)
        if storage_class is None:
            message = f'storageclass.storage.k8s.io "{class_name}" not found'
            await self._tell(self.pv_events, claim, "Warning", "ProvisioningFailed", message)
            return
        if storage_class.get("provisioner") != PROVISIONER:
            return
        annotations = claim["metadata"].get("annotations") or {}
        if (
            storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
            and pvcs.SELECTED_NODE not in annotations
        ):
            message = "waiting for first consumer to be created before binding"
            await self._tell(self.pv_events, claim, "Normal", "WaitForFirstConsumer", message)
            return
        await self._provision(claim, storage_class)

    async def _provision(self, claim: Obj, storage_class: Obj) -> None:
        meta = claim["metadata"]
        name = volume_name(claim)
        volume = self.volumes.get(name)
        if volume is None:
            class_name = storage_class["metadata"]["name"]
            failed = f'failed to provision volume with StorageClass "{class_name}": '
            if self.datastore is None:
                await self._tell(self.events, claim, "Warning", "ProvisioningFailed", failed + NO_DATASTORE)
                return
            await self._tell(
                self.events, claim, "Normal", "Provisioning",
                f'External provisioner is provisioning volume for claim "{meta["namespace"]}/{meta["name"]}"',
            )  # fmt: skip
            try:
                made = await self.datastore.create_volume(name, requested_bytes(claim), FS_TYPE)
            except DatastoreError as exc:
                await self._tell(self.events, claim, "Warning", "ProvisioningFailed", failed + str(exc))
                raise
            volume = persistent_volume(claim, storage_class, made.id, made.size_bytes)
            try:
                volume = await self.client.create(PERSISTENTVOLUMES, "", volume)
            except status.ApiError as exc:
                if exc.code != 409:
                    raise
                volume = await self.client.get(PERSISTENTVOLUMES, "", name)
            log.info("provisioned %s for claim %s/%s (%s)", name, meta["namespace"], meta["name"], made.id)
        if not claimed_by(volume, claim):
            raise RuntimeError(f"PersistentVolume {name} exists but is claimed by another claim")
        await self._bind_claim(claim, volume)
        await self._tell(
            self.events, claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}"
        )

    async def _bind_claim(self, claim: Obj, volume: Obj) -> None:
        """PV phase Bound, then the claim: volumeName and annotations, then its status Bound."""
        meta, name = claim["metadata"], volume["metadata"]["name"]
        if (volume.get("status") or {}).get("phase") != "Bound":
            await self.client.patch(PERSISTENTVOLUMES, "", name, {"status": {"phase": "Bound"}}, "status")
        annotations = {
            BIND_COMPLETED: "yes",
            BOUND_BY_CONTROLLER: "yes",
            STORAGE_PROVISIONER: PROVISIONER,
            BETA_STORAGE_PROVISIONER: PROVISIONER,
        }
        patch = {"metadata": {"annotations": annotations}, "spec": {"volumeName": name}}
        await self.client.patch(PERSISTENTVOLUMECLAIMS, meta["namespace"], meta["name"], patch)
        spec = volume.get("spec") or {}
        bound = {
            "phase": pvcs.BOUND,
            "capacity": dict(spec.get("capacity") or {}),
            "accessModes": list(spec.get("accessModes") or []),
        }
        await self.client.patch(
            PERSISTENTVOLUMECLAIMS, meta["namespace"], meta["name"], {"status": bound}, "status"
        )

    async def _sync_volume(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None or not ours(volume) or volume["metadata"].get("deletionTimestamp"):
            return
        spec = volume.get("spec") or {}
        ref = spec.get("claimRef") or {}
        if not ref:
            return
        claim = self.claims.get(f"{ref.get('namespace', '')}/{ref.get('name', '')}")
        if claimed_by(volume, claim):
            return
        if (volume.get("status") or {}).get("phase") not in ("Released", "Failed"):
            await self.client.patch(PERSISTENTVOLUMES, "", name, {"status": {"phase": "Released"}}, "status")
            log.info("%s released: claim %s/%s is gone", name, ref.get("namespace"), ref.get("name"))
        if spec.get("persistentVolumeReclaimPolicy") != "Delete":
            return  # Retain: the volume and its data stay until an admin deletes them
        await self._delete(volume)

    async def _delete(self, volume: Obj) -> None:
        name = volume["metadata"]["name"]
        holders = [
            str((a.get("spec") or {}).get("nodeName", ""))
            for a in self.attachments.list()
            if ((a.get("spec") or {}).get("source") or {}).get("persistentVolumeName") == name
        ]
        if holders:  # the attacher detaches first (its VolumeAttachment's deletion enqueues us again)
            message = f"persistentvolume {name} is still attached to node {', '.join(sorted(holders))}"
            await self._tell(self.events, volume, "Warning", "VolumeFailedDelete", message)
            return
        if self.datastore is None:
            await self._tell(self.events, volume, "Warning", "VolumeFailedDelete", NO_DATASTORE)
            return
        handle = str(((volume.get("spec") or {}).get("csi") or {}).get("volumeHandle", ""))
        try:
            await self.datastore.delete_volume(handle)
        except DatastoreError as exc:
            await self._tell(self.events, volume, "Warning", "VolumeFailedDelete", str(exc))
            raise
        try:
            await self.client.delete(PERSISTENTVOLUMES, "", name, uid=volume["metadata"].get("uid"))
        except status.ApiError as exc:
            if exc.code not in (404, 409):
                raise
        log.info("deleted %s and its datastore volume %s (reclaim policy Delete)", name, handle)


def factory(datastore: VolumeService | None) -> Callable[[ApiClient, InformerFactory], Controller]:
    """The CONTROLLERS entry for ``datastore`` (``--datastore-url``; None: claims fail with a reason)."""

    def build(client: ApiClient, informers: InformerFactory) -> Controller:
        return ProvisionerController(client, informers, datastore)

    return build
