"""The lab's default StorageClass, and the two admission rules that read StorageClasses.

:func:`ensure_default_class` is part of the API server's bootstrap, as the system namespaces and
Services are: the class ``datastore`` (the lab datastore's provisioner, WaitForFirstConsumer,
Delete) exists from the first start, marked default, so ``kubectl get sc`` shows what a vSphere
Namespace shows once a storage policy is assigned to it. Several servers start at once, so
AlreadyExists is success; a class an administrator changed or unmarked is left as it is (deleting
it brings it back at the next server start, as a deleted ``kube-system`` namespace would).

:func:`default_claim_class` is upstream's DefaultStorageClass admission plugin: a claim that names no
class (``storageClassName`` absent, not ``""``) gets the default one. :func:`check_resize` is
upstream's PersistentVolumeClaimResize: a claim grows only when its class allows expansion.
Both need the store, so they run in admission (:mod:`nestlab.api.quota` calls them), not in the
kind's pure unit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nestlab.api import status
from nestlab.api.kinds.base import Obj
from nestlab.api.kinds.persistentvolumeclaim import BETA_CLASS, class_of
from nestlab.api.kinds.storageclass import DEFAULT_CLASS, default_class, lab_default
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, STORAGECLASSES, Resource
from nestlab.api.store import Store

log = logging.getLogger(__name__)
Create = Callable[[Resource, str, Any], Awaitable[Obj]]
RESIZE_REFUSED = (
    "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must "
    "support resize"
)
"""Upstream's PersistentVolumeClaimResize refusal (a 403)."""


async def ensure_default_class(create: Create) -> bool:
    """Create the lab's default class unless it exists; True when this call created it."""
    try:
        await create(STORAGECLASSES, "", lab_default())
    except status.ApiError as exc:
        if exc.code != 409:
            raise
        return False
    log.info("created the default StorageClass %s", DEFAULT_CLASS)
    return True


async def default_claim_class(store: Store, claim: Obj) -> None:
    """Upstream DefaultStorageClass: fill ``spec.storageClassName`` of a claim that names no class
    with the default class (the newest of those marked default); nothing when there is none."""
    spec = claim.get("spec")
    if not isinstance(spec, dict) or spec.get("storageClassName") is not None:
        return
    if BETA_CLASS in ((claim.get("metadata") or {}).get("annotations") or {}):
        return
    classes, _ = await store.list(STORAGECLASSES, "", lambda _obj: True)
    chosen = default_class(classes)
    if chosen is not None:
        spec["storageClassName"] = chosen["metadata"]["name"]


async def check_resize(store: Store, claim: Obj) -> None:
    """Upstream PersistentVolumeClaimResize: 403 unless the claim's class allows volume expansion."""
    name = class_of(claim)
    allowed = False
    if name:
        try:
            storage_class = await store.get(STORAGECLASSES, "", name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
        else:
            allowed = storage_class.get("allowVolumeExpansion") is True
    if not allowed:
        raise status.admission_forbidden(
            PERSISTENTVOLUMECLAIMS.plural,
            PERSISTENTVOLUMECLAIMS.group,
            str(claim["metadata"].get("name", "")),
            RESIZE_REFUSED,
        )
