"""Exercise 8, storage that survives its pod and its host: done when pod ex08/data-0 runs on its
bound claim and reads a note that an earlier ``data-0`` wrote on another host, and that host is
back in placement (docs/exercises/08-storage.md).

The note (``written on esx-NN``, written from the pod's ``NODE_NAME``) is the evidence: its host
differs from the one the pod runs on now only if the pod was replaced elsewhere and the disk
followed it. The same note names the host step 5 cordoned, so reset uncordons exactly that host
and never one that someone else (or maintenance mode) cordoned.
"""

from __future__ import annotations

import re

from nestlab.exercises.base import Exercise, Lab, Obj
from nestlab.exercises.common import delete_namespaces, pod, pod_missing

NAMESPACE = "ex08"
CLAIM = "disk-data-0"
STORAGE_CLASS = "datastore"
_NOTE = re.compile(r"^written on (\S+)$")


def read_note(lab: Lab) -> str | None:
    """The host named in /data/note of data-0 (None when there is no such note)."""
    out = lab.kubectl("-n", NAMESPACE, "exec", "data-0", "--", "cat", "/data/note", check=False)
    match = _NOTE.match(out.strip())
    return match.group(1) if match else None


def _node(lab: Lab, name: str) -> Obj | None:
    return lab.get(f"/api/v1/nodes/{name}")


def claim_missing(lab: Lab) -> list[str]:
    """What is wrong with the claim of data-0 (it exists, of the lab's class, bound)."""
    claim = lab.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{CLAIM}")
    if claim is None:
        return [f"there is no claim {CLAIM} in {NAMESPACE} (step 1's volumeClaimTemplates makes it)"]
    missing = []
    storage_class = (claim.get("spec") or {}).get("storageClassName")
    if storage_class != STORAGE_CLASS:
        missing.append(f"claim {CLAIM} in {NAMESPACE} is of class {storage_class}, not {STORAGE_CLASS}")
    phase = (claim.get("status") or {}).get("phase")
    if phase != "Bound":
        missing.append(f"claim {CLAIM} in {NAMESPACE} is {phase or 'not bound'}, not Bound yet (step 2)")
    return missing


def check(lab: Lab) -> list[str]:
    """What of the StatefulSet, its disk, the note and its move is still missing."""
    if lab.get(f"/api/v1/namespaces/{NAMESPACE}") is None:
        return [f"namespace {NAMESPACE} does not exist yet (step 1)"]
    if lab.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/data") is None:
        return [f"there is no statefulset data in {NAMESPACE} (step 1)"]
    missing = claim_missing(lab) + pod_missing(
        lab, NAMESPACE, "data-0", "step 1, or wait for step 5's replacement"
    )
    if missing:
        return missing
    wrote = read_note(lab)
    if wrote is None:
        return [f"data-0 in {NAMESPACE} has no /data/note saying 'written on HOST' (step 3)"]
    found = pod(lab, NAMESPACE, "data-0") or {}
    now = (found.get("spec") or {}).get("nodeName")
    if now == wrote:
        missing.append(
            f"data-0 still runs on {wrote}, where it wrote its note: "
            "cordon that host and delete the pod (step 5)"
        )
    node = _node(lab, wrote)
    if node is not None and (node.get("spec") or {}).get("unschedulable"):
        missing.append(f"host {wrote} is still cordoned (step 7: kubectl uncordon {wrote})")
    return missing


def reset(lab: Lab) -> None:
    """Uncordon the host the note names (if step 5 left it cordoned), then delete namespace ex08;
    its claim goes with it, and the class's Delete policy removes the volume from the datastore."""
    if pod(lab, NAMESPACE, "data-0") is not None:
        host = read_note(lab)
        node = _node(lab, host) if host else None
        if host and node is not None and (node.get("spec") or {}).get("unschedulable"):
            lab.kubectl("uncordon", host)
    delete_namespaces(lab, NAMESPACE)


EXERCISE = Exercise(
    number=8,
    slug="storage",
    title="Storage that survives its pod and its host",
    minutes=15,
    check=check,
    reset=reset,
)
