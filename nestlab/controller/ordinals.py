"""What a StatefulSet's pods should become: the pure half of the StatefulSet controller.

Given the set, its pods and its current/update ControllerRevisions, :func:`plan` returns the pods
to create and delete in this sync and the status to write, following upstream's
``updateStatefulSet`` step by step so kubectl and admins see the same behaviour:

- pods are named ``<set>-<ordinal>``, carry the identity labels and ``hostname``/``subdomain``;
- a Failed or Succeeded pod is deleted and, once it is gone, created again under the same name;
- ``OrderedReady``: ordinals are created in order, each only once all lower ones are Running and
  Ready; scale-down removes the highest ordinal first, one at a time, only while all others are
  healthy; ``Parallel`` creates and deletes without waiting;
- ``RollingUpdate``: from the highest ordinal down to ``partition``, one pod at a time (or up to
  ``maxUnavailable``), each deleted and recreated at the update revision once the previous is
  healthy again; ``OnDelete``: only pods the user deletes come back at the update revision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nestlab.controller import pods as podutil
from nestlab.controller import revisions

Obj = dict[str, Any]
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-(\d+)$")


@dataclass(frozen=True)
class Deletion:
    """A pod to delete, and why (the Event's wording depends on it)."""

    name: str
    uid: str
    reason: str
    """``failed`` (recreated once gone), ``condemned`` (scale down) or ``update`` (rolling update)."""


@dataclass
class Plan:
    """The outcome of one sync."""

    create: list[Obj] = field(default_factory=list)
    delete: list[Deletion] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None
    """Seconds until a pod becomes available (``minReadySeconds``), when one is waiting for it."""


def ordinal_of(set_name: str, pod_name: str) -> int | None:
    """The ordinal of ``<set>-<n>``; None for a name that is not one of the set's."""
    found = _ORDINAL.match(pod_name)
    if found is None or found.group(1) != set_name:
        return None
    return int(found.group(2))


def pod_revision(pod: Obj) -> str:
    """The revision name a pod was created from (its ``controller-revision-hash`` label)."""
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(revisions.HASH_LABEL, ""))


def _running_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and podutil.is_ready(pod)


def _terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def new_pod(sts: Obj, ordinal: int, revision: Obj) -> Obj:
    """The pod ``<set>-<ordinal>`` from ``revision``'s template, with its stable identity."""
    meta = sts["metadata"]
    ref = revisions.owner_reference(sts, "StatefulSet")
    pod = podutil.from_template(revisions.template_of(revision), meta.get("namespace", ""), ref, "")
    name = f"{meta['name']}-{ordinal}"
    pod_meta = pod["metadata"]
    del pod_meta["generateName"]
    pod_meta["name"] = name
    labels = pod_meta.setdefault("labels", {})
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ordinal)
    labels[revisions.HASH_LABEL] = revision["metadata"]["name"]
    pod["spec"]["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        pod["spec"]["subdomain"] = service
    return pod


def _rolling(spec: Obj) -> Obj | None:
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    return dict(strategy.get("rollingUpdate") or {})


def _max_unavailable(rolling: Obj, replicas: int) -> int | None:
    value = rolling.get("maxUnavailable")
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(replicas * int(value[:-1]) / 100)  # upstream rounds down, then at least 1
    else:
        scaled = int(value)
    return max(scaled, 1)


class _Sync:
    """State of one planning pass (upstream keeps the same in local variables)."""

    def __init__(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, now: datetime) -> None:
        self.sts, self.now = sts, now
        self.spec: Obj = sts.get("spec") or {}
        self.name = sts["metadata"]["name"]
        self.current, self.update = current, update
        self.start = int((self.spec.get("ordinals") or {}).get("start") or 0)
        self.count = int(self.spec.get("replicas", 1))
        self.min_ready = int(self.spec.get("minReadySeconds") or 0)
        self.monotonic = self.spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        self.rolling = _rolling(self.spec)
        self.slots: list[Obj | None] = [None] * self.count
        self.condemned: list[Obj] = []
        for pod in pods:
            ordinal = ordinal_of(self.name, pod["metadata"]["name"])
            if ordinal is None:
                continue
            if self.start <= ordinal < self.start + self.count:
                self.slots[ordinal - self.start] = pod
            else:
                self.condemned.append(pod)
        self.condemned.sort(key=lambda p: ordinal_of(self.name, p["metadata"]["name"]) or 0)
        self.plan = Plan()

    def healthy(self, pod: Obj) -> bool:
        if not _running_ready(pod) or _terminating(pod):
            return False
        return podutil.is_available(pod, self.min_ready, self.now)

    def revision_for(self, index: int) -> Obj:
        """upstream newVersionedStatefulSetPod: below the partition, pods stay at the current revision."""
        if self.rolling is not None:
            partition = self.rolling.get("partition")
            below = (
                index < int(partition)
                if partition is not None
                else index < int((self.sts.get("status") or {}).get("currentReplicas") or 0)
            )
            if below:
                return self.current
        return self.update

    def delete(self, pod: Obj, reason: str) -> None:
        meta = pod["metadata"]
        self.plan.delete.append(Deletion(meta["name"], str(meta.get("uid", "")), reason))

    def wait_available(self, pod: Obj) -> None:
        left = podutil.available_in(pod, self.min_ready, self.now)
        if left is not None:
            self.plan.requeue_after = min(self.plan.requeue_after or left, left)

    def replicas(self) -> bool:
        """Create missing ordinals, replace finished pods; False when ordering says wait."""
        for index, pod in enumerate(self.slots):
            if pod is None:
                created = new_pod(self.sts, self.start + index, self.revision_for(index))
                self.plan.create.append(created)
                self.slots[index] = created
                if self.monotonic:
                    return False
                continue
            if _finished(pod):
                if not _terminating(pod):
                    self.delete(pod, "failed")
                if self.monotonic:
                    return False
                continue
            if self.monotonic and not self.healthy(pod):
                self.wait_available(pod)
                return False
        return True

    def scale_down(self) -> bool:
        """Delete ordinals beyond replicas, highest first; False when ordering says wait."""
        unhealthy = [p for p in [*self.slots, *self.condemned] if p is not None and not self.healthy(p)]
        first_unhealthy = unhealthy[0] if unhealthy else None
        for pod in reversed(self.condemned):
            if _terminating(pod):
                if self.monotonic:
                    return False
                continue
            if self.monotonic and not _running_ready(pod) and pod is not first_unhealthy:
                return False
            self.delete(pod, "condemned")
            if self.monotonic:
                return False
        return True

    def roll(self) -> None:
        """RollingUpdate: replace out-of-date pods from the highest ordinal down to the partition."""
        if self.rolling is None:
            return
        update_name = self.update["metadata"]["name"]
        low = int(self.rolling.get("partition") or 0)
        pods = [p for p in self.slots if p is not None]
        limit = _max_unavailable(self.rolling, self.count)
        if limit is None:
            for index in range(len(pods) - 1, low - 1, -1):
                pod = pods[index]
                if pod_revision(pod) != update_name and not _terminating(pod):
                    self.delete(pod, "update")
                    return
                if not self.healthy(pod):
                    return
            return
        unavailable = sum(1 for p in pods if not self.healthy(p))
        budget = limit - unavailable
        for index in range(len(pods) - 1, low - 1, -1):
            if budget <= 0:
                return
            pod = pods[index]
            if pod_revision(pod) != update_name and not _terminating(pod):
                self.delete(pod, "update")
                budget -= 1


def compute_status(
    sts: Obj, pods: list[Obj], current: Obj, update: Obj, now: datetime, *, collision_count: int
) -> Obj:
    """Upstream computeReplicaStatus + completeRollingUpdate over the set's pods."""
    spec = sts.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
    counts = {"replicas": 0, "ready": 0, "available": 0, "current": 0, "updated": 0}
    for pod in pods:
        counts["replicas"] += 1
        if _running_ready(pod):
            counts["ready"] += 1
            if podutil.is_available(pod, min_ready, now):
                counts["available"] += 1
        if not _terminating(pod):
            revision = pod_revision(pod)
            counts["current"] += revision == current_name
            counts["updated"] += revision == update_name
    status: Obj = {
        "observedGeneration": int(sts["metadata"].get("generation") or 1),
        "replicas": counts["replicas"],
        "readyReplicas": counts["ready"],
        "availableReplicas": counts["available"],
        "currentReplicas": counts["current"],
        "updatedReplicas": counts["updated"],
        "currentRevision": current_name,
        "updateRevision": update_name,
        "collisionCount": collision_count,
    }
    rolling = _rolling(spec) is not None
    if rolling and counts["updated"] == counts["replicas"] and counts["ready"] == counts["replicas"]:
        status["currentReplicas"] = counts["updated"]
        status["currentRevision"] = update_name
    return status


def plan(
    sts: Obj, pods: list[Obj], current: Obj, update: Obj, now: datetime, *, collision_count: int = 0
) -> Plan:
    """Pods to create and delete now, and the status to write (see the module docstring)."""
    sync = _Sync(sts, pods, current, update, now)
    if not sts["metadata"].get("deletionTimestamp") and sync.replicas() and sync.scale_down():
        sync.roll()
    sync.plan.status = compute_status(
        sts, [*pods, *sync.plan.create], current, update, now, collision_count=collision_count
    )
    return sync.plan
