"""The pvc-protection controller: a claim deleted while a pod uses it stays Terminating until no pod does.

The API server gives every new PersistentVolumeClaim the ``kubernetes.io/pvc-protection``
finalizer (:func:`nestlab.api.kinds.persistentvolumeclaim.on_create`, upstream's
StorageObjectInUseProtection admission plugin), so ``kubectl delete pvc`` only sets its
``deletionTimestamp``. This controller (upstream pkg/controller/volume/pvcprotection) removes the
finalizer once no pod uses the claim, and the API server then deletes it; the provisioner then
releases its PersistentVolume and reclaims the datastore volume. Until then ``kubectl get pvc``
shows it ``Terminating``, the scheduler places no new pod on it and the agent starts none with it.

"Uses" is upstream's ``podUsesPVC``: a pod of the claim's namespace that is bound to a node and has
a ``persistentVolumeClaim`` volume naming the claim. The pod's phase does not matter: upstream holds
the claim for a Succeeded or Failed pod too, until that pod object is deleted (kubernetes#120756;
the change to let finished pods go, kubernetes PR 123320, was closed unmerged), since a finished
pod's volumes may not be unmounted yet. A pod not yet bound to a node does not hold the claim: the
scheduler will not bind it to a claim being deleted. Before removing the finalizer the controller
asks the API server for a live list of the namespace's pods, as upstream does: a pod created a
moment ago may not be in the informer's cache yet.

Claims made before the API server added the finalizer get it here, as upstream's controller does for
claims made before its admission plugin was enabled.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.kinds.persistentvolumeclaim import PVC_PROTECTION
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PODS
from nestlab.controller.informer import EventHandler, InformerFactory, key_of, split_key
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def uses(pod: Obj, claim: str) -> bool:
    """Whether ``pod`` (of the claim's namespace) holds the claim named ``claim``: bound to a node and
    naming it in a ``persistentVolumeClaim`` volume (upstream podUsesPVC; any phase)."""
    if not (pod.get("spec") or {}).get("nodeName"):
        return False
    return claim in claim_names(pod)


def claim_names(pod: Obj) -> set[str]:
    """The claims ``pod``'s volumes name."""
    names = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = (volume or {}).get("persistentVolumeClaim") if isinstance(volume, dict) else None
        if isinstance(source, dict) and source.get("claimName"):
            names.add(str(source["claimName"]))
    return names


def deletion_candidate(claim: Obj) -> bool:
    """Being deleted and still held by our finalizer (upstream protectionutil.IsDeletionCandidate)."""
    meta = claim.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and PVC_PROTECTION in (meta.get("finalizers") or [])


def needs_finalizer(claim: Obj) -> bool:
    """Not being deleted and without our finalizer (upstream protectionutil.NeedToAddFinalizer)."""
    meta = claim.get("metadata") or {}
    return not meta.get("deletionTimestamp") and PVC_PROTECTION not in (meta.get("finalizers") or [])


class PVCProtectionController:
    """See the module docstring."""

    name = "pvcprotection"
    workers = 1  # a claim's decision is a few cache reads; a live list only for a claim being deleted

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.claims = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.pods = informers.informer(PODS)
        self.claims.add_handler(
            EventHandler(on_add=self._claim_changed, on_update=lambda _old, new: self._claim_changed(new))
        )
        self.pods.add_handler(
            EventHandler(
                on_add=self._pod_changed,
                on_update=self._pod_updated,
                on_delete=self._pod_changed,
            )
        )

    # -- handlers: keys only ------------------------------------------------------------------
    def _claim_changed(self, claim: Obj) -> None:
        if deletion_candidate(claim) or needs_finalizer(claim):
            self.queue.add(key_of(claim))

    def _pod_changed(self, pod: Obj) -> None:
        """A pod's claims that wait for their last user (only those: most claims are not deleting)."""
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        for name in claim_names(pod):
            claim = self.claims.get(f"{namespace}/{name}")
            if claim is not None and deletion_candidate(claim):
                self.queue.add(key_of(claim))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        # an update may hide the deletion of pod X and the creation of pod Y of the same name: X's
        # claims are looked at too (upstream podAddedDeletedUpdated)
        self._pod_changed(new)
        if (old.get("metadata") or {}).get("uid") != (new.get("metadata") or {}).get("uid"):
            self._pod_changed(old)

    # -- sync ---------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            return
        if deletion_candidate(claim):
            if await self._in_use(claim):
                log.debug("keeping %s: a pod uses it", key)
                return
            await self._set_finalizer(claim, present=False)
            log.info("removed %s from %s: no pod uses it", PVC_PROTECTION, key)
        elif needs_finalizer(claim):
            await self._set_finalizer(claim, present=True)

    async def _in_use(self, claim: Obj) -> bool:
        """Whether a pod uses ``claim``: the cache first, then (only if it says no) a live list."""
        namespace, name = split_key(key_of(claim))
        if any(uses(pod, name) for pod in self.pods.list(namespace)):
            return True
        listed = await self.client.list(PODS, namespace)
        return any(uses(pod, name) for pod in listed.get("items") or [])

    async def _set_finalizer(self, claim: Obj, *, present: bool) -> None:
        """An update carrying the cached resourceVersion: a claim changed meanwhile is a 409, and
        the key is retried on a fresh cache (as upstream's Update of its lister's copy)."""
        changed = copy.deepcopy(claim)
        meta = changed["metadata"]
        finalizers = [f for f in meta.get("finalizers") or [] if f != PVC_PROTECTION]
        meta["finalizers"] = [*finalizers, PVC_PROTECTION] if present else finalizers
        namespace = str(meta.get("namespace") or "")
        try:
            await self.client.replace(PERSISTENTVOLUMECLAIMS, namespace, changed)
        except status.ApiError as exc:
            if exc.code != 404:  # gone meanwhile: nothing left to protect
                raise
