"""The ``/scale`` subresource (autoscaling/v1 Scale) of the replicated workloads.

``kubectl scale`` reads and writes it: 1.20 with GET and PUT, recent versions with a merge PATCH.
The Scale is a view of the object (spec.replicas, the observed replicas and the pod selector as a
string); writing it changes only the object's ``spec.replicas``, through the object's own update
path so its validation, generation and resourceVersion rules apply.
"""

from __future__ import annotations

import copy
from typing import Any

from nestlab.api import kinds, status
from nestlab.api.kinds.base import Resource
from nestlab.api.patch import apply_patch
from nestlab.api.registry import Registry
from nestlab.api.store import Obj

MERGE = "application/merge-patch+json"


def scale_of(resource: Resource, obj: Obj) -> Obj:
    """The Scale view of a workload object."""
    kind = kinds.of(resource)
    if kind.scale is None:
        raise status.path_not_found()
    meta = obj["metadata"]
    state = obj.get("status") or {}
    replicas = state.get(kind.scale.status_replicas)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": replicas if isinstance(replicas, int) else 0,
            "selector": kind.scale.selector(obj),
        },
    }


def _replicas(scale: Any, name: str) -> int:
    if not isinstance(scale, dict):
        raise status.bad_request("the body must be an autoscaling/v1 Scale object")
    replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale.get("spec"), dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        cause = status.Cause("spec.replicas", "Required value: must be an integer", "FieldValueRequired")
        raise status.invalid("Scale", "autoscaling", name, [cause])
    if replicas < 0:
        cause = status.Cause(
            "spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"
        )
        raise status.invalid("Scale", "autoscaling", name, [cause])
    return replicas


async def get(registry: Registry, resource: Resource, namespace: str, name: str) -> Obj:
    return scale_of(resource, await registry.get(resource, namespace, name))


async def update(registry: Registry, resource: Resource, namespace: str, name: str, body: Any) -> Obj:
    """PUT scale: set spec.replicas (compare-and-swap when the Scale carries a resourceVersion)."""
    replicas = _replicas(body, name)
    patch: Obj = {"spec": {"replicas": replicas}}
    version = ((body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}).get(
        "resourceVersion"
    )
    if version:
        patch["metadata"] = {"resourceVersion": str(version)}
    updated = await registry.patch(resource, namespace, name, MERGE, patch)
    return scale_of(resource, updated)


async def patch(
    registry: Registry, resource: Resource, namespace: str, name: str, *, content_type: str, body: Any
) -> Obj:
    """PATCH scale: apply the patch to the current Scale, then write its replicas."""
    current = scale_of(resource, await registry.get(resource, namespace, name))
    patched = apply_patch(content_type, copy.deepcopy(current), body)
    if isinstance(patched, dict) and isinstance(patched.get("metadata"), dict) and body_unpinned(body):
        patched["metadata"].pop("resourceVersion", None)
    return await update(registry, resource, namespace, name, patched)


def body_unpinned(body: Any) -> bool:
    """Whether a patch leaves resourceVersion alone (then the write retries on contention)."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    return not (isinstance(meta, dict) and meta.get("resourceVersion"))
