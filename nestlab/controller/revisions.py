"""ControllerRevisions: the template history of a StatefulSet, in the shape kubectl reads.

``kubectl rollout history statefulset/web`` lists the ControllerRevisions the set owns (by their
``revision`` number and ``kubernetes.io/change-cause`` annotation), and ``kubectl rollout undo``
sends a revision's ``data`` back to the set as a strategic merge patch. So a revision's data is
what upstream's statefulset controller stores: ``{"spec": {"template": {..., "$patch": "replace"}}}``,
its name ``<set>-<hash>`` with upstream's hash encoding, and its labels the template's plus
``controller-revision-hash``. Pure: the controller does the reading and writing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Obj = dict[str, Any]
HASH_LABEL = "controller-revision-hash"
DEFAULT_HISTORY_LIMIT = 10  # upstream's default spec.revisionHistoryLimit
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString alphabet: no vowels
_NAME_PREFIX_MAX = 223  # upstream truncates the owner name so "<prefix>-<hash>" stays a valid name


def revision_data(owner: Obj) -> Obj:
    """The patch a revision stores: the owner's pod template, replacing the whole template."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision records (without the ``$patch`` directive)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def _fnv32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def hash_of(data: Obj, collision_count: int) -> str:
    """Upstream's HashControllerRevision: FNV-32 of the data and the collision count, safe-encoded."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    decimal = str(_fnv32(raw + str(collision_count).encode()))
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in decimal)


def new_revision(owner: Obj, kind: str, number: int, collision_count: int) -> Obj:
    """The ControllerRevision recording ``owner``'s current template as revision ``number``."""
    meta = owner["metadata"]
    data = revision_data(owner)
    digest = hash_of(data, collision_count)
    labels = dict(((owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})
    labels[HASH_LABEL] = digest
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{meta['name'][:_NAME_PREFIX_MAX]}-{digest}",
            "namespace": meta.get("namespace", ""),
            "labels": labels,
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(owner, kind)],
        },
        "data": data,
        "revision": number,
    }


def owner_reference(owner: Obj, kind: str) -> Obj:
    """A controller ownerReference to ``owner`` (blocking its foreground deletion, as upstream)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion") or "apps/v1",
        "kind": kind,
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(objects: list[Obj], owner: Obj) -> list[Obj]:
    """The objects whose controller reference is ``owner`` (by UID)."""
    uid = owner["metadata"].get("uid")
    found = []
    for obj in objects:
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        if any(r.get("controller") and r.get("uid") == uid for r in refs):
            found.append(obj)
    return found


def by_number(revisions: list[Obj]) -> list[Obj]:
    """Revisions oldest first (by revision number, then name)."""
    return sorted(revisions, key=lambda r: (int(r.get("revision") or 0), r["metadata"]["name"]))


def next_number(revisions: list[Obj]) -> int:
    """The number the next revision gets: one more than the highest."""
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


def same_template(revision: Obj, data: Obj) -> bool:
    """Whether ``revision`` records exactly ``data``."""
    return bool(revision.get("data") == data)


def to_prune(revisions: list[Obj], live: set[str], limit: int) -> list[str]:
    """Names of the oldest non-live revisions beyond the history ``limit`` (upstream truncateHistory)."""
    history = [r for r in by_number(revisions) if r["metadata"]["name"] not in live]
    excess = len(history) - max(limit, 0)
    return [r["metadata"]["name"] for r in history[: max(excess, 0)]]
