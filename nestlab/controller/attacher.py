"""The attacher: datastore volumes exported to the nodes whose pods use them, one node at a time (what
vSphere does when CNS attaches a disk to the ESXi host of a vSphere Pod).

Upstream splits this between the attach-detach controller (which VolumeAttachment should exist) and
the CSI external-attacher (ControllerPublishVolume, ``status.attached``); here one controller plays
both, keyed by PersistentVolume name:

- the nodes that need a PV are those of pods bound to a node (``spec.nodeName``), not terminated
  (phase neither Succeeded nor Failed), with a ``persistentVolumeClaim`` volume whose claim is bound
  to the PV. A pod being deleted still counts until its object is gone: its VM may still write (the
  agent confirms the end, or the pod GC force-deletes the pods of a lost node). So does a terminated
  pod while a container of it is reported running: the kubelet reports a pod Failed at its
  activeDeadlineSeconds and kills the containers after, and upstream's detach waits for the node's
  ``volumesInUse``, which nestlab's agent does not report; it reports such a pod with no container
  running only once its VM (and pod-init's sync) ended. The
  ``kubernetes.io/pvc-protection`` finalizer keeps a claim its pods use (:mod:`.pvcprotection`);
  should a claim go anyway (its finalizer removed by hand), the volume stays attached to its pods
  until they end, and only then can the provisioner reclaim it;
- at most ONE VolumeAttachment exists per PV (ReadWriteOnce, and the datastore serves one node):
  ``csi-<sha256(volumeHandle + attacher + node)>`` as upstream names it, ``spec.attacher``
  ``datastore.nestlab.io``, ``spec.nodeName``, ``spec.source.persistentVolumeName``. Its status is
  ``attached: true`` and ``attachmentMetadata: {"nbd": "nbd://depot:port/export"}`` once the
  datastore exported the volume to that node (asked again at every sync: the datastore answers the
  same URL, or restarts an export that died); a failure is ``status.attachError`` and an Event
  ``FailedAttachVolume`` ``AttachVolume.Attach failed for volume "pv" : ...`` on the pods. The node
  agent GETs its attachment by that name (the Node authorizer lets it read no other way); one found
  under another name (made by hand, or by another attacher version) is renamed: the named one is
  created and the other deleted, without a detach, since the same node keeps the volume;
- a pod on another node waits, with upstream's Warning ``FailedAttachVolume`` ``Multi-Attach error
  for volume "pv" Volume is already used by pod(s) ...`` (or ``... exclusively attached to one node
  and can't be attached to another`` when no pod of its namespace holds it);
- one pod VM at a time on the attached node too, where upstream would let every pod of the node
  share the mount: a vSphere Pod is its own VM and the datastore's NBD export takes one connection,
  so a second pod VM could not open the disk. The attachment names the pod it serves in
  ``attachmentMetadata`` (``podUID``, :data:`nestlab.agent.pvattach.ATTACHED_POD`: the one it
  served already while that pod still needs it, else the oldest); the node agent starts no other
  pod with it, and each other pod of the node gets the same Warning ``FailedAttachVolume``
  ``Multi-Attach error ... Volume is already used by pod(s) a; a vSphere Pod is its own VM, and a
  ReadWriteOnce volume attaches to one VM at a time``. When that pod ends the attachment names the
  next one (no detach: the node keeps the volume), whose agent then starts it;
- once no pod on the attached node needs the PV, the datastore export is ended and the
  VolumeAttachment deleted; the waiting node's attachment is then made in the same sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nestlab.agent.pvattach import ATTACHED_POD, ONE_VM
from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.kinds.storageclass import PROVISIONER
from nestlab.api.kinds.volumeattachment import (
    NBD,
    attachment_name,  # the one name agent and controller compute
)
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, VOLUMEATTACHMENTS
from nestlab.controller.informer import Controller, EventHandler, InformerFactory
from nestlab.controller.recorder import Recorder
from nestlab.controller.workqueue import WorkQueue
from nestlab.datastore.client import VolumeService
from nestlab.datastore.errors import DatastoreError

log = logging.getLogger(__name__)
Obj = dict[str, Any]
COMPONENT = "attachdetach-controller"
NO_DATASTORE = "nestlab-controller runs without --datastore-url, so it cannot reach the lab datastore"


def claim_names(pod: Obj) -> list[str]:
    """The claims a pod's volumes name."""
    names = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName"):
            names.append(str(claim["claimName"]))
    return names


def claim_of(volume: Obj) -> tuple[str, str]:
    """``(namespace, name)`` of the claim a PV's claimRef names (empty strings when none)."""
    ref = (volume.get("spec") or {}).get("claimRef") or {}
    return str(ref.get("namespace") or ""), str(ref.get("name") or "")


def needs_volume(pod: Obj) -> bool:
    """Whether a pod still holds its volumes: bound to a node and not terminated (deleting counts), or
    terminated with a container still reported running (killed after its deadline: its VM runs)."""
    status = pod.get("status") or {}
    listed = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    running = any("running" in (c.get("state") or {}) for c in listed)
    return bool((pod.get("spec") or {}).get("nodeName")) and (
        status.get("phase") not in ("Succeeded", "Failed") or running
    )


def attachment(volume: Obj, node: str) -> Obj:
    """The VolumeAttachment giving ``volume`` to ``node``."""
    handle = str(volume["spec"]["csi"]["volumeHandle"])
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": attachment_name(handle, node)},
        "spec": {
            "attacher": PROVISIONER,
            "nodeName": node,
            "source": {"persistentVolumeName": volume["metadata"]["name"]},
        },
    }


def multi_attach_message(volume: str, waiting: Obj, holders: list[Obj]) -> str:
    """Upstream's reportMultiAttachError wording for the pod ``waiting`` (other namespaces are counted,
    never named)."""
    namespace = waiting["metadata"].get("namespace")
    local = sorted(p["metadata"]["name"] for p in holders if p["metadata"].get("namespace") == namespace)
    others = len(holders) - len(local)
    if not holders:
        why = "Volume is already exclusively attached to one node and can't be attached to another"
    elif local:
        why = f"Volume is already used by pod(s) {', '.join(local)}"
        if others:
            why += f" and {others} pod(s) in different namespaces"
    else:
        why = f"Volume is already used by {others} pod(s) in different namespaces"
    return f'Multi-Attach error for volume "{volume}" {why}'


def one_vm_message(volume: str, waiting: Obj, holder: Obj) -> str:
    """The Multi-Attach message for a pod of the attached node while another pod's VM holds the
    volume: upstream's wording, then why a vSphere Pod cannot share it."""
    return f"{multi_attach_message(volume, waiting, [holder])}; {ONE_VM}"


def served_pod(attachments: list[Obj], here: list[Obj]) -> Obj:
    """The pod of ``here`` (the attached node's users, oldest first) whose VM gets the volume: the one
    an attachment names already while it still needs the volume, else the oldest."""
    named = {
        str(((a.get("status") or {}).get("attachmentMetadata") or {}).get(ATTACHED_POD) or "")
        for a in attachments
    }
    return next((p for p in here if str(p["metadata"].get("uid", "")) in named), here[0])


class AttacherController:
    """See the module docstring; ``datastore`` None: attachments fail with a message saying so."""

    name = "attachdetach"
    workers = 2

    def __init__(
        self, client: ApiClient, informers: InformerFactory, datastore: VolumeService | None
    ) -> None:
        self.client = client
        self.datastore = datastore
        self.queue = WorkQueue(self.name)
        self.pods = informers.informer(PODS)
        self.claims = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.volumes = informers.informer(PERSISTENTVOLUMES)
        self.attachments = informers.informer(VOLUMEATTACHMENTS)
        self.events = Recorder(client, COMPONENT)
        self._told: dict[str, str] = {}  # pod uid -> the last Event reason+message written about it
        self.pods.add_handler(
            EventHandler(self._pod_changed, lambda _old, new: self._pod_changed(new), self._pod_gone)
        )
        self.claims.add_handler(
            EventHandler(
                self._claim_changed, lambda old, new: self._claim_changed(new, old), self._claim_changed
            )
        )
        self.volumes.add_handler(EventHandler.enqueue(self.queue))
        self.attachments.add_handler(
            EventHandler(
                self._attachment_changed,
                lambda _o, new: self._attachment_changed(new),
                self._attachment_changed,
            )
        )

    # -- handlers: keys only ------------------------------------------------------------------
    def _volumes_of(self, namespace: str, claim_name: str) -> list[str]:
        claim = self.claims.get(f"{namespace}/{claim_name}")
        if claim is None:  # deleted under the pod: the volume still names it in its claimRef
            return [
                str(v["metadata"]["name"])
                for v in self.volumes.list()
                if claim_of(v) == (namespace, claim_name)
            ]
        name = (claim.get("spec") or {}).get("volumeName")
        return [str(name)] if name else []

    def _pod_changed(self, pod: Obj) -> None:
        namespace = pod["metadata"].get("namespace", "")
        for claim_name in claim_names(pod):
            for volume in self._volumes_of(namespace, claim_name):
                self.queue.add(volume)

    def _pod_gone(self, pod: Obj) -> None:
        self._told.pop(str(pod["metadata"].get("uid", "")), None)
        self._pod_changed(pod)

    def _claim_changed(self, claim: Obj, old: Obj | None = None) -> None:
        for one in (claim, old or {}):
            name = (one.get("spec") or {}).get("volumeName")
            if name:
                self.queue.add(str(name))

    def _attachment_changed(self, attachment: Obj) -> None:
        name = ((attachment.get("spec") or {}).get("source") or {}).get("persistentVolumeName")
        if name:
            self.queue.add(str(name))

    # -- sync ---------------------------------------------------------------------------------
    def _users(self, volume: Obj) -> list[Obj]:
        """Pods that need ``volume`` now, oldest first."""
        namespace, claim_name = claim_of(volume)
        if not claim_name:
            return []
        claim = self.claims.get(f"{namespace}/{claim_name}")
        # A claim gone under running pods (its pvc-protection finalizer removed by hand) keeps its
        # volume attached to them until they end; a claim of that name bound elsewhere does not.
        if claim is not None and (claim.get("spec") or {}).get("volumeName") != volume["metadata"]["name"]:
            return []
        users = [
            p for p in self.pods.list(str(namespace)) if needs_volume(p) and claim_name in claim_names(p)
        ]
        return sorted(
            users, key=lambda p: (str(p["metadata"].get("creationTimestamp", "")), p["metadata"]["name"])
        )

    async def sync(self, key: str) -> None:
        name = key
        mine = [
            a
            for a in self.attachments.list()
            if (a.get("spec") or {}).get("attacher") == PROVISIONER
            and ((a.get("spec") or {}).get("source") or {}).get("persistentVolumeName") == name
        ]
        volume = self.volumes.get(name)
        if volume is None or ((volume.get("spec") or {}).get("csi") or {}).get("driver") != PROVISIONER:
            for stale in mine:  # the PV is gone: nothing to export any more
                await self._delete_attachment(stale)
            return
        users = self._users(volume)
        nodes = {str(p["spec"]["nodeName"]) for p in users}
        for current in list(mine):
            node = str(current["spec"].get("nodeName", ""))
            if node not in nodes:
                await self._detach(volume, current)
                mine.remove(current)
        if not users:
            return
        before = list(mine)  # the pod they serve survives a rename in _named
        if mine:
            holder = await self._named(volume, mine)
        else:
            holder = await self._create_attachment(volume, str(users[0]["spec"]["nodeName"]))
        node = str(holder["spec"]["nodeName"])
        here = [p for p in users if p["spec"]["nodeName"] == node]
        served = served_pod(before, here)
        for pod in users:
            if pod["spec"]["nodeName"] != node:
                message = multi_attach_message(name, pod, here)
                await self._tell(pod, "Warning", "FailedAttachVolume", message)
            elif pod is not served:
                await self._tell(pod, "Warning", "FailedAttachVolume", one_vm_message(name, pod, served))
        await self._attach(volume, holder, here, served)

    async def _named(self, volume: Obj, mine: list[Obj]) -> Obj:
        """The attachment held, under the name its node GETs it by (one already so named first).
        One found under another name is replaced by a named one to the same node: no detach, the
        node keeps the volume throughout, and :meth:`_attach` writes the status again."""
        handle = str(volume["spec"]["csi"]["volumeHandle"])

        def named(one: Obj) -> bool:
            return bool(one["metadata"]["name"] == attachment_name(handle, str(one["spec"]["nodeName"])))

        holder = next((a for a in mine if named(a)), mine[0])
        node = str(holder["spec"]["nodeName"])
        if not named(holder):
            old = holder["metadata"]["name"]
            holder = await self._create_attachment(volume, node)
            log.info("renamed attachment %s of %s to %s", old, node, holder["metadata"]["name"])
        for other in mine:
            if not named(other) and str(other["spec"].get("nodeName", "")) == node:
                await self._delete_attachment(other)
        return holder

    async def _tell(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        uid = str(pod["metadata"].get("uid", ""))
        if self._told.get(uid) == reason + message:
            return
        self._told[uid] = reason + message
        await self.events.record(pod, kind, reason, message)

    async def _create_attachment(self, volume: Obj, node: str) -> Obj:
        wanted = attachment(volume, node)
        try:
            return await self.client.create(VOLUMEATTACHMENTS, "", wanted)
        except status.ApiError as exc:
            if exc.code != 409:
                raise
            return await self.client.get(VOLUMEATTACHMENTS, "", wanted["metadata"]["name"])

    async def _attach(self, volume: Obj, holder: Obj, pods: list[Obj], served: Obj) -> None:
        """Export the volume to the holder's node for the pod ``served`` (``pods``: every pod of that
        node needing it, told when the export fails)."""
        name, node = volume["metadata"]["name"], str(holder["spec"]["nodeName"])
        state = holder.get("status") or {}
        try:
            if self.datastore is None:
                raise DatastoreError(NO_DATASTORE)  # noqa: TRY301 - reported like any datastore failure
            url = await self.datastore.attach(str(volume["spec"]["csi"]["volumeHandle"]), node)
        except DatastoreError as exc:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            error = {"attached": False, "attachError": {"time": stamp, "message": str(exc)[:1024]}}
            await self.client.patch(
                VOLUMEATTACHMENTS, "", holder["metadata"]["name"], {"status": error}, "status"
            )
            for pod in pods:
                message = f'AttachVolume.Attach failed for volume "{name}" : {exc}'
                await self._tell(pod, "Warning", "FailedAttachVolume", message)
            raise
        metadata = {NBD: url, ATTACHED_POD: str(served["metadata"].get("uid", ""))}
        if state.get("attached") is not True or state.get("attachmentMetadata") != metadata:
            done = {"attached": True, "attachmentMetadata": metadata, "attachError": None}
            await self.client.patch(
                VOLUMEATTACHMENTS, "", holder["metadata"]["name"], {"status": done}, "status"
            )
            log.info("attached %s to %s for pod %s", name, node, served["metadata"].get("name"))
        message = f'AttachVolume.Attach succeeded for volume "{name}" '
        await self._tell(served, "Normal", "SuccessfulAttachVolume", message)

    async def _detach(self, volume: Obj, holder: Obj) -> None:
        name, node = volume["metadata"]["name"], holder["spec"].get("nodeName")
        if self.datastore is None:
            raise DatastoreError(NO_DATASTORE)
        await self.datastore.detach(str(volume["spec"]["csi"]["volumeHandle"]))
        await self._delete_attachment(holder)
        log.info("detached %s from %s: no pod there uses it", name, node)

    async def _delete_attachment(self, holder: Obj) -> None:
        try:
            await self.client.delete(VOLUMEATTACHMENTS, "", holder["metadata"]["name"])
        except status.ApiError as exc:
            if exc.code != 404:
                raise


def factory(datastore: VolumeService | None) -> Callable[[ApiClient, InformerFactory], Controller]:
    """The CONTROLLERS entry for ``datastore`` (``--datastore-url``; None: attachments fail, saying so)."""

    def build(client: ApiClient, informers: InformerFactory) -> Controller:
        return AttacherController(client, informers, datastore)

    return build
