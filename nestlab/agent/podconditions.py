"""The Pod status fields the kubelet's status generator derives: each container's status (``ready``,
``started``, state and last termination) and the pod's conditions.

Split from :mod:`nestlab.agent.podstate` (which folds pod-init's events into a record): this is how
a record reads as Kubernetes status, worded as upstream (``containers with unready status: [web]``,
``ContainersNotInitialized``, ``PodCompleted``). A container is ready once it runs, its startup
probe (if any) passed and its readiness probe (if any) says so. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestlab.agent.podstate import ContainerState, PodRecord

Obj = dict[str, Any]
UNKNOWN_EXIT_CODE = 137  # 128 + SIGKILL: what upstream reports when the code is unknown


def container_status(c: ContainerState) -> Obj:
    """One ``containerStatuses`` (or ``initContainerStatuses``) entry."""
    state: Obj
    if c.state == "running":
        state = {"running": {"startedAt": c.started_at}}
    elif c.state == "terminated":
        state = {
            "terminated": {
                "exitCode": UNKNOWN_EXIT_CODE if c.exit_code is None else c.exit_code,
                "signal": c.signal,
                "reason": c.reason,
                "message": c.message,
                "startedAt": c.started_at or None,
                "finishedAt": c.finished_at or None,
            }
        }
    else:
        state = {"waiting": {"reason": c.reason, "message": c.message}}
    out: Obj = {
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "ready": c.state == "running" and c.started_ok and (c.ready or not c.has_readiness),
        "started": c.state == "running" and c.started_ok,
        "restartCount": c.restarts,
        "state": state,
        "lastState": {"terminated": c.last} if c.last else {},
    }
    return out


def _condition(kind: str, true: bool, since: str, reason: str = "", message: str = "") -> Obj:
    out: Obj = {"type": kind, "status": "True" if true else "False", "lastTransitionTime": since}
    if not true and reason:
        out["reason"], out["message"] = reason, message
    return out


def conditions(record: PodRecord, statuses: list[Obj], stamp: str) -> list[Obj]:
    """PodScheduled, Initialized, ContainersReady and Ready as the kubelet's status generator words
    them (a completed pod is not ready: PodCompleted)."""
    incomplete = [
        c.name for c in record.init_containers if not (c.state == "terminated" and c.exit_code == 0)
    ]
    unready = [s["name"] for s in statuses if not s["ready"]]
    if record.phase == "Succeeded":
        reason, message = "PodCompleted", ""
    else:
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    ready = record.phase == "Running" and not unready
    return [
        _condition("PodScheduled", True, record.start_time),
        _condition(
            "Initialized",
            not incomplete or record.phase == "Succeeded",
            record.start_time,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        _condition("ContainersReady", ready, stamp, reason, message),
        _condition("Ready", ready, stamp, reason, message),
    ]
