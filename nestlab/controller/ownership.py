"""Claiming objects for a controller: adopt matching orphans, release what stopped matching.

Upstream's ``ControllerRefManager``: a controller owns the objects whose controller
ownerReference carries its uid; an orphan (no controller reference) whose labels match the
selector is adopted (after a fresh read proves the owner still exists and is not being deleted),
and an owned object whose labels no longer match is released (its reference removed). Objects
controlled by someone else are never touched. Used by the ReplicaSet controller for pods and by
the Deployment controller for ReplicaSets; any workload controller can use it.
"""

from __future__ import annotations

import logging
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import Resource
from nestlab.controller import selector as labelsel
from nestlab.controller.informer import controller_ref
from nestlab.controller.pods import owner_reference

log = logging.getLogger(__name__)
Obj = dict[str, Any]


async def delete_exact(client: ApiClient, resource: Resource, obj: Obj, propagation: str) -> bool:
    """Delete this very object (a uid precondition: not a newer one with its name); False when it
    is already gone or was replaced, which is what the caller wanted anyway."""
    meta = obj["metadata"]
    try:
        await client.delete(
            resource,
            meta.get("namespace", ""),
            meta["name"],
            propagation=propagation,
            uid=meta.get("uid", ""),
        )
    except status.ApiError as exc:
        if exc.code in (404, 409):
            return False
        raise
    return True


def owner_refs(obj: Obj) -> list[Obj]:
    """A copy of ``obj``'s ownerReferences."""
    return [dict(r) for r in (obj.get("metadata") or {}).get("ownerReferences") or []]


async def set_owner_refs(client: ApiClient, resource: Resource, obj: Obj, refs: list[Obj]) -> Obj | None:
    """Merge-patch ``obj``'s ownerReferences to ``refs``; None if it vanished or changed meanwhile."""
    meta = obj["metadata"]
    patch = {"metadata": {"ownerReferences": refs or None}}
    try:
        return await client.patch(resource, meta.get("namespace", ""), meta["name"], patch)
    except status.ApiError as exc:
        if exc.code in (404, 409, 422):
            return None  # gone or changed: the next sync sees the new state
        raise


async def claim(
    client: ApiClient,
    owner_resource: Resource,
    owner: Obj,
    selector: Obj | None,
    *,
    resource: Resource,
    candidates: list[Obj],
) -> list[Obj]:
    """The candidates ``owner`` controls after adopting matching orphans and releasing the rest."""
    uid = owner["metadata"].get("uid")
    owner_name = owner["metadata"]["name"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    owned: list[Obj] = []
    checked: bool | None = None
    for obj in candidates:
        ref = controller_ref(obj)
        labels = obj["metadata"].get("labels")
        if ref is not None and ref.get("uid") != uid:
            continue
        if ref is not None:
            if labelsel.matches(selector, labels) or deleting:
                owned.append(obj)
            else:
                log.info(
                    "releasing %s %s from %s",
                    resource.kind,
                    obj["metadata"]["name"],
                    owner_name,
                )
                await set_owner_refs(
                    client, resource, obj, [r for r in owner_refs(obj) if r.get("uid") != uid]
                )
            continue
        if deleting or obj["metadata"].get("deletionTimestamp") or labelsel.is_empty(selector):
            continue
        if not labelsel.matches(selector, labels):
            continue
        if checked is None:  # upstream canAdopt: one fresh read of the owner before taking anything
            fresh = await client.get(owner_resource, owner["metadata"].get("namespace", ""), owner_name)
            checked = fresh["metadata"].get("uid") == uid and not fresh["metadata"].get("deletionTimestamp")
        if not checked:
            return owned
        ref = owner_reference(owner, owner_resource.group_version, owner_resource.kind)
        adopted = await set_owner_refs(client, resource, obj, [*owner_refs(obj), ref])
        if adopted is not None:
            log.info("adopted %s %s into %s", resource.kind, obj["metadata"]["name"], owner_name)
            owned.append(adopted)
    return owned
