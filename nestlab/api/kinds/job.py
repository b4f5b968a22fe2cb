"""batch/v1 Job: pods that run to completion (completions, parallelism, backoffLimit, deadlines).

As upstream, the server generates the Job's selector from its uid and labels the pod template
with it (``batch.kubernetes.io/controller-uid``, ``batch.kubernetes.io/job-name`` and the legacy
``controller-uid``/``job-name``), unless ``spec.manualSelector`` is true; so the uid is assigned
here, before the object is stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from nestlab.api.kinds import podspec, wire, workload
from nestlab.api.kinds.base import AGE, NAME, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import (
    as_dict,
    check_label_selector,
    check_metadata,
    check_nonnegative,
    check_positive,
    check_status,
    immutable,
)
from nestlab.api.kinds.printing import age, created
from nestlab.api.status import Cause

RESOURCE = Resource("jobs", "job", "Job", "batch", "v1", True, (), ("status",), True, ("all",))
COMPLETION_MODES = ("NonIndexed", "Indexed")
UNIMPLEMENTED = ("podFailurePolicy", "successPolicy", "backoffLimitPerIndex", "maxFailedIndexes")
"""JobSpec fields nestlab's job controller does not act on: refused by name, never stored and ignored."""


def default_spec(spec: Obj) -> None:
    """Defaults of a JobSpec (also inside a CronJob's jobTemplate)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    podspec.default_template(spec.get("template"))


def default(job: Obj) -> None:
    if isinstance(job.get("spec"), dict):
        default_spec(job["spec"])


def on_create(job: Obj) -> None:
    """Assign the uid now and derive the selector and template labels from it, as upstream."""
    meta, spec = job["metadata"], job.get("spec")
    meta["uid"] = str(uuid.uuid4())
    if not isinstance(spec, dict) or spec.get("manualSelector"):
        return
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    labels = {
        "batch.kubernetes.io/controller-uid": meta["uid"],
        "batch.kubernetes.io/job-name": str(meta.get("name", "")),
        "controller-uid": meta["uid"],
        "job-name": str(meta.get("name", "")),
    }
    template_meta = template.setdefault("metadata", {})
    if isinstance(template_meta, dict):
        template_meta["labels"] = {**as_dict(template_meta.get("labels")), **labels}
    if spec.get("selector") is None:
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}


def check_spec(spec: Any, path: str = "spec", with_selector: bool = True) -> list[Cause]:
    if not isinstance(spec, dict):
        return [Cause(path, "Required value", "FieldValueRequired")]
    causes = [
        Cause(
            f"{path}.{field}", "Forbidden: not implemented by nestlab's job controller", "FieldValueForbidden"
        )
        for field in UNIMPLEMENTED
        if spec.get(field) is not None
    ]
    causes += check_nonnegative(spec.get("parallelism"), f"{path}.parallelism")
    causes += check_nonnegative(spec.get("completions"), f"{path}.completions")
    causes += check_nonnegative(spec.get("backoffLimit"), f"{path}.backoffLimit")
    causes += check_positive(spec.get("activeDeadlineSeconds"), f"{path}.activeDeadlineSeconds")
    causes += check_nonnegative(spec.get("ttlSecondsAfterFinished"), f"{path}.ttlSecondsAfterFinished")
    mode = spec.get("completionMode")
    if mode not in COMPLETION_MODES:
        supported = ", ".join(f'"{m}"' for m in COMPLETION_MODES)
        message = f'Unsupported value: "{mode}": supported values: {supported}'
        causes.append(Cause(f"{path}.completionMode", message, "FieldValueNotSupported"))
    elif mode == "Indexed" and spec.get("completions") is None:
        message = "Required value: when completion mode is Indexed"
        causes.append(Cause(f"{path}.completions", message, "FieldValueRequired"))
    selector = spec.get("selector") if with_selector else None
    if with_selector:
        causes += check_label_selector(selector, f"{path}.selector", required=True)
    template = spec.get("template")
    policy = as_dict(as_dict(template).get("spec")).get("restartPolicy")
    if isinstance(template, dict) and policy == "Always":
        message = 'Required value: valid values: "OnFailure", "Never"'
        return [*causes, Cause(f"{path}.template.spec.restartPolicy", message, "FieldValueRequired")]
    return causes + podspec.check_template(
        template, selector, f"{path}.template", restart_policies=("OnFailure", "Never")
    )


def validate(job: Obj) -> list[Cause]:
    return check_metadata(job) + check_status(job) + check_spec(job.get("spec"))


def validate_update(new: Obj, old: Obj) -> list[Cause]:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    causes = immutable(new_spec.get("selector"), old_spec.get("selector"), "spec.selector")
    if new_spec.get("template") != old_spec.get("template"):
        causes.append(Cause("spec.template", "Invalid value: the pod template: field is immutable"))
    for key in ("completionMode", "backoffLimitPerIndex"):
        causes += immutable(new_spec.get(key), old_spec.get(key), f"spec.{key}")
    return causes


def status_text(job: Obj) -> str:
    """The Status column of kubectl 1.28+: Complete, Failed, Suspended or Running."""
    conditions = (job.get("status") or {}).get("conditions") or []
    for kind in ("Complete", "Failed", "Suspended"):
        if any(c.get("type") == kind and c.get("status") == "True" for c in conditions):
            return kind
    return "Running"


def _duration(job: Obj) -> str:
    state = job.get("status") or {}
    start, end = state.get("startTime"), state.get("completionTime")
    if not start:
        return ""
    if not end:
        return age(start)
    return age(start, datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))


def row(job: Obj) -> list[Any]:
    spec = job.get("spec") or {}
    completions = spec.get("completions")
    total = str(completions) if isinstance(completions, int) else f"{spec.get('parallelism', 1)}"
    return [
        job["metadata"]["name"],
        status_text(job),
        f"{workload.count(job, 'succeeded')}/{total}",
        _duration(job),
        created(job),
        *workload.template_cells(job),
    ]


KIND = Kind(
    RESOURCE,
    model="V1Job",
    default=default,
    on_create=on_create,
    validate=validate,
    validate_update=validate_update,
    columns=(
        NAME,
        Column("Status", "string", 0, "Status of the job."),
        Column("Completions", "string", 0, "The completion status of the job."),
        Column("Duration", "string", 0, "Time required to complete the job."),
        AGE,
        Column("Containers", "string", 1, "Names of each container in the template."),
        Column("Images", "string", 1, "Images referenced by each container in the template."),
        Column("Selector", "string", 1, "Label selector for pods."),
    ),
    row=row,
    roles=workload.roles("jobs"),
    generation=True,
    protobuf=wire.top(wire.JOB_SPEC),
)
