"""The ReplicaSet controller, and the same controller for ReplicationControllers.

Keeps ``spec.replicas`` active pods of ``spec.template`` running, as kube-controller-manager's
``replicaset`` and ``replicationcontroller`` controllers do: pods carry a controller
ownerReference (adopting matching orphans, releasing pods whose labels stopped matching), pods
that finished or are being deleted do not count (a Failed pod is replaced), creations go in
slow-start batches (1, 2, 4, ...) so a refusal (quota) stops a burst early and surfaces as the
``ReplicaFailure`` condition while the key backs off, and scale-down deletes the cheapest pods
first (:func:`nestlab.controller.pods.to_delete`). ``status`` is computed by :func:`compute_status`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status as api_status
from nestlab.api.client import ApiClient
from nestlab.api.resources import PODS, REPLICASETS, REPLICATION_CONTROLLERS, Resource
from nestlab.controller import pods as podutil
from nestlab.controller import selector as labelsel
from nestlab.controller.expectations import Expectations
from nestlab.controller.informer import EventHandler, InformerFactory, controller_ref, key_of, split_key
from nestlab.controller.ownership import claim
from nestlab.controller.recorder import Recorder
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]
BURST_REPLICAS = 500  # upstream: at most this many creations/deletions per sync
SLOW_START_INITIAL = 1  # upstream SlowStartInitialBatchSize


def selector_of(obj: Obj) -> Obj | None:
    """The workload's LabelSelector (a ReplicationController's map, defaulting to template labels)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "ReplicationController":
        labels = spec.get("selector") or ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        return labelsel.from_map(labels)
    selected = spec.get("selector")
    return selected if isinstance(selected, dict) else None


def set_condition(conditions: list[Obj], cond: Obj) -> list[Obj]:
    """``conditions`` with ``cond`` in place of its type (lastTransitionTime kept if unchanged)."""
    out, found = [], False
    for existing in conditions:
        if existing.get("type") == cond["type"]:
            found = True
            if existing.get("status") == cond["status"] and existing.get("reason") == cond.get("reason"):
                out.append(existing)
            else:
                out.append(cond)
        else:
            out.append(existing)
    return out if found else [*out, cond]


def compute_status(rs: Obj, active: list[Obj], failure: tuple[str, str] | None, now: datetime) -> Obj:
    """The ReplicaSet/RC status for its active pods (upstream calculateStatus).

    ``failure`` is (reason, message) of a creation/deletion the API refused this sync (it sets
    the ``ReplicaFailure`` condition); None clears that condition.
    """
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    old = rs.get("status") or {}
    conditions = [dict(c) for c in old.get("conditions") or []]
    if failure is not None:
        cond = {
            "type": "ReplicaFailure", "status": "True", "reason": failure[0], "message": failure[1],
            "lastTransitionTime": podutil.stamp(now),
        }  # fmt: skip
        conditions = set_condition(conditions, cond)
    else:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    labeled = sum(
        1
        for p in active
        if all(
            ((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in template_labels.items()
        )
    )
    status: Obj = {
        "replicas": len(active),
        "fullyLabeledReplicas": labeled,
        "readyReplicas": sum(1 for p in active if podutil.is_ready(p)),
        "availableReplicas": sum(1 for p in active if podutil.is_available(p, min_ready, now)),
        "observedGeneration": int((rs.get("metadata") or {}).get("generation") or 0),
    }
    if conditions:
        status["conditions"] = conditions
    return status


def status_patch(old: Obj, new: Obj) -> Obj | None:
    """A merge patch writing all of ``new`` over ``old`` (None when nothing changed).

    The whole status, not a difference: ``old`` comes from a cache that may lag behind our own
    last write, and a field equal to its stale value must still be written.
    """
    if old == new:
        return None
    return {**new, **{key: None for key in old if key not in new}}


class ReplicaSetController:
    """Reconciles ReplicaSets (``ReplicationManager`` below reuses it for ReplicationControllers)."""

    name = "replicaset"
    workers = 2
    resource: Resource = REPLICASETS
    component = "replicaset-controller"
    """The Events' source, as upstream names it."""

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.expectations = Expectations()
        self.recorder = Recorder(client, self.component)
        self.owners = informers.informer(self.resource)
        self.pods = informers.informer(PODS)
        self.owners.add_handler(EventHandler.enqueue(self.queue))
        self.owners.add_handler(EventHandler(on_delete=lambda obj: self.expectations.forget(key_of(obj))))
        self.pods.add_handler(EventHandler(self._pod_added, self._pod_updated, self._pod_deleted))

    # -- pod events ---------------------------------------------------------------------------
    def _owner_key(self, pod: Obj) -> str | None:
        """The key of the cached owner of this kind controlling ``pod`` (uid must match)."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != self.resource.kind:
            return None
        key = f"{pod['metadata'].get('namespace', '')}/{ref.get('name', '')}"
        owner = self.owners.get(key)
        return key if owner is not None and owner["metadata"].get("uid") == ref.get("uid") else None

    def _enqueue_matching(self, pod: Obj) -> None:
        """An orphan changed: wake every owner whose selector matches it (one may adopt it)."""
        meta = pod.get("metadata") or {}
        for owner in self.owners.list(meta.get("namespace", "")):
            if labelsel.matches(selector_of(owner), meta.get("labels")):
                self.queue.add(key_of(owner))

    def _pod_added(self, pod: Obj) -> None:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        if controller_ref(pod) is None:
            self._enqueue_matching(pod)
        elif (key := self._owner_key(pod)) is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self._pod_deleted(new)
        for pod in (old, new):
            if controller_ref(pod) is None:
                self._enqueue_matching(pod)
            elif (key := self._owner_key(pod)) is not None:
                self.queue.add(key)
                owner = self.owners.get(key) or {}
                min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and podutil.is_ready(new) and not podutil.is_ready(old):
                    self.queue.add_after(key, min_ready + 1)  # re-check when it becomes available

    def _pod_deleted(self, pod: Obj) -> None:
        if (key := self._owner_key(pod)) is not None:
            self.expectations.deletion_observed(key, key_of(pod))
            self.queue.add(key)

    # -- the sync -------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        """Reconcile the owner at ``key``; raises (to be retried with backoff) on API refusals."""
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.forget(key)
            return
        namespace, _ = split_key(key)
        owner = copy.deepcopy(owner)
        wanted_selector = selector_of(owner)
        needs_sync = self.expectations.satisfied(key) and not owner["metadata"].get("deletionTimestamp")
        candidates = [p for p in self.pods.list(namespace) if podutil.is_active(p)]
        active = await claim(
            self.client, self.resource, owner, wanted_selector, resource=PODS, candidates=candidates
        )
        failure = await self._manage(key, owner, active) if needs_sync else None
        now = datetime.now(UTC)
        new_status = compute_status(owner, active, failure, now)
        patch = status_patch(owner.get("status") or {}, new_status)
        if patch is not None:
            name = owner["metadata"]["name"]
            await self.client.patch(self.resource, namespace, name, {"status": patch}, "status")
        if failure is not None:  # back off: the next attempt comes later and later
            raise api_status.ApiError(500, failure[0], f"{key}: {failure[1]}")
        min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
        waits = [w for p in active if (w := podutil.available_in(p, min_ready, now)) is not None]
        if waits:
            self.queue.add_after(key, min(waits) + 0.5)

    async def _manage(self, key: str, owner: Obj, active: list[Obj]) -> tuple[str, str] | None:
        """Create or delete pods toward ``spec.replicas`` (upstream manageReplicas).

        Returns None, or (reason, message) of the refusal that stopped it (FailedCreate/FailedDelete).
        """
        spec = owner.get("spec") or {}
        wanted = int(spec["replicas"]) if spec.get("replicas") is not None else 1
        diff = len(active) - wanted
        namespace, name = owner["metadata"]["namespace"], owner["metadata"]["name"]
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect(key, adds=count)
            ref = podutil.owner_reference(owner, self.resource.group_version, self.resource.kind)
            pod = podutil.from_template(spec.get("template") or {}, namespace, ref, f"{name}-")

            async def create() -> None:
                made = await self.client.create(PODS, namespace, pod)
                message = f"Created pod: {made['metadata']['name']}"
                await self.recorder.record(owner, "Normal", "SuccessfulCreate", message)

            created, error = await slow_start(count, create)
            for _ in range(count - created):
                self.expectations.creation_observed(key)  # skipped or refused: never observed
            if error is not None:
                log.info("%s %s: creating pods refused: %s", self.resource.kind, key, error.message)
                await self.recorder.record(
                    owner, "Warning", "FailedCreate", f"Error creating: {error.message}"
                )
                return "FailedCreate", error.message
        elif diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = podutil.to_delete(active, active, count)
            self.expectations.expect(key, deletes=[key_of(p) for p in victims])
            errors = await asyncio.gather(
                *(self._delete_pod(key, p) for p in victims), return_exceptions=True
            )
            for victim, outcome in zip(victims, errors, strict=True):
                if outcome is None:
                    message = f"Deleted pod: {victim['metadata']['name']}"
                    await self.recorder.record(owner, "Normal", "SuccessfulDelete", message)
            refused = [e for e in errors if isinstance(e, api_status.ApiError)]
            if refused:
                message = f"Error deleting: {refused[0].message}"
                await self.recorder.record(owner, "Warning", "FailedDelete", message)
                return "FailedDelete", refused[0].message
        return None

    async def _delete_pod(self, key: str, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"])
        except api_status.ApiError as exc:
            self.expectations.deletion_observed(key, key_of(pod))
            if exc.code != 404:
                raise


async def slow_start(
    count: int, create: Callable[[], Awaitable[object]]
) -> tuple[int, api_status.ApiError | None]:
    """Call ``create`` ``count`` times in batches of 1, 2, 4, ... (upstream slowStartBatch).

    A batch with a refusal stops the rest, so a quota refusal costs one request, not ``count``.
    Returns how many succeeded and the first refusal (None if all succeeded); other exceptions
    propagate.
    """
    done, batch = 0, SLOW_START_INITIAL
    while done < count:
        size = min(batch, count - done)
        results = await asyncio.gather(*(create() for _ in range(size)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, api_status.ApiError):
                raise result
        refused = [r for r in results if isinstance(r, api_status.ApiError)]
        done += size - len(refused)
        if refused:
            return done, refused[0]
        batch *= 2
    return done, None


class ReplicationManager(ReplicaSetController):
    """The same controller for core/v1 ReplicationControllers (upstream ReplicationManager)."""

    name = "replicationcontroller"
    resource = REPLICATION_CONTROLLERS
    component = "replication-controller"
