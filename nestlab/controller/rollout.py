"""Deployment rollout arithmetic, as pure functions (upstream ``deployment/util``).

Everything the Deployment controller decides without I/O lives here, so it can be tested against
upstream's numbers: maxSurge/maxUnavailable from ints or percentages (surge rounds up,
unavailable rounds down, both 0 means unavailable 1), how far the new ReplicaSet may grow and
the old ones shrink in a rolling update, proportional scaling of several active ReplicaSets,
the pod-template-hash (fnv32a + SafeEncodeString), revision annotations (``revision``,
``revision-history`` on reuse, ``desired-replicas``/``max-replicas``) and which old ReplicaSets
revisionHistoryLimit lets go. Status and conditions are in :mod:`nestlab.controller.progress`.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from typing import Any

Obj = dict[str, Any]
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = {
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
    MAX_REPLICAS, "deprecated.deployment.rollback.to",
}  # fmt: skip
HISTORY_CHARS = 2000  # upstream maxRevHistoryLengthInChars
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # upstream rand.SafeEncodeString alphabet


# -- spec with upstream defaults ---------------------------------------------------------------
def replicas_of(obj: Obj) -> int:
    """``spec.replicas`` (default 1)."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj, field: str) -> int:
    """An integer status field (absent is 0)."""
    return int((obj.get("status") or {}).get(field) or 0)


def is_rolling(deploy: Obj) -> bool:
    """RollingUpdate (the default) rather than Recreate."""
    kind = ((deploy.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate"
    return bool(kind != "Recreate")


def scaled(value: int | str | None, total: int, round_up: bool, default: str = "25%") -> int:
    """An IntOrString (``3`` or ``"25%"``) against ``total`` (upstream GetScaledValueFromIntOrPercent)."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError as exc:
            raise ValueError(f"invalid value for IntOrString: invalid value {text!r}") from exc
    percent = int(text[:-1])
    raw = percent * total / 100
    return math.ceil(raw) if round_up else math.floor(raw)


def fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against ``spec.replicas`` (upstream ResolveFenceposts)."""
    if not is_rolling(deploy):
        return 0, 0
    rolling = ((deploy.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas_of(deploy)
    surge = scaled(rolling.get("maxSurge"), desired, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # upstream: a rollout must be able to make progress
    return surge, unavailable


def max_surge(deploy: Obj) -> int:
    """Pods allowed above ``spec.replicas`` during a rolling update (0 for Recreate)."""
    return fenceposts(deploy)[0]


def max_unavailable(deploy: Obj) -> int:
    """Pods allowed to be unavailable (0 for Recreate or 0 replicas; never above replicas)."""
    desired = replicas_of(deploy)
    if not is_rolling(deploy) or desired == 0:
        return 0
    return min(fenceposts(deploy)[1], desired)


# -- templates, hashes, revisions ------------------------------------------------------------------
def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """The pod-template-hash label value (fnv32a of the template, SafeEncodeString'd like upstream)."""
    value = 0x811C9DC5
    data = json.dumps(_semantic(template or {}), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF)
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_ALPHANUMS[ord(char) % len(_ALPHANUMS)] for char in str(value))


def _semantic(value: Any) -> Any:
    """``value`` without null, empty maps and empty lists (Go's Semantic.DeepEqual sees no difference)."""
    if isinstance(value, dict):
        cleaned = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None and v not in ({}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def without_hash(template: Obj) -> Obj:
    """A pod template without the pod-template-hash label, nulls and empty maps (for comparing).

    kubectl rollout undo sends the ReplicaSet's template back as Go serialised it
    (``creationTimestamp: null``): semantically the same template, so the same ReplicaSet.
    """
    clean = copy.deepcopy(template or {})
    labels = (clean.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    result: Obj = _semantic(clean)
    return result


def same_template(one: Obj, other: Obj) -> bool:
    """Templates equal ignoring pod-template-hash (upstream EqualIgnoreHash)."""
    return without_hash(one) == without_hash(other)


def created(obj: Obj) -> tuple[str, str]:
    """Sort key: oldest first, by creationTimestamp then name (upstream ReplicaSetsByCreationTimestamp)."""
    meta = obj.get("metadata") or {}
    return meta.get("creationTimestamp") or "", meta.get("name") or ""


def revision(obj: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation (0 when absent or not a number)."""
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def find_new(deploy: Obj, replica_sets: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (upstream FindNewReplicaSet)."""
    template = (deploy.get("spec") or {}).get("template") or {}
    for rs in sorted(replica_sets, key=created):
        if same_template((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def new_rs_annotations(deploy: Obj, rs: Obj, new_revision: int, exists: bool) -> tuple[Obj, bool]:
    """The ReplicaSet's annotations after a sync (upstream SetNewReplicaSetAnnotations).

    Copies the Deployment's annotations (change-cause among them; not the controller's own),
    raises the revision, records a reused ReplicaSet's former revision in revision-history, and
    stamps desired/max replicas on a ReplicaSet about to be created. Returns (annotations, changed).
    """
    annotations = dict((rs.get("metadata") or {}).get("annotations") or {})
    changed = False
    for key, value in ((deploy.get("metadata") or {}).get("annotations") or {}).items():
        if key not in _NOT_COPIED and annotations.get(key) != value:
            annotations[key] = value
            changed = True
    had = REVISION in annotations
    old = revision(rs)
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if had:
            annotations[REVISION_HISTORY] = _history(annotations.get(REVISION_HISTORY, ""), str(old))
    if not exists:
        desired = replicas_of(deploy)
        annotations[DESIRED_REPLICAS] = str(desired)
        annotations[MAX_REPLICAS] = str(desired + max_surge(deploy))
        changed = True
    return annotations, changed


def _history(history: str, old: str) -> str:
    if not history:
        return old
    revisions = history.split(",")
    total = len(history) + len(old) + 1
    start = 0
    while total > HISTORY_CHARS and start < len(revisions):
        total -= len(revisions[start]) + 1
        start += 1
    return ",".join([*revisions[start:], old])


# -- rolling update arithmetic ---------------------------------------------------------------------
def spec_total(replica_sets: list[Obj]) -> int:
    """Sum of ``spec.replicas`` (upstream GetReplicaCountForReplicaSets)."""
    return sum(replicas_of(rs) for rs in replica_sets)


def new_rs_replicas(deploy: Obj, all_rs: list[Obj], new_rs: Obj) -> int:
    """How many replicas the new ReplicaSet may have now (upstream NewRSNewReplicas)."""
    desired = replicas_of(deploy)
    if not is_rolling(deploy):
        return desired
    current = spec_total(all_rs)
    ceiling = desired + max_surge(deploy)
    if current >= ceiling:
        return replicas_of(new_rs)
    return replicas_of(new_rs) + min(ceiling - current, desired - replicas_of(new_rs))


def cleanup_unhealthy(old_rs: list[Obj], max_cleanup: int) -> list[tuple[Obj, int]]:
    """Scale-downs of unavailable old replicas, oldest first (upstream cleanupUnhealthyReplicas)."""
    plans, done = [], 0
    for rs in sorted(old_rs, key=created):
        if done >= max_cleanup:
            break
        replicas, available = replicas_of(rs), status_int(rs, "availableReplicas")
        if replicas in (0, available):
            continue
        count = min(max_cleanup - done, replicas - available)
        plans.append((rs, replicas - count))
        done += count
    return plans


def scale_down_old(all_rs: list[Obj], old_rs: list[Obj], deploy: Obj) -> list[tuple[Obj, int]]:
    """Scale-downs of old ReplicaSets keeping ``replicas - maxUnavailable`` available (oldest first)."""
    minimum = replicas_of(deploy) - max_unavailable(deploy)
    available = sum(status_int(rs, "availableReplicas") for rs in all_rs)
    if available <= minimum:
        return []
    budget, done, plans = available - minimum, 0, []
    for rs in sorted(old_rs, key=created):
        if done >= budget:
            break
        replicas = replicas_of(rs)
        if replicas == 0:
            continue
        count = min(replicas, budget - done)
        plans.append((rs, replicas - count))
        done += count
    return plans


def old_scale_room(all_rs: list[Obj], new_rs: Obj, deploy: Obj) -> int:
    """How many old replicas may go now (upstream reconcileOldReplicaSets' maxScaledDown)."""
    minimum = replicas_of(deploy) - max_unavailable(deploy)
    new_unavailable = replicas_of(new_rs) - status_int(new_rs, "availableReplicas")
    return spec_total(all_rs) - minimum - new_unavailable


def _fraction(rs: Obj, deploy: Obj) -> int:
    desired = replicas_of(deploy)
    if desired == 0:
        return -replicas_of(rs)
    allowed = desired + max_surge(deploy)
    try:
        annotated = int(((rs.get("metadata") or {}).get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = status_int(deploy, "replicas")
    if annotated <= 0:
        return 0
    size = replicas_of(rs) * allowed / annotated
    return math.floor(size + 0.5) - replicas_of(rs)  # upstream integer.RoundToInt32


def proportional(deploy: Obj, active: list[Obj]) -> list[tuple[Obj, int]]:
    """New sizes when a Deployment with several active ReplicaSets is scaled (upstream scale()).

    Each ReplicaSet gets a share proportional to its size; the leftover goes to the largest (when
    growing, newest first among equals) or is taken from the smallest (when shrinking, oldest first).
    """
    allowed = replicas_of(deploy) + max_surge(deploy) if replicas_of(deploy) > 0 else 0
    to_add = allowed - spec_total(active)
    growing = to_add > 0
    ordered = sorted(active, key=created, reverse=growing)
    ordered.sort(key=replicas_of, reverse=True)
    added, sizes = 0, {}
    for rs in ordered:
        name = rs["metadata"]["name"]
        share = 0
        if to_add not in (0, added) and replicas_of(rs) != 0:
            share = _fraction(rs, deploy)
            share = min(share, to_add - added) if growing else max(share, to_add - added)
        sizes[name] = replicas_of(rs) + share
        added += share
    if ordered and to_add != 0:  # the leftover goes to (or comes from) the first, the largest
        first = ordered[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return [(rs, sizes[rs["metadata"]["name"]]) for rs in ordered]


def saturated(deploy: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet runs all of the Deployment's replicas, all available (upstream IsSaturated)."""
    if rs is None:
        return False
    desired = replicas_of(deploy)
    try:
        annotated = int(((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    return (
        replicas_of(rs) == desired and annotated == desired and status_int(rs, "availableReplicas") == desired
    )


def is_scaling_event(deploy: Obj, active: list[Obj]) -> bool:
    """An active ReplicaSet was sized for another ``spec.replicas`` (upstream isScalingEvent)."""
    desired = str(replicas_of(deploy))
    for rs in active:
        annotated = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS)
        if annotated is not None and annotated != desired:
            return True
    return False


def to_clean(deploy: Obj, old_rs: list[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond revisionHistoryLimit that may be deleted (upstream cleanupDeployment)."""
    limit = (deploy.get("spec") or {}).get("revisionHistoryLimit", 10)
    if limit is None:
        return []
    alive = [rs for rs in old_rs if not rs["metadata"].get("deletionTimestamp")]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return []
    out = []
    for rs in sorted(alive, key=lambda r: (revision(r), created(r)))[:excess]:
        generation = int(rs["metadata"].get("generation") or 0)
        if status_int(rs, "replicas") != 0 or replicas_of(rs) != 0:
            continue
        if generation > status_int(rs, "observedGeneration"):
            continue
        out.append(rs)
    return out
