"""The StatefulSet controller: stable pod names that come back after a host fails.

When ``esx-02`` fails, the pods ``web-0..2`` it ran are deleted (node lifecycle eviction) and this
controller creates them again *under the same names* on the remaining hosts, in ordinal order:
that is what a StatefulSet promises and what an admin coming from vSphere HA should see.

The decisions are pure (:mod:`nestlab.controller.ordinals`); this module reads the shared caches
(StatefulSets, pods, ControllerRevisions), keeps the revision history kubectl rollout reads
(:mod:`nestlab.controller.revisions`), and writes pods, revisions, status and Events.

A set with ``volumeClaimTemplates`` gets, before each pod, that ordinal's claims
(``<template>-<set>-<ordinal>``, labelled with the set's selector, no owner: the Retain policy keeps
them when pods or the set go) and the pod's volume of each template's name refers to its claim, as
upstream's stateful pod control does. A claim being deleted holds its pod back until it is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.kinds.statefulset import claim_name, claim_volumes
from nestlab.api.resources import CONTROLLER_REVISIONS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS, Resource
from nestlab.controller import ordinals, ownership, revisions
from nestlab.controller.informer import EventHandler, InformerFactory, enqueue_controller, split_key
from nestlab.controller.recorder import Recorder
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]
KIND = "StatefulSet"
_CLAIM_RETRY = 2.0  # seconds before a pod whose claim is being deleted is tried again
_MAX_COLLISIONS = 10  # a hash collision is one in billions; more in a row means a bug, not bad luck


class ClaimNotReadyError(Exception):
    """A claim the pod needs is being deleted: the pod waits (the next sync tries again)."""


def claims_for(sts: Obj, ordinal: int) -> list[Obj]:
    """The claims one ordinal needs (upstream getPersistentVolumeClaims): each template, named
    ``<template>-<set>-<ordinal>``, with the set's selector labels added to the template's."""
    meta, spec = sts["metadata"], sts.get("spec") or {}
    match = dict((spec.get("selector") or {}).get("matchLabels") or {})
    claims = []
    for template in spec.get("volumeClaimTemplates") or []:
        template_meta = template.get("metadata") or {}
        claim_meta: Obj = {
            **{k: v for k, v in template_meta.items() if k in ("labels", "annotations")},
            "name": claim_name(template_meta.get("name", ""), meta["name"], str(ordinal)),
            "namespace": meta.get("namespace", ""),
        }
        claim_meta["labels"] = {**(claim_meta.get("labels") or {}), **match}
        claims.append(
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": claim_meta,
             "spec": dict(template.get("spec") or {})}
        )  # fmt: skip
    return claims


def use_claims(pod: Obj, sts: Obj, ordinal: int) -> Obj:
    """``pod`` whose volume of each template's name is that ordinal's claim (upstream updateStorage)."""
    volumes = claim_volumes(
        sts.get("spec") or {}, pod["spec"].get("volumes"), sts["metadata"]["name"], str(ordinal)
    )
    if volumes is not None:
        pod["spec"]["volumes"] = volumes
    return pod


class StatefulSetController:
    """Keeps each StatefulSet's ordinal pods, revisions and status (informer-based)."""

    name = "statefulset"
    workers = 2

    def __init__(
        self,
        client: ApiClient,
        informers: InformerFactory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.clock = clock
        self.queue = WorkQueue(self.name)
        self.sets = informers.informer(STATEFULSETS)
        self.pods = informers.informer(PODS)
        self.revisions = informers.informer(CONTROLLER_REVISIONS)
        self.recorder = Recorder(client, "statefulset-controller", clock)
        self.sets.add_handler(EventHandler.enqueue(self.queue))
        self.pods.add_handler(enqueue_controller(self.queue, KIND))
        self.revisions.add_handler(enqueue_controller(self.queue, KIND))

    async def sync(self, key: str) -> None:
        """Bring the StatefulSet at ``key`` one step closer to its spec."""
        cached = self.sets.get(key)
        if cached is None:
            return  # deleted: the garbage collector removes its pods and revisions
        sts = {**cached, "apiVersion": "apps/v1", "kind": KIND}
        namespace, _ = split_key(key)
        pods = await self._claim(sts, PODS, [
            p for p in self.pods.list(namespace)
            if ordinals.ordinal_of(sts["metadata"]["name"], p["metadata"]["name"]) is not None
        ])  # fmt: skip
        history = revisions.by_number(
            await self._claim(sts, CONTROLLER_REVISIONS, self.revisions.list(namespace))
        )
        collisions = int((sts.get("status") or {}).get("collisionCount") or 0)
        update, collisions = await self._update_revision(sts, history, collisions)
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in history if r["metadata"]["name"] == current_name), update)
        now = self.clock()
        plan = ordinals.plan(sts, pods, current, update, now, collision_count=collisions)
        for pod in plan.create:
            await self._create(sts, pod)
        for deletion in plan.delete:
            await self._delete(sts, namespace, deletion)
        await self._write_status(sts, plan.status)
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live |= {ordinals.pod_revision(p) for p in pods}
        limit = int((sts.get("spec") or {}).get("revisionHistoryLimit", revisions.DEFAULT_HISTORY_LIMIT))
        for name in revisions.to_prune(history, live, limit):
            try:
                await self.client.delete(CONTROLLER_REVISIONS, namespace, name)
            except status.ApiError as exc:
                if exc.code != 404:
                    raise
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)

    async def _claim(self, sts: Obj, resource: Resource, candidates: list[Obj]) -> list[Obj]:
        """The set's objects: adopt matching orphans (a set re-created after ``--cascade=orphan``)."""
        selector = (sts.get("spec") or {}).get("selector")
        if selector is None:  # not validated yet: take only what is ours, release nothing
            return revisions.owned_by(candidates, sts)
        return await ownership.claim(
            self.client, STATEFULSETS, sts, selector, resource=resource, candidates=candidates
        )

    async def _update_revision(self, sts: Obj, history: list[Obj], collisions: int) -> tuple[Obj, int]:
        """The revision of the set's current template: reused, renumbered or created."""
        data = revisions.revision_data(sts)
        number = revisions.next_number(history)
        equal = [r for r in history if revisions.same_template(r, data)]
        namespace = sts["metadata"].get("namespace", "")
        if equal and equal[-1] is history[-1]:
            return equal[-1], collisions
        if equal:  # back to an older template (rollout undo): it becomes the newest revision
            name = equal[-1]["metadata"]["name"]
            renumbered = await self.client.patch(CONTROLLER_REVISIONS, namespace, name, {"revision": number})
            return renumbered, collisions
        for _ in range(_MAX_COLLISIONS):
            candidate = revisions.new_revision(sts, KIND, number, collisions)
            try:
                return await self.client.create(CONTROLLER_REVISIONS, namespace, candidate), collisions
            except status.ApiError as exc:
                if exc.code != 409:
                    raise
            existing = await self.client.get(CONTROLLER_REVISIONS, namespace, candidate["metadata"]["name"])
            if revisions.same_template(existing, data) and revisions.owned_by([existing], sts):
                return existing, collisions  # ours, not in the cache yet
            collisions += 1
        raise status.conflict(
            "controllerrevisions", "apps", sts["metadata"]["name"], "too many revision hash collisions"
        )

    async def _create(self, sts: Obj, pod: Obj) -> None:
        namespace, name = sts["metadata"].get("namespace", ""), pod["metadata"]["name"]
        ordinal = ordinals.ordinal_of(sts["metadata"]["name"], name)
        if ordinal is not None and (sts.get("spec") or {}).get("volumeClaimTemplates"):
            try:
                await self._create_claims(sts, name, ordinal)
            except ClaimNotReadyError as exc:
                log.info("pod %s/%s waits: %s", namespace, name, exc)
                self.queue.add_after(f"{namespace}/{sts['metadata']['name']}", _CLAIM_RETRY)
                return
            pod = use_claims(pod, sts, ordinal)
        try:
            await self.client.create(PODS, namespace, pod)
        except status.ApiError as exc:
            if exc.code == 409:
                return  # exists, not yet in our cache (or still terminating): the next sync sees it
            await self.recorder.record(
                sts, "Warning", "FailedCreate",
                f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed error: {exc.message}",
            )  # fmt: skip
            raise
        log.info("created pod %s/%s", namespace, name)
        await self.recorder.record(
            sts, "Normal", "SuccessfulCreate",
            f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful",
        )  # fmt: skip

    async def _create_claims(self, sts: Obj, pod_name: str, ordinal: int) -> None:
        """Create the ordinal's missing claims (upstream createPersistentVolumeClaims)."""
        set_name = sts["metadata"]["name"]
        for claim in claims_for(sts, ordinal):
            namespace, claim_name_ = claim["metadata"]["namespace"], claim["metadata"]["name"]
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, namespace, claim)
            except status.ApiError as exc:
                if exc.code != 409:
                    await self.recorder.record(
                        sts, "Warning", "FailedCreate",
                        f"create Claim {claim_name_} for Pod {pod_name} in StatefulSet {set_name} "
                        f"failed error: {exc.message}",
                    )  # fmt: skip
                    raise
                existing = await self.client.get(PERSISTENTVOLUMECLAIMS, namespace, claim_name_)
                if existing["metadata"].get("deletionTimestamp"):
                    raise ClaimNotReadyError(f"pvc {claim_name_} is being deleted") from None
                continue
            log.info("created claim %s/%s", namespace, claim_name_)
            await self.recorder.record(
                sts, "Normal", "SuccessfulCreate",
                f"create Claim {claim_name_} Pod {pod_name} in StatefulSet {set_name} success",
            )  # fmt: skip

    async def _delete(self, sts: Obj, namespace: str, deletion: ordinals.Deletion) -> None:
        set_name = sts["metadata"]["name"]
        if deletion.reason == "failed":
            await self.recorder.record(
                sts, "Warning", "RecreatingFailedPod",
                f"StatefulSet {namespace}/{set_name} is recreating failed Pod {deletion.name}",
            )  # fmt: skip
        options = {"preconditions": {"uid": deletion.uid}} if deletion.uid else {}
        try:
            await self.client.request("DELETE", path_of(PODS, namespace, deletion.name), options)
        except status.ApiError as exc:
            if exc.code in (404, 409):
                return  # already gone, or replaced by a newer pod of the same name
            raise
        log.info("deleted pod %s/%s (%s)", namespace, deletion.name, deletion.reason)
        await self.recorder.record(
            sts, "Normal", "SuccessfulDelete",
            f"delete Pod {deletion.name} in StatefulSet {set_name} successful",
        )  # fmt: skip

    async def _write_status(self, sts: Obj, wanted: Obj) -> None:
        current = sts.get("status") or {}
        if all(current.get(k) == v for k, v in wanted.items()):
            return
        meta = sts["metadata"]
        try:
            await self.client.patch(
                STATEFULSETS, meta.get("namespace", ""), meta["name"], {"status": wanted}, "status"
            )
        except status.ApiError as exc:
            if exc.code != 404:
                raise
