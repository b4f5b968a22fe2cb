"""Indexed Jobs (``completionMode: Indexed``): which completion indexes are done, running, missing.

In an Indexed Job every pod works on one index in ``[0, completions)``: the index is in the pod's
``batch.kubernetes.io/job-completion-index`` annotation and label, in ``JOB_COMPLETION_INDEX`` in
each container, and in its hostname ``<job>-<index>``. The Job succeeds once every index has a
Succeeded pod; ``status.completedIndexes`` lists them in upstream's compressed form ("1,3-5").
Pure; :mod:`nestlab.controller.completions` folds this into the Job's plan.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from nestlab.controller import pods as podutil

Obj = dict[str, Any]
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
ENV = "JOB_COMPLETION_INDEX"


def index_of(pod: Obj) -> int | None:
    """The completion index of a pod (annotation, else label); None when absent or malformed."""
    meta = pod.get("metadata") or {}
    for source in (meta.get("annotations") or {}, meta.get("labels") or {}):
        value = source.get(INDEX_KEY)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def compress(indexes: set[int]) -> str:
    """``{1, 3, 4, 5}`` -> ``"1,3-5"`` (upstream's completedIndexes format)."""
    parts: list[str] = []
    ordered = sorted(indexes)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        low, high = ordered[start], ordered[end]
        parts.append(str(low) if low == high else f"{low}-{high}")
        start = end + 1
    return ",".join(parts)


@dataclass(frozen=True)
class IndexState:
    """An Indexed Job's pods sorted by index."""

    succeeded: frozenset[int]
    """Indexes with a Succeeded pod."""
    running: int
    """Active pods kept (one per index still to do)."""
    surplus: list[Obj]
    """Active pods to delete: a second pod for an index, an index already done or out of range."""
    pending: list[int]
    """Indexes with neither a success nor an active pod, lowest first."""


def assess(pods: list[Obj], completions: int) -> IndexState:
    """Which indexes are done, running or missing."""
    succeeded = frozenset(
        i
        for p in pods
        if (p.get("status") or {}).get("phase") == "Succeeded"
        and (i := index_of(p)) is not None
        and i < completions
    )
    keep: dict[int, Obj] = {}
    surplus: list[Obj] = []
    best_first = sorted(
        (p for p in pods if podutil.is_active(p)), key=lambda p: podutil.deletion_rank(p, 0), reverse=True
    )
    for pod in best_first:
        index = index_of(pod)
        if index is None or index >= completions or index in succeeded or index in keep:
            surplus.append(pod)
        else:
            keep[index] = pod
    pending = [i for i in range(completions) if i not in succeeded and i not in keep]
    return IndexState(succeeded, len(keep), surplus, pending)


def indexed_pod(pod: Obj, job_name: str, index: int) -> Obj:
    """``pod`` (built from the Job's template) given its completion index."""
    pod = copy.deepcopy(pod)
    meta = pod["metadata"]
    meta["generateName"] = f"{job_name}-{index}-"
    meta.setdefault("annotations", {})[INDEX_KEY] = str(index)
    meta.setdefault("labels", {})[INDEX_KEY] = str(index)
    spec = pod.setdefault("spec", {})
    spec.setdefault("hostname", f"{job_name}-{index}")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        env = [e for e in container.get("env") or [] if e.get("name") != ENV]
        # upstream uses a fieldRef to the annotation; the value is the same, and pod-init takes literals
        container["env"] = [{"name": ENV, "value": str(index)}, *env]
    return pod
