"""The CronJob controller: a Job at each scheduled time, as upstream's cronjob controller (v2).

Each sync works out the most recent scheduled time not yet run (:mod:`nestlab.controller.cron`),
applies ``startingDeadlineSeconds``, ``concurrencyPolicy`` (Allow, Forbid, Replace) and
``suspend``, creates the Job ``<cronjob>-<scheduled time in minutes since the epoch>`` (the
name makes a second creation for the same time a harmless 409), keeps ``status.active``,
``lastScheduleTime`` and ``lastSuccessfulTime``, prunes finished Jobs beyond the history limits,
and re-queues itself for just after the next scheduled time. :func:`plan` is the pure part; the
clock is injected so tests see a CronJob fire without waiting for the minute.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import CRONJOBS, JOBS
from nestlab.controller import completions, cron, ownership, revisions
from nestlab.controller import pods as podutil
from nestlab.controller.completions import Note
from nestlab.controller.informer import EventHandler, InformerFactory, enqueue_controller, split_key
from nestlab.controller.recorder import Recorder
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]
KIND = "CronJob"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SLACK = 0.1  # seconds past the scheduled time before syncing again (upstream's 100 ms)
_DEFAULT_SUCCESS_HISTORY, _DEFAULT_FAILED_HISTORY = 3, 1  # upstream defaults


@dataclass
class CronPlan:
    """The outcome of one sync of a CronJob."""

    create: Obj | None = None
    """The Job to create now."""
    replace: list[Obj] = field(default_factory=list)
    """Active Jobs to delete first (concurrencyPolicy Replace)."""
    prune: list[Obj] = field(default_factory=list)
    """Finished Jobs beyond the history limits."""
    status: Obj = field(default_factory=dict)
    events: list[Note] = field(default_factory=list)
    requeue_after: float | None = None


def job_name(cronjob: Obj, scheduled: datetime) -> str:
    """``<cronjob>-<minutes since the epoch>``, upstream's name for the Job of one scheduled time."""
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_for(cronjob: Obj, scheduled: datetime, tz: tzinfo = UTC) -> Obj:
    """The Job the CronJob's ``jobTemplate`` gives for ``scheduled`` (upstream getJobFromTemplate2)."""
    meta = cronjob["metadata"]
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    annotations[SCHEDULED_ANNOTATION] = scheduled.astimezone(tz).isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cronjob, scheduled),
            "namespace": meta.get("namespace", ""),
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [podutil.owner_reference(cronjob, "batch/v1", KIND)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def reference(job: Obj) -> Obj:
    """The ObjectReference ``status.active`` holds for ``job``."""
    meta = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def _start(job: Obj) -> tuple[int, str, str]:
    started = (job.get("status") or {}).get("startTime")
    return (0 if started else 1, started or "", job["metadata"]["name"])


def _history(cronjob: Obj, jobs: list[Obj]) -> list[Obj]:
    spec = cronjob.get("spec") or {}
    victims = []
    for kind, limit in (
        ("Complete", spec.get("successfulJobsHistoryLimit", _DEFAULT_SUCCESS_HISTORY)),
        ("Failed", spec.get("failedJobsHistoryLimit", _DEFAULT_FAILED_HISTORY)),
    ):
        done = sorted((j for j in jobs if completions.finished(j) == kind), key=_start)
        victims += done[: max(0, len(done) - int(limit))]
    return victims


def _track(jobs: list[Obj], result: CronPlan) -> list[Obj]:
    """Reconcile ``status.active`` with the owned Jobs; the unfinished ones."""
    status = result.status
    by_name = {j["metadata"]["name"]: j for j in jobs}
    running = [j for j in jobs if completions.finished(j) is None]
    active = []
    for ref in status.get("active") or []:
        found = by_name.get(ref.get("name", ""))
        if found is None:
            result.events.append(Note("Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"))
        elif completions.finished(found) is None:
            active.append(dict(ref))
        else:
            kind = completions.finished(found)
            result.events.append(
                Note("Normal", "SawCompletedJob", f"Saw completed job: {ref['name']}, status: {kind}")
            )
    listed = {r["name"] for r in active}
    for job in running:
        if job["metadata"]["name"] not in listed:
            active.append(reference(job))
    status["active"] = active
    for job in jobs:
        done = (job.get("status") or {}).get("completionTime")
        if (
            completions.finished(job) == "Complete"
            and done
            and done > str(status.get("lastSuccessfulTime") or "")
        ):
            status["lastSuccessfulTime"] = done
    return running


def _parsed(spec: Obj, result: CronPlan) -> tuple[cron.Schedule, tzinfo] | None:
    """The schedule and time zone, or None (with the upstream Warning) when one is unusable."""
    try:
        tz = cron.zone(spec.get("timeZone"))
    except cron.CronError as exc:
        result.events.append(Note("Warning", "UnknownTimeZone", str(exc)))
        return None
    try:
        return cron.parse(str(spec.get("schedule", ""))), tz
    except cron.CronError as exc:
        message = f"unparseable schedule: {spec.get('schedule')!r} : {exc}"
        result.events.append(Note("Warning", "UnparseableSchedule", message))
        return None


def _due(
    cronjob: Obj, schedule: cron.Schedule, tz: tzinfo, now: datetime, result: CronPlan
) -> datetime | None:
    """The scheduled time to run now, if any (upstream mostRecentScheduleTime and its checks)."""
    spec, meta = cronjob.get("spec") or {}, cronjob["metadata"]
    last = podutil.parse_time(result.status.get("lastScheduleTime"))
    earliest = last or podutil.parse_time(meta.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=int(deadline)))
    result.requeue_after = (cron.next_after(schedule, now, tz) - now).total_seconds() + NEXT_SLACK
    missed = cron.missed(schedule, earliest, now, tz)
    if missed.count > cron.MAX_MISSED:
        result.events.append(
            Note("Warning", "TooManyMissedTimes",
                 f"too many missed start times: {missed.count}. Set or decrease "
                 ".spec.startingDeadlineSeconds or check clock skew")
        )  # fmt: skip
    scheduled = missed.latest
    if scheduled is None or last == scheduled:
        return None
    if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
        stamp = scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000")
        result.events.append(
            Note("Warning", "MissSchedule", f"Missed scheduled time to start a job: {stamp}")
        )
        return None
    name = job_name(cronjob, scheduled)
    if any(r.get("name") == name for r in result.status["active"]):
        return None
    return scheduled


def plan(cronjob: Obj, jobs: list[Obj], now: datetime) -> CronPlan:
    """What to do for ``cronjob`` given the Jobs it owns, at ``now`` (see the module docstring)."""
    spec = cronjob.get("spec") or {}
    result = CronPlan(status=dict(cronjob.get("status") or {}))
    running = _track(jobs, result)
    result.prune = _history(cronjob, jobs)
    if cronjob["metadata"].get("deletionTimestamp") or spec.get("suspend"):
        return result
    parsed = _parsed(spec, result)
    scheduled = None if parsed is None else _due(cronjob, *parsed, now, result)
    if parsed is None or scheduled is None:
        return result
    policy = spec.get("concurrencyPolicy", "Allow")
    if policy == "Forbid" and running:
        result.events.append(
            Note("Normal", "JobAlreadyActive",
                 "Not starting job because prior execution is running and concurrency policy is Forbid")
        )  # fmt: skip
        return result
    if policy == "Replace":
        result.replace = running
        result.status["active"] = []
    result.create = job_for(cronjob, scheduled, parsed[1])
    result.status["lastScheduleTime"] = podutil.stamp(scheduled)
    return result


class CronJobController:
    """Creates each CronJob's Jobs on schedule (informer-based); ``clock`` is injectable."""

    name = "cronjob"
    workers = 1

    def __init__(
        self,
        client: ApiClient,
        informers: InformerFactory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.clock = clock
        self.queue = WorkQueue(self.name)
        self.cronjobs = informers.informer(CRONJOBS)
        self.jobs = informers.informer(JOBS)
        self.recorder = Recorder(client, "cronjob-controller", clock)
        self.cronjobs.add_handler(EventHandler.enqueue(self.queue))
        self.jobs.add_handler(enqueue_controller(self.queue, KIND))

    async def sync(self, key: str) -> None:
        """Run the CronJob at ``key`` if one of its times has come; re-queue for the next."""
        cached = self.cronjobs.get(key)
        if cached is None:
            return
        cronjob = {**cached, "apiVersion": "batch/v1", "kind": KIND}
        namespace, _ = split_key(key)
        jobs = revisions.owned_by(self.jobs.list(namespace), cronjob)
        result = plan(cronjob, jobs, self.clock())
        for job in result.replace:
            await self._delete_job(cronjob, job)
        if result.create is not None:
            try:
                created = await self.client.create(JOBS, namespace, result.create)
            except status.ApiError as exc:
                if exc.code != 409:
                    await self.recorder.record(
                        cronjob, "Warning", "FailedCreate", f"Error creating job: {exc.message}"
                    )
                    raise
                created = (
                    None  # made by an earlier sync whose status write was lost: it is tracked once cached
                )
            if created is not None:
                result.status["active"] = [*result.status.get("active", []), reference(created)]
                await self.recorder.record(
                    cronjob, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}"
                )
        for job in result.prune:
            await self._delete_job(cronjob, job)
        for note in result.events:
            await self.recorder.record(cronjob, note.type, note.reason, note.message)
        await self._write_status(cronjob, result.status)
        if result.requeue_after is not None:
            self.queue.add_after(key, result.requeue_after)

    async def _delete_job(self, cronjob: Obj, job: Obj) -> None:
        meta = job["metadata"]
        if not await ownership.delete_exact(self.client, JOBS, job, "Background"):
            return
        await self.recorder.record(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")

    async def _write_status(self, cronjob: Obj, wanted: Obj) -> None:
        current = cronjob.get("status") or {}
        fields = ("active", "lastScheduleTime", "lastSuccessfulTime")
        if all((current.get(k) or None) == (wanted.get(k) or None) for k in fields):
            return
        patch = {k: wanted.get(k) for k in fields if k in wanted}
        if not patch.get("active"):
            patch["active"] = None  # merge patch: an empty list is removed, as upstream omits it
        meta = cronjob["metadata"]
        try:
            await self.client.patch(
                CRONJOBS, meta.get("namespace", ""), meta["name"], {"status": patch}, "status"
            )
        except status.ApiError as exc:
            if exc.code != 404:
                raise
