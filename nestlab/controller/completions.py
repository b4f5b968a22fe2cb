"""What a Job should do next: the pure half of the Job controller (upstream ``syncJob``/``manageJob``).

Given a Job, its pods and the time, :func:`plan` says how many pods to start, which to delete and
the status to write, with upstream's accounting so ``kubectl get/describe/wait`` read it as usual:

- ``parallelism`` pods at most run at once, never more than the completions still missing;
- failures count failed pods (``restartPolicy: Never``) or container restarts (``OnFailure``);
  beyond ``backoffLimit`` the Job fails with ``BackoffLimitExceeded``; after
  ``activeDeadlineSeconds`` with ``DeadlineExceeded``; replacements after a failure wait
  10 s, 20 s, 40 s ... (at most 6 minutes), upstream's pod failure back-off;
- success and failure are announced first by the interim ``SuccessCriteriaMet`` /
  ``FailureTarget`` condition, then by ``Complete`` / ``Failed`` once no pod is left running
  (upstream since 1.31); ``completionTime`` is set on success only;
- ``suspend`` deletes the running pods and sets ``Suspended``; resuming restarts the clock.

``completionMode: Indexed`` gives each pod one index in ``[0, completions)``
(:mod:`nestlab.controller.indexes`). Counting is from the pods that exist (upstream's "legacy"
tracking, without the job-tracking finalizer): a finished pod deleted by hand before the Job
finished is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nestlab.controller import indexes
from nestlab.controller import pods as podutil

Obj = dict[str, Any]
DEFAULT_BACKOFF_LIMIT = 6  # upstream default of spec.backoffLimit
BACKOFF_BASE = 10.0  # seconds: upstream DefaultJobPodFailureBackOff
BACKOFF_MAX = 360.0  # seconds: upstream caps the pod failure back-off at six minutes
COMPLETE_MESSAGE = "Reached expected number of succeeded pods"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"


@dataclass(frozen=True)
class Note:
    """An Event to record about the Job."""

    type: str
    reason: str
    message: str


@dataclass
class JobPlan:
    """The outcome of one sync of a Job."""

    create: int = 0
    """Pods to start now."""
    indexes: list[int] = field(default_factory=list)
    """For an Indexed Job: the completion index of each pod to start."""
    delete: list[Obj] = field(default_factory=list)
    """Active pods to delete (surplus, suspended, or the Job failed)."""
    status: Obj = field(default_factory=dict)
    events: list[Note] = field(default_factory=list)
    requeue_after: float | None = None
    """Seconds until something time-based is due (deadline, back-off)."""


def finished(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that condition True, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def finish_time(job: Obj) -> datetime | None:
    """When the Job finished (its Complete/Failed condition's transition, or completionTime)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return podutil.parse_time(cond.get("lastTransitionTime"))
    return podutil.parse_time((job.get("status") or {}).get("completionTime"))


def ttl_left(job: Obj, now: datetime) -> float | None:
    """Seconds until a finished Job with ``ttlSecondsAfterFinished`` is due for deletion (<= 0: now)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    done = finish_time(job)
    if ttl is None or done is None or finished(job) is None:
        return None
    return (done + timedelta(seconds=int(ttl)) - now).total_seconds()


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _finished_at(pod: Obj) -> datetime | None:
    stamps = []
    for state in (pod.get("status") or {}).get("containerStatuses") or []:
        stamp = podutil.parse_time(((state.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if stamp is not None:
            stamps.append(stamp)
    if stamps:
        return max(stamps)
    ready = podutil.condition(pod, "Ready")
    return podutil.parse_time((ready or {}).get("lastTransitionTime")) or podutil.parse_time(
        (pod.get("metadata") or {}).get("creationTimestamp")
    )


def backoff_left(pods: list[Obj], now: datetime, base: float = BACKOFF_BASE) -> float:
    """Seconds to wait before replacing failed pods: base * 2**(failures since the last success - 1)."""
    last_success = max(
        (t for p in pods if _phase(p) == "Succeeded" and (t := _finished_at(p)) is not None), default=None
    )
    failures = [
        t
        for p in pods
        if _phase(p) == "Failed"
        and (t := _finished_at(p)) is not None
        and (last_success is None or t > last_success)
    ]
    if not failures:
        return 0.0
    delay = min(BACKOFF_MAX, base * 2 ** (len(failures) - 1))
    return max(0.0, (max(failures) + timedelta(seconds=delay) - now).total_seconds())


def _restarts(pods: list[Obj]) -> int:
    total = 0
    for pod in pods:
        if _phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for state in (status.get("initContainerStatuses") or []) + (
                status.get("containerStatuses") or []
            ):
                total += int(state.get("restartCount") or 0)
    return total


def _condition(kind: str, reason: str, message: str, now: datetime, state: str = "True") -> Obj:
    stamp = podutil.stamp(now)
    return {
        "type": kind,
        "status": state,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _set_condition(conditions: list[Obj], new: Obj) -> bool:
    """Put ``new`` in ``conditions`` unless one of its type already has its status; whether it changed."""
    for index, cond in enumerate(conditions):
        if cond.get("type") == new["type"]:
            if cond.get("status") == new["status"]:
                return False
            conditions[index] = new
            return True
    conditions.append(new)
    return True


def _failure(job: Obj, spec: Obj, failed: int, active: list[Obj], now: datetime) -> tuple[str, str] | None:
    limit = int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
    on_failure = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure"
    restarts = _restarts(active) if on_failure else 0
    past_restarts = on_failure and (restarts > 0 if limit == 0 else restarts >= limit)
    if failed > limit or past_restarts:
        return "BackoffLimitExceeded", BACKOFF_MESSAGE
    deadline = spec.get("activeDeadlineSeconds")
    started = podutil.parse_time((job.get("status") or {}).get("startTime"))
    if deadline is not None and started is not None and now >= started + timedelta(seconds=int(deadline)):
        return "DeadlineExceeded", DEADLINE_MESSAGE
    return None


@dataclass(frozen=True)
class _Pods:
    """A Job's pods, counted."""

    active: list[Obj]
    terminating: list[Obj]
    succeeded: int
    failed: int

    @staticmethod
    def of(pods: list[Obj]) -> _Pods:
        terminal = ("Succeeded", "Failed")
        return _Pods(
            [p for p in pods if podutil.is_active(p)],
            [
                p
                for p in pods
                if (p.get("metadata") or {}).get("deletionTimestamp") and _phase(p) not in terminal
            ],
            sum(1 for p in pods if _phase(p) == "Succeeded"),
            sum(1 for p in pods if _phase(p) == "Failed"),
        )

    @property
    def gone(self) -> bool:
        """No pod runs or is still shutting down."""
        return not self.active and not self.terminating


def _suspension(suspended: bool, status: Obj, conditions: list[Obj], now: datetime, result: JobPlan) -> None:
    """The Suspended condition, and the clock restarted on resume (upstream resets startTime)."""
    if suspended:
        if _set_condition(conditions, _condition("Suspended", "JobSuspended", "Job suspended", now)):
            result.events.append(Note("Normal", "Suspended", "Job suspended"))
        return
    if any(c.get("type") == "Suspended" for c in conditions) and _set_condition(
        conditions, _condition("Suspended", "JobResumed", "Job resumed", now, "False")
    ):
        result.events.append(Note("Normal", "Resumed", "Job resumed"))
        status["startTime"] = podutil.stamp(now)
    if not status.get("startTime"):
        status["startTime"] = podutil.stamp(now)


def _fail(
    reason: str, message: str, counted: _Pods, conditions: list[Obj], *, now: datetime, result: JobPlan
) -> None:
    _set_condition(conditions, _condition("FailureTarget", reason, message, now))
    result.delete = list(counted.active)
    if counted.gone:
        _set_condition(conditions, _condition("Failed", reason, message, now))
        result.events.append(Note("Warning", reason, message))


def _succeed(
    indefinite: bool, counted: _Pods, status: Obj, conditions: list[Obj], *, now: datetime, result: JobPlan
) -> None:
    _set_condition(conditions, _condition("SuccessCriteriaMet", "CompletionsReached", COMPLETE_MESSAGE, now))
    if not indefinite:
        result.delete = list(counted.active)  # completions reached: extra pods are not needed
    if counted.gone:
        _set_condition(conditions, _condition("Complete", "CompletionsReached", COMPLETE_MESSAGE, now))
        status["completionTime"] = podutil.stamp(now)
        result.events.append(Note("Normal", "Completed", "Job completed"))


def plan(job: Obj, pods: list[Obj], now: datetime, backoff_base: float = BACKOFF_BASE) -> JobPlan:
    """What to do for ``job`` given its pods (see the module docstring)."""
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    if finished(job) is not None:
        return JobPlan(status=dict(old))  # a finished Job's counts are final, whatever happens to its pods
    counted = _Pods.of(pods)
    conditions = [dict(c) for c in old.get("conditions") or []]
    status: Obj = {
        **old,
        "active": len(counted.active),
        "ready": sum(1 for p in counted.active if podutil.is_ready(p)),
        "terminating": len(counted.terminating),
        "succeeded": counted.succeeded,
        "failed": counted.failed,
        "uncountedTerminatedPods": {},
        "conditions": conditions,
    }
    result = JobPlan(status=status)
    _suspension(bool(spec.get("suspend")), status, conditions, now, result)
    if spec.get("suspend"):
        result.delete = list(counted.active)
        return result
    interim = {c["type"]: c for c in conditions if c.get("status") == "True"}
    target = interim.get("FailureTarget")
    failure = (
        (str(target.get("reason", "")), str(target.get("message", "")))
        if target is not None
        else _failure({**job, "status": status}, spec, counted.failed, counted.active, now)
    )
    if failure is not None:
        _fail(*failure, counted, conditions, now=now, result=result)
        return result
    done, want, state = _targets(spec, counted, pods, status)
    if done or "SuccessCriteriaMet" in interim:
        _succeed(spec.get("completions") is None, counted, status, conditions, now=now, result=result)
        return result
    deadline, started = spec.get("activeDeadlineSeconds"), podutil.parse_time(status["startTime"])
    if deadline is not None and started is not None:
        result.requeue_after = (started + timedelta(seconds=int(deadline)) - now).total_seconds()
    active = counted.active if state is None else [p for p in counted.active if p not in state.surplus]
    # podReplacementPolicy Failed: a replacement waits until the pod it replaces has fully terminated
    occupied = len(active) + (len(counted.terminating) if spec.get("podReplacementPolicy") == "Failed" else 0)
    if state is not None and state.surplus:
        result.delete = list(state.surplus)
    elif len(active) > want:
        result.delete = podutil.to_delete(active, active, len(active) - want)
    elif occupied < want:
        wait = backoff_left(pods, now, backoff_base)
        if wait > 0:
            result.requeue_after = min(wait, result.requeue_after or wait)
        elif state is not None:
            result.indexes = state.pending[: want - occupied]
            result.create = len(result.indexes)
        else:
            result.create = want - occupied
    return result


def _targets(
    spec: Obj, counted: _Pods, pods: list[Obj], status: Obj
) -> tuple[bool, int, indexes.IndexState | None]:
    """Whether the Job succeeded, how many pods should run, and (Indexed) its index state."""
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1))
    if spec.get("completionMode") == "Indexed" and completions is not None:
        state = indexes.assess(pods, int(completions))
        status["succeeded"] = len(state.succeeded)
        status["completedIndexes"] = indexes.compress(set(state.succeeded))
        return (
            len(state.succeeded) >= int(completions),
            min(parallelism, state.running + len(state.pending)),
            state,
        )
    if completions is None:  # a work queue: done at the first success, once the others finish
        done = counted.succeeded > 0
        return done, len(counted.active) if done else parallelism, None
    return (
        counted.succeeded >= int(completions),
        max(0, min(parallelism, int(completions) - counted.succeeded)),
        None,
    )
