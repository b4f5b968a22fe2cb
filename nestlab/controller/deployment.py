"""The Deployment controller: ReplicaSets per pod template, rolled by strategy.

Upstream's ``deployment`` controller, step for step (``syncDeployment``): claim the ReplicaSets
the selector matches; a Deployment being deleted only gets its status; a paused one is only
scaled (and cleaned up); a change of ``spec.replicas`` alone is a scaling event (proportional
across active ReplicaSets); otherwise the strategy rolls: RollingUpdate grows the new ReplicaSet
within ``maxSurge`` and shrinks old ones within ``maxUnavailable``; Recreate scales the old ones
to 0, waits until none of their pods is left, then scales the new one up. The new ReplicaSet is
``<deploy>-<pod-template-hash>`` with that label in its template and selector, and carries the
revision annotations ``kubectl rollout history|undo`` read. The arithmetic is in
:mod:`nestlab.controller.rollout`, the status in :mod:`nestlab.controller.progress`.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status as api_status
from nestlab.api.client import ApiClient
from nestlab.api.resources import DEPLOYMENTS, PODS, REPLICASETS
from nestlab.controller import progress, rollout
from nestlab.controller import selector as labelsel
from nestlab.controller.informer import EventHandler, InformerFactory, controller_ref, key_of, split_key
from nestlab.controller.ownership import claim
from nestlab.controller.pods import owner_reference
from nestlab.controller.recorder import Recorder
from nestlab.controller.replicaset import status_patch
from nestlab.controller.workqueue import WorkQueue

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def _active(replica_sets: list[Obj]) -> list[Obj]:
    return [rs for rs in replica_sets if rollout.replicas_of(rs) > 0]


def _now() -> datetime:
    return datetime.now(UTC)


def _with(old: list[Obj], new_rs: Obj | None) -> list[Obj]:
    return [*old, new_rs] if new_rs is not None else list(old)


def _progressing(status: Obj, state: str, reason: str, message: str) -> Obj:
    """``status`` with the Progressing condition set (upstream SetDeploymentCondition rules)."""
    progress.set_condition(status, progress.condition("Progressing", state, reason, message, _now()))
    return status


class DeploymentController:
    """Reconciles Deployments into ReplicaSets."""

    name = "deployment"
    workers = 2

    def __init__(self, client: ApiClient, informers: InformerFactory) -> None:
        self.client = client
        self.queue = WorkQueue(self.name)
        self.recorder = Recorder(client, "deployment-controller")
        self.deployments = informers.informer(DEPLOYMENTS)
        self.replica_sets = informers.informer(REPLICASETS)
        self.pods = informers.informer(PODS)
        self.deployments.add_handler(EventHandler.enqueue(self.queue))
        self.replica_sets.add_handler(EventHandler(self._rs_changed, self._rs_updated, self._rs_changed))
        self.pods.add_handler(EventHandler(on_delete=self._pod_deleted))

    # -- events ---------------------------------------------------------------------------------------
    def _owner_key(self, obj: Obj, kind: str, cache: Any) -> str | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != kind:
            return None
        key = f"{obj['metadata'].get('namespace', '')}/{ref.get('name', '')}"
        owner = cache.get(key)
        return key if owner is not None and owner["metadata"].get("uid") == ref.get("uid") else None

    def _rs_changed(self, rs: Obj) -> None:
        if controller_ref(rs) is None:
            meta = rs.get("metadata") or {}
            for deploy in self.deployments.list(meta.get("namespace", "")):
                if labelsel.matches((deploy.get("spec") or {}).get("selector"), meta.get("labels")):
                    self.queue.add(key_of(deploy))
        elif (key := self._owner_key(rs, "Deployment", self.deployments)) is not None:
            self.queue.add(key)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        self._rs_changed(old)
        self._rs_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        rs_key = self._owner_key(pod, "ReplicaSet", self.replica_sets)
        rs = self.replica_sets.get(rs_key) if rs_key is not None else None
        if rs is not None and (key := self._owner_key(rs, "Deployment", self.deployments)) is not None:
            deploy = self.deployments.get(key) or {}
            if not rollout.is_rolling(deploy):
                self.queue.add(key)  # Recreate waits for old pods to be gone

    # -- writes ---------------------------------------------------------------------------------------
    async def _write_status(self, deploy: Obj, new_status: Obj) -> Obj:
        patch = status_patch(deploy.get("status") or {}, new_status)
        if patch is None:
            return deploy
        meta = deploy["metadata"]
        body = {"status": patch}
        return await self.client.patch(DEPLOYMENTS, meta["namespace"], meta["name"], body, "status")

    async def _set_revision(self, deploy: Obj, revision: str) -> Obj:
        """The Deployment's revision annotation follows its new ReplicaSet's (SetDeploymentRevision)."""
        meta = deploy["metadata"]
        if (meta.get("annotations") or {}).get(rollout.REVISION) == revision:
            return deploy
        patch = {"metadata": {"annotations": {rollout.REVISION: revision}}}
        updated = await self.client.patch(DEPLOYMENTS, meta["namespace"], meta["name"], patch)
        deploy["metadata"] = updated["metadata"]
        return deploy

    async def _scale(self, rs: Obj, size: int, deploy: Obj) -> tuple[bool, Obj]:
        """Set a ReplicaSet's size and desired/max annotations (upstream scaleReplicaSet)."""
        desired = str(rollout.replicas_of(deploy))
        ceiling = str(rollout.replicas_of(deploy) + rollout.max_surge(deploy))
        annotations = rs["metadata"].get("annotations") or {}
        stale = (annotations.get(rollout.DESIRED_REPLICAS), annotations.get(rollout.MAX_REPLICAS)) != (
            desired,
            ceiling,
        )
        if rollout.replicas_of(rs) == size and not stale:
            return False, rs
        patch = {
            "spec": {"replicas": size},
            "metadata": {"annotations": {rollout.DESIRED_REPLICAS: desired, rollout.MAX_REPLICAS: ceiling}},
        }
        meta = rs["metadata"]
        before = rollout.replicas_of(rs)
        updated = await self.client.patch(REPLICASETS, meta["namespace"], meta["name"], patch)
        if before != size:
            await self._scaled_event(deploy, meta["name"], before, size)
        return before != size, updated

    async def _scaled_event(self, deploy: Obj, rs_name: str, before: int, size: int) -> None:
        """Upstream's ScalingReplicaSet Event: "Scaled up replica set web-5d8f from 0 to 3"."""
        way = "up" if size > before else "down"
        log.info("%s: scaled %s replica set %s from %d to %d", key_of(deploy), way, rs_name, before, size)
        message = f"Scaled {way} replica set {rs_name} from {before} to {size}"
        await self.recorder.record(deploy, "Normal", "ScalingReplicaSet", message)

    # -- the sync -------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        """Reconcile the Deployment at ``key`` (upstream syncDeployment)."""
        cached = self.deployments.get(key)
        if cached is None:
            return
        deploy = copy.deepcopy(cached)
        selector = (deploy.get("spec") or {}).get("selector")
        if labelsel.is_empty(selector):
            log.warning("deployment %s has an empty selector: it would take every pod; not acting", key)
            return
        namespace, _ = split_key(key)
        candidates = [copy.deepcopy(rs) for rs in self.replica_sets.list(namespace)]
        owned = await claim(
            self.client, DEPLOYMENTS, deploy, selector, resource=REPLICASETS, candidates=candidates
        )
        if deploy["metadata"].get("deletionTimestamp"):
            new_rs, old = await self._all_with_revision(deploy, owned, create=False)
            await self._write_status(
                deploy, progress.compute_status(deploy, _with(old, new_rs), new_rs, _now())
            )
            return
        deploy = await self._check_paused(deploy)
        if (deploy.get("spec") or {}).get("paused"):
            await self._scale_only(deploy, owned, cleanup=True)
        elif rollout.is_scaling_event(deploy, _active(owned)):
            await self._scale_only(deploy, owned, cleanup=False)
        elif rollout.is_rolling(deploy):
            await self._rolling(deploy, owned)
        else:
            await self._recreate(deploy, owned)

    async def _check_paused(self, deploy: Obj) -> Obj:
        if not progress.has_deadline(deploy):
            return deploy
        status = copy.deepcopy(deploy.get("status") or {})
        cond = progress.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == progress.TIMED_OUT:
            return deploy
        paused_cond = cond is not None and cond.get("reason") == progress.PAUSED
        paused = bool((deploy.get("spec") or {}).get("paused"))
        if paused and not paused_cond:
            _progressing(status, "Unknown", progress.PAUSED, "Deployment is paused")
        elif not paused and paused_cond:
            _progressing(status, "Unknown", progress.RESUMED, "Deployment is resumed")
        else:
            return deploy
        return await self._write_status(deploy, status)

    async def _all_with_revision(
        self, deploy: Obj, owned: list[Obj], create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (created if asked and missing) and the old ones.

        Upstream getAllReplicaSetsAndSyncRevision: the new one's annotations and minReadySeconds
        follow the Deployment, and the Deployment's revision annotation follows the new one.
        """
        new_rs = rollout.find_new(deploy, owned)
        old = [rs for rs in owned if rs is not new_rs]
        new_revision = max((rollout.revision(rs) for rs in old), default=0) + 1
        if new_rs is not None:
            annotations, changed = rollout.new_rs_annotations(deploy, new_rs, new_revision, exists=True)
            min_ready = int((deploy.get("spec") or {}).get("minReadySeconds") or 0)
            if changed or int((new_rs.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
                meta = new_rs["metadata"]
                patch = {"metadata": {"annotations": annotations}, "spec": {"minReadySeconds": min_ready}}
                return await self.client.patch(REPLICASETS, meta["namespace"], meta["name"], patch), old
            await self._set_revision(deploy, str(rollout.revision(new_rs)))
            status = copy.deepcopy(deploy.get("status") or {})
            if progress.has_deadline(deploy) and progress.get_condition(status, "Progressing") is None:
                message = f'Found new replica set "{new_rs["metadata"]["name"]}"'
                _progressing(status, "True", progress.FOUND_NEW_RS, message)
                deploy.update(await self._write_status(deploy, status))
            return new_rs, old
        if not create:
            return None, old
        return await self._create_new(deploy, owned, new_revision), old

    async def _create_new(self, deploy: Obj, owned: list[Obj], new_revision: int) -> Obj:
        spec, meta = deploy.get("spec") or {}, deploy["metadata"]
        collisions = (deploy.get("status") or {}).get("collisionCount")
        pod_hash = rollout.template_hash(spec.get("template") or {}, collisions)
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[rollout.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[rollout.HASH_LABEL] = pod_hash
        name = f"{meta['name']}-{pod_hash}"
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": name, "namespace": meta["namespace"], "labels": template["metadata"]["labels"],
                "ownerReferences": [owner_reference(deploy, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": 0, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                     "selector": selector, "template": template},
        }  # fmt: skip
        rs["metadata"]["annotations"], _ = rollout.new_rs_annotations(deploy, rs, new_revision, exists=False)
        rs["spec"]["replicas"] = rollout.new_rs_replicas(deploy, owned, rs)
        try:
            created = await self.client.create(REPLICASETS, meta["namespace"], rs)
        except api_status.ApiError as exc:
            if exc.code != 409:
                status = copy.deepcopy(deploy.get("status") or {})
                if progress.has_deadline(deploy):
                    message = f'Failed to create new replica set "{name}": {exc.message}'
                    _progressing(status, "False", "ReplicaSetCreateError", message)
                    await self._write_status(deploy, status)
                raise
            existing = await self.client.get(REPLICASETS, meta["namespace"], name)
            ref = controller_ref(existing) or {}
            theirs = (existing.get("spec") or {}).get("template") or {}
            if ref.get("uid") == meta.get("uid") and rollout.same_template(
                theirs, spec.get("template") or {}
            ):
                return existing  # ours: the cache had not shown it yet
            status = copy.deepcopy(deploy.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            await self._write_status(deploy, status)
            count = status["collisionCount"]
            message = f"hash collision on replica set {name}: retrying with collisionCount {count}"
            raise api_status.ApiError(409, "AlreadyExists", message) from exc
        log.info("created replica set %s/%s (revision %d)", meta["namespace"], name, new_revision)
        if rollout.replicas_of(created) > 0:
            await self._scaled_event(deploy, name, 0, rollout.replicas_of(created))
        await self._set_revision(deploy, str(new_revision))
        if progress.has_deadline(deploy):
            status = copy.deepcopy(deploy.get("status") or {})
            message = f'Created new replica set "{name}"'
            _progressing(status, "True", progress.NEW_RS, message)
            deploy.update(await self._write_status(deploy, status))
        return created

    async def _cleanup(self, deploy: Obj, old: list[Obj]) -> None:
        for rs in rollout.to_clean(deploy, old):
            meta = rs["metadata"]
            log.info("deleting old replica set %s/%s (revisionHistoryLimit)", meta["namespace"], meta["name"])
            try:
                await self.client.delete(REPLICASETS, meta["namespace"], meta["name"])
            except api_status.ApiError as exc:
                if exc.code != 404:
                    raise

    async def _sync_rollout_status(self, deploy: Obj, all_rs: list[Obj], new_rs: Obj | None) -> None:
        now = _now()
        wanted = progress.rollout_status(deploy, all_rs, new_rs, now)
        written = await self._write_status(deploy, wanted)
        after = progress.requeue_after(deploy, written.get("status") or wanted, now)
        if after is not None:
            self.queue.add_after(key_of(deploy), after)

    async def _scale_only(self, deploy: Obj, owned: list[Obj], cleanup: bool) -> None:
        """Paused or a scaling event: resize, keep the rollout where it is (upstream sync)."""
        new_rs, old = await self._all_with_revision(deploy, owned, create=False)
        new_rs, old = await self._proportional(deploy, new_rs, old)
        if cleanup:
            await self._cleanup(deploy, old)
        all_rs = _with(old, new_rs)
        await self._write_status(deploy, progress.compute_status(deploy, all_rs, new_rs, _now()))

    async def _proportional(
        self, deploy: Obj, new_rs: Obj | None, old: list[Obj]
    ) -> tuple[Obj | None, list[Obj]]:
        """Upstream scale(): one active ReplicaSet takes the size; or old ones go to 0; or shares."""
        everything = [*([new_rs] if new_rs is not None else []), *old]
        active = _active(everything)
        desired = rollout.replicas_of(deploy)
        target: Obj | None = None
        if len(active) == 1:
            target = active[0]
        elif not active and everything:
            target = new_rs if new_rs is not None else max(old, key=rollout.created)
        plans: list[tuple[Obj, int]] = []
        if target is not None:
            plans = [(target, desired)] if rollout.replicas_of(target) != desired else []
        elif rollout.saturated(deploy, new_rs):
            plans = [(rs, 0) for rs in _active(old)]
        elif rollout.is_rolling(deploy):
            plans = rollout.proportional(deploy, active)
        updated = {}
        for rs, size in plans:
            updated[rs["metadata"]["name"]] = (await self._scale(rs, size, deploy))[1]

        def fresh(rs: Obj) -> Obj:
            return updated.get(rs["metadata"]["name"], rs)

        return (fresh(new_rs) if new_rs is not None else None), [fresh(rs) for rs in old]

    async def _rolling(self, deploy: Obj, owned: list[Obj]) -> None:
        new_rs, old = await self._all_with_revision(deploy, owned, create=True)
        assert new_rs is not None  # noqa: S101 - create=True always returns one
        all_rs = [*old, new_rs]
        desired = rollout.replicas_of(deploy)
        size = min(desired, rollout.new_rs_replicas(deploy, all_rs, new_rs))
        scaled, new_rs = await self._scale(new_rs, size, deploy)
        if scaled:
            await self._sync_rollout_status(deploy, [*old, new_rs], new_rs)
            return
        old, scaled = await self._reconcile_old(deploy, old, new_rs)
        all_rs = [*old, new_rs]
        if not scaled and progress.complete(deploy, deploy.get("status") or {}):
            await self._cleanup(deploy, old)
        await self._sync_rollout_status(deploy, all_rs, new_rs)

    async def _reconcile_old(self, deploy: Obj, old: list[Obj], new_rs: Obj) -> tuple[list[Obj], bool]:
        """Shrink old ReplicaSets within maxUnavailable (upstream reconcileOldReplicaSets)."""
        if rollout.spec_total(old) == 0:
            return old, False
        room = rollout.old_scale_room([*old, new_rs], new_rs, deploy)
        if room <= 0:
            return old, False
        by_name = {rs["metadata"]["name"]: rs for rs in old}
        changed = False
        for rs, size in rollout.cleanup_unhealthy(_active(old), room):
            did, by_name[rs["metadata"]["name"]] = await self._scale(rs, size, deploy)
            changed = changed or did
        old = list(by_name.values())
        for rs, size in rollout.scale_down_old([*_active(old), new_rs], _active(old), deploy):
            did, by_name[rs["metadata"]["name"]] = await self._scale(rs, size, deploy)
            changed = changed or did
        return list(by_name.values()), changed

    async def _recreate(self, deploy: Obj, owned: list[Obj]) -> None:
        new_rs, old = await self._all_with_revision(deploy, owned, create=False)
        scaled_down = False
        for index, rs in enumerate(old):
            if rollout.replicas_of(rs) > 0:
                did, old[index] = await self._scale(rs, 0, deploy)
                scaled_down = scaled_down or did
        if scaled_down or self._old_pods_running(old):
            await self._sync_rollout_status(deploy, _with(old, new_rs), new_rs)
            return
        if new_rs is None:
            new_rs, old = await self._all_with_revision(deploy, owned, create=True)
            assert new_rs is not None  # noqa: S101 - create=True always returns one
        _, new_rs = await self._scale(new_rs, rollout.replicas_of(deploy), deploy)
        if progress.complete(deploy, deploy.get("status") or {}):
            await self._cleanup(deploy, old)
        await self._sync_rollout_status(deploy, [*old, new_rs], new_rs)

    def _old_pods_running(self, old: list[Obj]) -> bool:
        """Any pod of an old ReplicaSet that may still run (terminating ones too; upstream oldPodsRunning)."""
        if sum(rollout.status_int(rs, "replicas") for rs in old) > 0:
            return True
        uids = {rs["metadata"].get("uid") for rs in old}
        namespaces = {rs["metadata"].get("namespace", "") for rs in old}
        for namespace in namespaces:
            for pod in self.pods.list(namespace):
                ref = controller_ref(pod)
                finished = (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")
                if ref is not None and ref.get("uid") in uids and not finished:
                    return True
        return False
