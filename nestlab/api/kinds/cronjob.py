"""batch/v1 CronJob: Jobs made on a schedule (standard five-field cron, or @hourly and friends)."""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds import job, wire, workload
from nestlab.api.kinds.base import AGE, NAME, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import (
    as_dict,
    check_labels,
    check_map_of_strings,
    check_metadata,
    check_nonnegative,
    check_status,
)
from nestlab.api.kinds.printing import age, created
from nestlab.api.status import Cause
from nestlab.controller import cron

RESOURCE = Resource(
    "cronjobs", "cronjob", "CronJob", "batch", "v1", True, ("cj",), ("status",), True, ("all",)
)
POLICIES = ("Allow", "Forbid", "Replace")


def schedule_problem(schedule: Any) -> str:
    """Why ``schedule`` is not a cron schedule the CronJob controller can run ("" when it is).

    The same parser the controller uses decides (nestlab.controller.cron), so a schedule the API
    accepts always runs.
    """
    if not isinstance(schedule, str) or not schedule.strip():
        return "Required value"
    text = schedule.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        return (
            f'Invalid value: "{schedule}": cannot use TZ or CRON_TZ in schedule, use timeZone field instead'
        )
    try:
        cron.parse(text)
    except cron.CronError as exc:
        return f'Invalid value: "{schedule}": {exc}'
    return ""


def zone_problem(name: Any) -> str:
    if name is None:
        return ""
    try:
        cron.zone(str(name))
    except cron.CronError as exc:
        return f'Invalid value: "{name}": {exc}'
    return ""


def default(cronjob: Obj) -> None:
    spec = cronjob.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    template = as_dict(spec.get("jobTemplate"))
    if isinstance(template.get("spec"), dict):
        job.default_spec(template["spec"])


def validate(cronjob: Obj) -> list[Cause]:
    causes = check_metadata(cronjob) + check_status(cronjob)
    spec = cronjob.get("spec")
    if not isinstance(spec, dict):
        return [*causes, Cause("spec", "Required value", "FieldValueRequired")]
    problem = schedule_problem(spec.get("schedule"))
    if problem:
        reason = "FieldValueRequired" if problem == "Required value" else "FieldValueInvalid"
        causes.append(Cause("spec.schedule", problem, reason))
    problem = zone_problem(spec.get("timeZone"))
    if problem:
        causes.append(Cause("spec.timeZone", problem))
    if spec.get("concurrencyPolicy") not in POLICIES:
        supported = ", ".join(f'"{p}"' for p in POLICIES)
        message = f'Unsupported value: "{spec.get("concurrencyPolicy")}": supported values: {supported}'
        causes.append(Cause("spec.concurrencyPolicy", message, "FieldValueNotSupported"))
    for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes += check_nonnegative(spec.get(field), f"spec.{field}")
    template = spec.get("jobTemplate")
    if not isinstance(template, dict):
        return [*causes, Cause("spec.jobTemplate", "Required value", "FieldValueRequired")]
    template_meta = as_dict(template.get("metadata"))
    causes += check_labels(template_meta.get("labels"), "spec.jobTemplate.metadata.labels")
    causes += check_map_of_strings(template_meta.get("annotations"), "spec.jobTemplate.metadata.annotations")
    return causes + job.check_spec(template.get("spec"), "spec.jobTemplate.spec", with_selector=False)


def row(cronjob: Obj) -> list[Any]:
    spec, state = cronjob.get("spec") or {}, cronjob.get("status") or {}
    last = state.get("lastScheduleTime")
    return [
        cronjob["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        "True" if spec.get("suspend") else "False",
        len(state.get("active") or []),
        age(last) if last else "<none>",
        created(cronjob),
    ]


KIND = Kind(
    RESOURCE,
    model="V1CronJob",
    default=default,
    validate=validate,
    columns=(
        NAME,
        Column("Schedule", "string", 0, "The schedule in Cron format."),
        Column("Timezone", "string", 0, "The time zone name for the given schedule."),
        Column("Suspend", "boolean", 0, "Whether subsequent executions are suspended."),
        Column("Active", "integer", 0, "The number of pointers to currently running jobs."),
        Column("Last Schedule", "string", 0, "Information when was the last time the job was scheduled."),
        AGE,
    ),
    row=row,
    roles=workload.roles("cronjobs"),
    generation=True,
    protobuf=wire.top(wire.CRON_JOB_SPEC),
)
