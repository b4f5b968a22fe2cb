"""The disruption controller: keeps every PodDisruptionBudget's status true to its pods.

The eviction subresource only reads a budget's status (``disruptionsAllowed``, ``desiredHealthy``,
``currentHealthy``, ``observedGeneration``); this controller is what computes it, as upstream's
``pkg/controller/disruption``:

- the pods are those of the budget's namespace its selector selects (policy/v1: ``{}`` selects
  all, a null selector none);
- ``expectedPods``: for an integer ``minAvailable`` the number of those pods; for a percentage or
  any ``maxUnavailable`` the sum of their controllers' ``spec.replicas`` (Deployment through its
  ReplicaSet, ReplicaSet, StatefulSet, ReplicationController); pods without a controller count
  for nothing there (upstream warns "UnmanagedPods");
- ``desiredHealthy`` from minAvailable (percentages rounded up) or expected - maxUnavailable;
- ``currentHealthy``: Ready pods, not being deleted, not recorded in ``disruptedPods`` by an
  eviction less than 2 minutes ago (the eviction promised they go; upstream DeletionTimeout);
- ``disruptionsAllowed`` = healthy - desired (never below 0, and 0 while nothing is expected);
- ``disruptedPods`` keeps only entries younger than 2 minutes whose pod is still there and not
  deleting; the budget is synced again when the oldest entry expires;
- the DisruptionAllowed condition (SufficientPods / InsufficientPods; SyncFailed with the error,
  and no disruption allowed, when the status cannot be computed: fail safe).

:func:`compute` is pure (budget, pods, owner lookup, time); :class:`DisruptionController` is the
informer/work-queue shell that feeds it and writes the status through ``/status`` (a
compare-and-swap: a lost race is retried with backoff by the work queue).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.eviction import (
    DISRUPTION_ALLOWED,
    disruption_condition,
    generation,
    labels_of,
    parse_timestamp,
    pod_ready,
    selector_matches,
    set_condition,
)
from nestlab.api.resources import (
    DEPLOYMENTS,
    PDBS,
    PODS,
    REPLICASETS,
    REPLICATION_CONTROLLERS,
    STATEFULSETS,
    Resource,
)
from nestlab.controller.informer import EventHandler, InformerFactory, controller_ref, key_of, split_key
from nestlab.controller.recorder import Recorder
from nestlab.controller.selector import to_string
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]
DELETION_TIMEOUT = timedelta(minutes=2)  # upstream DeletionTimeout: an evicted pod must be gone by then
SYNC_FAILED = "SyncFailed"

Lookup = Callable[[Resource, str, str], Obj | None]
"""(resource, namespace, name) -> the cached object, or None."""


class SyncError(Exception):
    """The budget's status cannot be computed (its message goes into the SyncFailed condition)."""


@dataclass(frozen=True)
class Computed:
    """The outcome of one computation."""

    status: Obj
    """The budget's new status."""
    recheck: float | None = None
    """Seconds until the oldest disruptedPods entry expires (sync again then), if any."""
    unmanaged: tuple[str, ...] = field(default=())
    """Pods counted by a percentage or maxUnavailable budget that have no controller."""
    selected: int = 0
    """How many pods the budget selects."""


def pods_for(pdb: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods of the budget's namespace that its selector selects."""
    namespace = pdb["metadata"].get("namespace")
    selector = (pdb.get("spec") or {}).get("selector")
    return [
        p
        for p in pods
        if p["metadata"].get("namespace") == namespace
        and selector_matches(selector, labels_of(p), empty_matches_all=True)
    ]


def scaled(value: Any, total: int, field_name: str) -> int:
    """upstream GetScaledValueFromIntOrPercent(value, total, roundUp=true)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError as exc:
            raise SyncError(
                f'invalid value for IntOrString {field_name}: "{value}" is not a percentage'
            ) from exc
        return math.ceil(percent * total / 100)
    raise SyncError(f"invalid value for IntOrString {field_name}: invalid type: string is not a percentage")


def _group(ref: Obj) -> str:
    api_version = str(ref.get("apiVersion") or "")
    return api_version.partition("/")[0] if "/" in api_version else ""


def _owned(ref: Obj | None, kind: str, groups: tuple[str, ...]) -> bool:
    return ref is not None and ref.get("kind") == kind and _group(ref) in groups


def _named(ref: Obj, resource: Resource, namespace: str, lookup: Lookup) -> Obj | None:
    """The object ``ref`` names, if it is still the same one (same uid)."""
    found = lookup(resource, namespace, str(ref.get("name")))
    return found if found is not None and found["metadata"].get("uid") == ref.get("uid") else None


def _scale(obj: Obj) -> tuple[str, int]:
    return str(obj["metadata"]["uid"]), int((obj.get("spec") or {}).get("replicas", 1))


def controller_scale(ref: Obj, namespace: str, lookup: Lookup) -> tuple[str, int] | None:
    """upstream's finders: (uid, spec.replicas) of the controller ``ref`` names, or None.

    A ReplicaSet owned by a Deployment counts with the Deployment's scale (a rollout's old and new
    ReplicaSets are one application)."""
    apps = ("apps", "extensions")
    found: Obj | None = None
    if _owned(ref, "ReplicaSet", apps):
        found = _named(ref, REPLICASETS, namespace, lookup)
        owner = None if found is None else controller_ref(found)
        if owner is not None and owner.get("kind") == "Deployment":
            found = (
                _named(owner, DEPLOYMENTS, namespace, lookup) if _owned(owner, "Deployment", apps) else None
            )
    elif _owned(ref, "StatefulSet", apps):
        found = _named(ref, STATEFULSETS, namespace, lookup)
    elif _owned(ref, "ReplicationController", ("",)):
        found = _named(ref, REPLICATION_CONTROLLERS, namespace, lookup)
    return None if found is None else _scale(found)


def expected_scale(pods: list[Obj], lookup: Lookup) -> tuple[int, tuple[str, ...]]:
    """Sum of the pods' controllers' scales (each controller once) and the unmanaged pods."""
    scales: dict[str, int] = {}
    unmanaged = []
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            unmanaged.append(pod["metadata"]["name"])
            continue
        if ref.get("uid") in scales:
            continue
        found = controller_scale(ref, pod["metadata"].get("namespace", ""), lookup)
        if found is None:
            raise SyncError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
        scales[found[0]] = found[1]
    return sum(scales.values()), tuple(unmanaged)


def expected_and_desired(pdb: Obj, pods: list[Obj], lookup: Lookup) -> tuple[int, int, tuple[str, ...]]:
    """upstream getExpectedPodCount: (expectedPods, desiredHealthy, unmanaged pods)."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        expected, unmanaged = expected_scale(pods, lookup)
        desired = max(0, expected - scaled(spec["maxUnavailable"], expected, "maxUnavailable"))
        return expected, desired, unmanaged
    minimum = spec.get("minAvailable")
    if isinstance(minimum, int) and not isinstance(minimum, bool):
        return len(pods), minimum, ()
    if minimum is not None:
        expected, unmanaged = expected_scale(pods, lookup)
        return expected, scaled(minimum, expected, "minAvailable"), unmanaged
    return 0, 0, ()


def live_disruptions(pdb: Obj, pods: list[Obj], now: datetime) -> tuple[dict[str, str], float | None]:
    """upstream buildDisruptedPodMap: unexpired entries of pods still there, and when to recheck."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    for pod in pods:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp") or name not in recorded:
            continue
        when = parse_timestamp(str(recorded[name]))
        if when is None:
            continue
        expires = when + DELETION_TIMEOUT
        if expires < now:
            log.info(
                "pod %s was expected by budget %s to be deleted but it was not", name, pdb["metadata"]["name"]
            )
            continue
        kept[name] = str(recorded[name])
        recheck = expires if recheck is None or expires < recheck else recheck
    return kept, None if recheck is None else max(0.0, (recheck - now).total_seconds())


def healthy(pods: list[Obj], disrupted: dict[str, str], now: datetime) -> int:
    """upstream countHealthyPods: Ready pods neither deleting nor promised to an eviction."""
    count = 0
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        when = parse_timestamp(disrupted.get(pod["metadata"]["name"], ""))
        if when is not None and when + DELETION_TIMEOUT > now:
            continue
        count += pod_ready(pod)
    return count


def compute(pdb: Obj, all_pods: list[Obj], lookup: Lookup, now: datetime) -> Computed:
    """The budget's status now; raises SyncError when it cannot be computed."""
    pods = pods_for(pdb, all_pods)
    expected, desired, unmanaged = expected_and_desired(pdb, pods, lookup)
    disrupted, recheck = live_disruptions(pdb, pods, now)
    current = healthy(pods, disrupted, now)
    allowed = current - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0  # a budget matching nothing yet must be safe when its first pods appear
    old = pdb.get("status") or {}
    new: Obj = {
        "currentHealthy": current,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "observedGeneration": generation(pdb),
        "conditions": list(old.get("conditions") or []),
    }
    if disrupted:
        new["disruptedPods"] = disrupted
    new["conditions"] = disruption_condition(new, now)
    return Computed(new, recheck, unmanaged, len(pods))


def fail_safe(pdb: Obj, error: str, now: datetime) -> Obj:
    """upstream failSafe: no disruption allowed, DisruptionAllowed False/SyncFailed with the error."""
    new = dict(pdb.get("status") or {})
    new["disruptionsAllowed"] = 0
    condition = {
        "type": DISRUPTION_ALLOWED,
        "status": "False",
        "reason": SYNC_FAILED,
        "message": error,
        "observedGeneration": int(new.get("observedGeneration") or 0),
    }
    new["conditions"] = set_condition(list(new.get("conditions") or []), condition, now)
    return new


_OWNERS = (DEPLOYMENTS, REPLICASETS, STATEFULSETS, REPLICATION_CONTROLLERS)


class DisruptionController:
    """Computes PodDisruptionBudget status on the shared informers (see :mod:`informer`)."""

    name = "disruption"
    workers = 2

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.recorder = Recorder(client, "controllermanager")
        self.pdbs = informers.informer(PDBS)
        self.pods = informers.informer(PODS)
        self.owners = {resource: informers.informer(resource) for resource in _OWNERS}
        self.pdbs.add_handler(EventHandler.enqueue(self.queue))
        self.pods.add_handler(
            EventHandler(
                on_add=self._pod_changed,
                on_update=self._pod_updated,
                on_delete=self._pod_changed,
            )
        )
        for informer in self.owners.values():
            informer.add_handler(EventHandler(on_update=self._owner_changed))

    def _pod_changed(self, pod: Obj) -> None:
        namespace = pod["metadata"].get("namespace", "")
        for pdb in pods_for_budgets(self.pdbs.list(namespace), pod):
            self.queue.add(key_of(pdb))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(old)  # labels may have changed: both the old and the new budgets
        self._pod_changed(new)

    def _owner_changed(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("replicas") == (new.get("spec") or {}).get("replicas"):
            return
        for pdb in self.pdbs.list(new["metadata"].get("namespace", "")):
            self.queue.add(key_of(pdb))

    def _lookup(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        informer = self.owners.get(resource)
        return None if informer is None else informer.get(f"{namespace}/{name}")

    async def sync(self, key: str) -> None:
        """Recompute one budget's status and write it when it changed (with upstream's Events then:
        recorded on change only, so a steady budget does not fill the namespace with Events)."""
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        namespace, _name = split_key(key)
        now = datetime.now(UTC)
        try:
            computed = compute(pdb, self.pods.list(namespace), self._lookup, now)
        except SyncError as exc:
            log.warning("budget %s: %s", key, exc)
            if await self._write(pdb, fail_safe(pdb, str(exc), now)):
                message = f"Failed to calculate the number of expected pods: {exc}"
                await self.recorder.record(pdb, "Warning", "CalculateExpectedPodCountFailed", message)
            return
        if await self._write(pdb, computed.status):
            if not computed.selected:
                await self.recorder.record(pdb, "Normal", "NoPods", "No matching pods found")
            if computed.unmanaged:
                await self.recorder.record(pdb, "Warning", "UnmanagedPods", unmanaged_message(pdb))
        if computed.recheck is not None:
            self.queue.add_after(key, computed.recheck + 0.5)

    async def _write(self, pdb: Obj, new_status: Obj) -> bool:
        """Write ``new_status`` through /status (CAS on the cached resourceVersion); True if written."""
        if (pdb.get("status") or {}) == new_status:
            return False
        updated = {**pdb, "status": new_status}
        meta = pdb["metadata"]
        try:
            await self.client.replace(PDBS, meta["namespace"], updated, "status")
        except status.ApiError as exc:
            if exc.code == 404:
                return False  # deleted meanwhile
            raise
        return True


def unmanaged_message(pdb: Obj) -> str:
    """upstream's UnmanagedPods warning: percentages need controllers' scales."""
    selector = to_string((pdb.get("spec") or {}).get("selector") or {})
    return (
        f"Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. "
        "As a result, the status of the PDB cannot be calculated correctly, which may result in undefined "
        'behavior. To account for these pods please set ".spec.minAvailable" field of the PDB to an '
        "integer value."
    )


def pods_for_budgets(pdbs: list[Obj], pod: Obj) -> list[Obj]:
    """The budgets (of the pod's namespace) that select ``pod``."""
    return [pdb for pdb in pdbs if pods_for(pdb, [pod])]
