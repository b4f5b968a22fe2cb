"""Exercise 2, a pod is a VM: done when pod ex02/web runs, was restarted after its VM was killed,
and carries the QEMU pid of its current VM (docs/exercises/02-pod-is-a-vm.md)."""

from __future__ import annotations

import shlex

from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces, pod, pod_missing

NAMESPACE = "ex02"
ANNOTATION = "lab.nestlab.dev/qemu-pid"


def check(lab: Lab) -> list[str]:
    """What of the pod, its VM and its restart is still missing."""
    missing = pod_missing(lab, NAMESPACE, "web", "steps 1-2")
    found = pod(lab, NAMESPACE, "web")
    if missing or found is None:
        return missing
    meta = found.get("metadata") or {}
    statuses = (found.get("status") or {}).get("containerStatuses") or [{}]
    if int(statuses[0].get("restartCount") or 0) < 1:
        missing.append("pod ex02/web has not been restarted: kill its VM (Break it)")
    noted = str((meta.get("annotations") or {}).get(ANNOTATION, "")).strip()
    if not noted:
        return [*missing, f"pod ex02/web has no annotation {ANNOTATION} (step 8)"]
    host = str((found.get("spec") or {}).get("nodeName", ""))
    pattern = shlex.quote(f"{meta.get('uid')}/vm/vmlinux")
    pids = lab.ssh(host, f"pgrep -f {pattern} || true").split()
    if noted not in pids:
        running = ", ".join(pids) or "none"
        missing.append(
            f"annotation {ANNOTATION} says {noted}, but the pod's QEMU process on {host} is {running} "
            "(note it again: step 8's command)"
        )
    return missing


def reset(lab: Lab) -> None:
    """Delete namespace ex02 (its pod VM with it)."""
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(number=2, slug="pod-is-a-vm", title="A pod is a VM", minutes=15, check=check, reset=reset)
