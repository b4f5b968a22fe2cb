"""Deployment status and its conditions, as pure functions (upstream calculateStatus/syncRolloutStatus).

``Available`` says whether ``replicas - maxUnavailable`` pods are available
(MinimumReplicasAvailable / MinimumReplicasUnavailable); ``Progressing`` follows a rollout:
NewReplicaSetCreated or FoundNewReplicaSet when the new ReplicaSet appears, ReplicaSetUpdated
(its lastUpdateTime refreshed) on every step that shows progress, NewReplicaSetAvailable once
complete, ProgressDeadlineExceeded (status False) when no progress was seen for
``progressDeadlineSeconds``, DeploymentPaused/DeploymentResumed around ``kubectl rollout pause``.
``kubectl rollout status`` reads exactly these.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from nestlab.controller.pods import parse_time, stamp
from nestlab.controller.rollout import max_unavailable, replicas_of, spec_total, status_int

Obj = dict[str, Any]
NO_DEADLINE = 2**31 - 1  # progressDeadlineSeconds == MaxInt32 means "no deadline"

# Condition reasons (upstream deploymentutil).
NEW_RS = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


def has_deadline(deploy: Obj) -> bool:
    """progressDeadlineSeconds is set and not MaxInt32."""
    value = (deploy.get("spec") or {}).get("progressDeadlineSeconds", 600)
    return value is not None and int(value) != NO_DEADLINE


def get_condition(status: Obj, kind: str) -> Obj | None:
    """The condition of type ``kind`` in a status, if any."""
    return next((dict(c) for c in status.get("conditions") or [] if c.get("type") == kind), None)


def condition(kind: str, state: str, reason: str, message: str, now: datetime) -> Obj:
    """A DeploymentCondition stamped ``now``."""
    moment = stamp(now)
    return {
        "type": kind, "status": state, "lastUpdateTime": moment, "lastTransitionTime": moment,
        "reason": reason, "message": message,
    }  # fmt: skip


def set_condition(status: Obj, cond: Obj) -> None:
    """Upstream SetDeploymentCondition: no-op on same status+reason; keep transition time on same status."""
    current = get_condition(status, cond["type"])
    if (
        current is not None
        and current.get("status") == cond["status"]
        and current.get("reason") == cond["reason"]
    ):
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, cond["type"])
    status["conditions"] = [*(status.get("conditions") or []), cond]


def remove_condition(status: Obj, kind: str) -> None:
    """Drop the condition of type ``kind``."""
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def compute_status(deploy: Obj, all_rs: list[Obj], new_rs: Obj | None, now: datetime) -> Obj:
    """Counts, observedGeneration and the Available condition (upstream calculateStatus)."""
    available = sum(status_int(rs, "availableReplicas") for rs in all_rs)
    old = deploy.get("status") or {}
    status: Obj = {
        "observedGeneration": int((deploy.get("metadata") or {}).get("generation") or 0),
        "replicas": sum(status_int(rs, "replicas") for rs in all_rs),
        "updatedReplicas": status_int(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_rs),
        "availableReplicas": available,
        "unavailableReplicas": max(0, spec_total(all_rs) - available),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas_of(deploy) - max_unavailable(deploy):
        set_condition(
            status, condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability.", now)
        )
    else:
        message = "Deployment does not have minimum availability."
        set_condition(status, condition("Available", "False", MIN_UNAVAILABLE, message, now))
    return status


def complete(deploy: Obj, status: Obj) -> bool:
    """All replicas updated and available, generation observed (upstream DeploymentComplete)."""
    desired = replicas_of(deploy)
    generation = int((deploy.get("metadata") or {}).get("generation") or 0)
    return (
        int(status.get("updatedReplicas") or 0) == desired
        and int(status.get("replicas") or 0) == desired
        and int(status.get("availableReplicas") or 0) == desired
        and int(status.get("observedGeneration") or 0) >= generation
    )


def progressing(deploy: Obj, status: Obj) -> bool:
    """The new status shows progress over the stored one (upstream DeploymentProgressing)."""
    old = deploy.get("status") or {}

    def get(src: Obj, field: str) -> int:
        return int(src.get(field) or 0)

    return (
        get(status, "updatedReplicas") > get(old, "updatedReplicas")
        or get(status, "replicas") - get(status, "updatedReplicas")
        < get(old, "replicas") - get(old, "updatedReplicas")
        or get(status, "readyReplicas") > get(old, "readyReplicas")
        or get(status, "availableReplicas") > get(old, "availableReplicas")
    )


def timed_out(deploy: Obj, status: Obj, now: datetime) -> bool:
    """No progress within progressDeadlineSeconds of the Progressing condition's lastUpdateTime."""
    if not has_deadline(deploy):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    deadline = int((deploy.get("spec") or {}).get("progressDeadlineSeconds", 600))
    return since is not None and since + timedelta(seconds=deadline) < now


def rollout_status(deploy: Obj, all_rs: list[Obj], new_rs: Obj | None, now: datetime) -> Obj:
    """The status after a rollout step, Progressing condition included (upstream syncRolloutStatus)."""
    status = compute_status(deploy, all_rs, new_rs, now)
    if not has_deadline(deploy):
        remove_condition(status, "Progressing")
    current = get_condition(status, "Progressing")
    done = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    name = deploy["metadata"]["name"]
    subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None else f'Deployment "{name}"'
    if has_deadline(deploy) and not done:
        if complete(deploy, status):
            message = f"{subject} has successfully progressed."
            set_condition(status, condition("Progressing", "True", NEW_RS_AVAILABLE, message, now))
        elif progressing(deploy, status):
            cond = condition("Progressing", "True", RS_UPDATED, f"{subject} is progressing.", now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, "Progressing")
            set_condition(status, cond)
        elif timed_out(deploy, status, now):
            message = f"{subject} has timed out progressing."
            set_condition(status, condition("Progressing", "False", TIMED_OUT, message, now))
    failures = [c for rs in all_rs if (c := get_condition(rs.get("status") or {}, "ReplicaFailure"))]
    if failures and failures[0].get("status") == "True":
        first = failures[0]
        reason, message = first.get("reason", ""), first.get("message", "")
        set_condition(status, condition("ReplicaFailure", "True", reason, message, now))
    else:
        remove_condition(status, "ReplicaFailure")
    return status


def requeue_after(deploy: Obj, status: Obj, now: datetime) -> float | None:
    """Seconds until a progressing Deployment's deadline is due (upstream requeueStuckDeployment)."""
    cond = get_condition(status, "Progressing")
    if not has_deadline(deploy) or cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    if complete(deploy, status):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    deadline = int((deploy.get("spec") or {}).get("progressDeadlineSeconds", 600))
    return max(0.0, (since + timedelta(seconds=deadline) - now).total_seconds()) + 1.0
