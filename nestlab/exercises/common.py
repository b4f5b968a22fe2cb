"""Small reads and actions the exercises' checks and resets share (through :class:`Lab` only)."""

from __future__ import annotations

from nestlab.exercises.base import Lab, Obj

DELETE_TIMEOUT = "300s"  # a namespace with a few pod VMs empties in well under a minute on the lab


def delete_namespaces(lab: Lab, *names: str, force: bool = False) -> None:
    """Delete namespaces with everything in them and wait until they are gone (absent ones are fine).

    ``force``: a reset need not be graceful, and a pod whose process ignores SIGTERM (the demo web
    server does) holds its namespace for the whole 30 s grace period. So mark the namespaces
    Terminating without waiting (nothing new can start in them), force-delete their pods (grace 0:
    their hosts stop the VMs at once), then wait until the namespaces are gone: with ``kubectl
    wait``, not a second delete (each delete starts a sweeper on the API server it reaches).
    """
    if force:
        lab.kubectl("delete", "namespace", *names, "--ignore-not-found", "--wait=false")
        for name in names:
            lab.kubectl("-n", name, "delete", "pods", "--all", "--force", "--grace-period=0", check=False)
        # an absent namespace counts as deleted (kubectl >= 1.2x answers 0)
        lab.kubectl("wait", "--for=delete", *(f"namespace/{n}" for n in names), f"--timeout={DELETE_TIMEOUT}")
        return
    lab.kubectl(
        "delete", "namespace", *names, "--ignore-not-found", "--wait=true", f"--timeout={DELETE_TIMEOUT}"
    )


def pod(lab: Lab, namespace: str, name: str) -> Obj | None:
    """The pod, or None."""
    return lab.get(f"/api/v1/namespaces/{namespace}/pods/{name}")


def is_running(found: Obj | None) -> bool:
    """Phase Running with every container ready."""
    if found is None:
        return False
    status = found.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)


def pod_missing(lab: Lab, namespace: str, name: str, step: str) -> list[str]:
    """[] when the pod runs, else one sentence saying what is wrong and which step makes it."""
    found = pod(lab, namespace, name)
    if found is None:
        return [f"there is no pod {name} in namespace {namespace} ({step})"]
    if not is_running(found):
        phase = (found.get("status") or {}).get("phase", "unknown")
        return [f"pod {namespace}/{name} is not running and ready yet (phase {phase}; {step})"]
    return []


def image_digest(found: Obj) -> str:
    """The hex digest of the pod's first container's image (its status' imageID), or ""."""
    statuses = (found.get("status") or {}).get("containerStatuses") or [{}]
    return str(statuses[0].get("imageID") or "").rpartition(":")[2]
