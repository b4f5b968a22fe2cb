"""Pure facts about pods that workload controllers share (upstream ``podutil`` and ``controller``).

Whether a pod is active, ready or available (``minReadySeconds``), which pods to delete first
when scaling down (upstream's ``ActivePodsWithRanks`` order), and the pod a controller creates
from its template. No I/O: the controllers feed these from their informers' caches.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

Obj = dict[str, Any]
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}  # upstream podPhaseToOrdinal


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp (``...Z``, optionally with fractions) as an aware datetime."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def stamp(moment: datetime) -> str:
    """A metav1.Time string."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_active(pod: Obj) -> bool:
    """Counted toward replicas: neither finished (Succeeded/Failed) nor being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of type ``kind``, if any."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def is_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True."""
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    """When the pod last became ready (its Ready condition's lastTransitionTime)."""
    cond = condition(pod, "Ready")
    return parse_time(cond.get("lastTransitionTime")) if cond and cond.get("status") == "True" else None


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (upstream IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) <= now


def available_in(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until a ready pod becomes available (None if not ready or already available)."""
    since = ready_since(pod)
    if since is None or min_ready_seconds <= 0:
        return None
    left = (since + timedelta(seconds=min_ready_seconds) - now).total_seconds()
    return left if left > 0 else None


def _restarts(pod: Obj) -> int:
    return sum(
        int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _cost(pod: Obj) -> int:
    try:
        return int(((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST, "0"))
    except ValueError:
        return 0


def deletion_rank(pod: Obj, doubled_up: int) -> tuple[Any, ...]:
    """Sort key: pods that sort first are deleted first (upstream ``ActivePodsWithRanks.Less``).

    Unassigned before assigned; Pending before Unknown before Running; not ready before ready;
    lower pod-deletion-cost first; more pods of the same owner on its node first; ready for less
    time first; more restarts first; newer first.
    """
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    ready = is_ready(pod)
    since = ready_since(pod) if ready else None
    created = parse_time(meta.get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_ORDER.get((pod.get("status") or {}).get("phase") or "Pending", 0),
        1 if ready else 0,
        _cost(pod),
        -doubled_up,
        -(since.timestamp()) if since is not None else 0.0,
        -_restarts(pod),
        -(created.timestamp()) if created is not None else float("-inf"),
    )


def to_delete(pods: list[Obj], related: list[Obj], count: int) -> list[Obj]:
    """The ``count`` pods to delete when scaling down, ranked by :func:`deletion_rank`.

    ``related`` are the active pods of the same owner (and its siblings): a pod sharing its node
    with more of them is preferred, to spread what remains (upstream getPodsRankedByRelatedPodsOnSameNode).
    """
    per_node: dict[str, int] = {}
    for pod in related:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and is_active(pod):
            per_node[node] = per_node.get(node, 0) + 1

    def key(pod: Obj) -> tuple[Any, ...]:
        node = (pod.get("spec") or {}).get("nodeName")
        return deletion_rank(pod, per_node.get(node, 0) if node else 0)

    return sorted(pods, key=key)[:count]


def from_template(template: Obj, namespace: str, owner_ref: Obj, generate_name: str) -> Obj:
    """The pod a controller creates from its ``spec.template`` (upstream GetPodFromTemplate)."""
    meta = template.get("metadata") or {}
    pod_meta: Obj = {"generateName": generate_name, "namespace": namespace, "ownerReferences": [owner_ref]}
    for field in ("labels", "annotations", "finalizers"):
        if meta.get(field):
            pod_meta[field] = copy.deepcopy(meta[field])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def owner_reference(owner: Obj, api_version: str, kind: str) -> Obj:
    """A controller ownerReference to ``owner`` (blockOwnerDeletion for foreground deletion)."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
