"""The verbs on objects: create/get/list/update/patch/delete with Kubernetes semantics, calling each
kind's unit (:mod:`nestlab.api.kinds`) for its defaults, validation and server-owned fields, plus
what all kinds share: generation, status subresources, graceful pod deletion, binding, finalizers
and deletion propagation, namespace termination and quota admission.

Handlers decode HTTP and call one method here; this module never sees a request, so its rules are
testable against a fake etcd and reusable by in-process callers.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import admitreads, graceful, kinds, status
from nestlab.api import apply as fieldmanager
from nestlab.api.kinds.base import Kind, no_claims
from nestlab.api.namespaces import NamespaceLifecycle
from nestlab.api.patch import apply_patch
from nestlab.api.quota import QuotaAdmission
from nestlab.api.resources import NAMESPACES, PODS, QUOTAS, Resource
from nestlab.api.store import ClaimTakenError, DryRunStore, Obj, Predicate, Snapshot, Store, Wanted, now

_RETRIES = 8  # read-modify-write attempts: enough for a few writers racing on one object
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"  # the garbage collector's finalizers, as upstream
PROPAGATION = ("Foreground", "Background", "Orphan")
Admission = Callable[[Resource, Obj], None]
"""A create-time mutation configured by the server (DefaultTolerationSeconds...)."""
Hook = Callable[[Resource, str, Obj, Obj | None], Awaitable[None]]
"""(resource, namespace, new, old or None) -> None, or an ApiError: admission that needs the store or
the caller (:data:`nestlab.api.auth.CURRENT_USER`). Mutating hooks run on create after the kind's
defaults (the object is validated again after them); validating hooks run on create and update
after validation, with the object about to be stored."""
Allocation = Callable[[Resource, Obj, Obj | None], Awaitable[bool]]
"""(resource, new, old or None) -> whether it picked a value from a shared pool for ``new`` (a
Service's ClusterIP; see :class:`~nestlab.api.kinds.base.Claim`): a picked value another object
won meanwhile is picked again, a requested one is the client's 422."""


def _served(group: str, plural: str) -> Resource | None:
    kind = kinds.by_plural(group, plural)
    return None if kind is None else kind.resource


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise status.bad_request("metadata must be an object")
    return meta


class Registry:
    """Create/get/list/update/patch/delete with Kubernetes semantics on top of a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        admission: tuple[Admission, ...] = (),
        allocation: Allocation | None = None,
        *,
        mutating: tuple[Hook, ...] = (),
        validating: tuple[Hook, ...] = (),
    ) -> None:
        self.store = store
        self.admission = admission
        self.allocation = allocation
        self.mutating = mutating
        self.validating = validating
        self.quota = QuotaAdmission(store, _served)
        self.namespaces = NamespaceLifecycle(store, self.create, self.delete)

    def _check_type(self, resource: Resource, obj: Any) -> Obj:
        if not isinstance(obj, dict):
            raise status.bad_request(f"the body must be a {resource.kind} object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != resource.kind:
            raise status.bad_request(
                f"the kind in the data ({kind}) does not match the kind served here ({resource.kind})"
            )
        if api_version and api_version != resource.group_version:
            raise status.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.group_version})"
            )
        obj["kind"], obj["apiVersion"] = resource.kind, resource.group_version
        if "metadata" in obj:
            _meta(obj)
        else:
            obj["metadata"] = {}
        return obj

    async def _namespace_open(
        self, resource: Resource, namespace: str, name: str, known: Snapshot | None = None
    ) -> None:
        wanted = Wanted(NAMESPACES, "", namespace)
        if known is not None and wanted in known.objects:
            found = known.objects[wanted]
            if found is None:
                raise status.not_found(NAMESPACES.plural, NAMESPACES.group, namespace)
            ns = found
        else:
            ns = await self.store.get(NAMESPACES, "", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            reason = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise status.admission_forbidden(resource.plural, resource.group, name, reason)

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        """One object (404 when absent)."""
        return await self.store.get(resource, namespace, name)

    async def list(
        self, resource: Resource, namespace: str, predicate: Predicate, *, limit: int = 0, token: str = ""
    ) -> Obj:
        """A ``<Kind>List`` with the store revision as its resourceVersion (one chunk if ``limit``)."""
        following = ""
        if limit or token:
            items, revision, following = await self.store.page(resource, namespace, predicate, limit, token)
        else:
            items, revision = await self.store.list(resource, namespace, predicate)
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if following:
            meta["continue"] = following
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.group_version,
            "metadata": meta,
            "items": items,
        }

    async def create(self, resource: Resource, namespace: str, body: Any, manager: str = "") -> Obj:
        """Default, validate, admit and store a new object (``manager`` recorded in managedFields)."""
        obj = self._check_type(resource, body)
        meta = obj["metadata"]
        if resource.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        self._prepare_new(resource, obj)
        known = await self._admission_reads(resource, namespace, obj)
        token = admitreads.CURRENT.set(None if known is None else (obj, known))
        try:
            await self._admit_new(resource, namespace, obj)
            if manager:
                fieldmanager.record_update(None, obj, manager, resource.group_version)
            if resource.namespaced:
                await self._namespace_open(resource, namespace, meta["name"], known)
            if resource is QUOTAS:
                obj = await self.quota.initial_status(namespace, obj)
            quotas = None if known is None else known.lists.get(Wanted(QUOTAS, namespace))
            charged = await self.quota.admit(resource, namespace, obj, quotas) if resource.namespaced else []
        finally:
            admitreads.CURRENT.reset(token)
        try:
            return await self._store_new(resource, namespace, obj)
        except status.ApiError:
            if charged:
                await self.quota.refund(resource, namespace, obj, charged)
            raise

    async def _admission_reads(self, resource: Resource, namespace: str, obj: Obj) -> Snapshot | None:
        """What the admission of a new namespaced object reads (its namespace, the namespace's
        quotas, and what each :class:`~nestlab.api.admitreads.ReadingHook` wants), in one etcd
        round trip: see :mod:`nestlab.api.admitreads`. None for cluster-scoped objects."""
        if not resource.namespaced or not namespace:
            return None
        wanted = [Wanted(NAMESPACES, "", namespace)]
        if resource is not QUOTAS:
            wanted.append(Wanted(QUOTAS, namespace))
        for hook in (*self.mutating, *self.validating):
            if isinstance(hook, admitreads.ReadingHook):
                wanted += hook.wants(resource, namespace, obj)
        return await self.store.read_together(wanted)

    async def _admit_new(self, resource: Resource, namespace: str, obj: Obj) -> None:
        """The mutating hooks (then validation again), then the validating hooks."""
        for mutate in self.mutating:
            await mutate(resource, namespace, obj, None)
        if self.mutating:
            causes = kinds.of(resource).validate(obj)
            if causes:
                name = str(obj["metadata"].get("name", ""))
                raise status.invalid(resource.kind, resource.group, name, causes)
        for check in self.validating:
            await check(resource, namespace, obj, None)

    async def _store_new(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        """Allocate what the object needs from shared pools and store it; a lost race re-picks."""
        if self.allocation is None:
            return await self.store.create(resource, namespace, obj)
        if kinds.of(resource).claims is no_claims:
            # Nothing it holds can be taken meanwhile, so nothing is picked again: no copy to retry from.
            await self.allocation(resource, obj, None)
            return await self.store.create(resource, namespace, obj)
        for attempt in range(_RETRIES):
            candidate = copy.deepcopy(obj)
            picked = await self.allocation(resource, candidate, None)
            try:
                return await self.store.create(resource, namespace, candidate)
            except status.ApiError as exc:
                lost = isinstance(exc, ClaimTakenError) or exc.reason == "Conflict"
                if not picked or not lost or attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable: the last attempt raises")

    def _prepare_new(self, resource: Resource, obj: Obj) -> None:
        """Server-owned metadata cleared, the kind's defaults and admission applied, then validated."""
        meta = obj["metadata"]
        for key in (
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "uid",
            "resourceVersion",
            "generation",
        ):
            meta.pop(key, None)
        kind = kinds.of(resource)
        if kind.refusal:
            raise status.admission_forbidden(
                resource.plural, resource.group, str(meta.get("name", "")), kind.refusal
            )
        kind.default(obj)
        kind.on_create(obj)
        for admit in self.admission:
            admit(resource, obj)
        if kind.generation:
            meta["generation"] = 1
            if resource.has_status:
                obj["status"] = {}  # a new workload's status is its controller's to write, as upstream
        causes = kind.validate(obj)
        if causes:
            raise status.invalid(resource.kind, resource.group, str(meta.get("name", "")), causes)

    def _merge_update(self, resource: Resource, old: Obj, new: Obj, subresource: str) -> Obj:
        """The object to store when ``new`` replaces ``old`` through the main resource or /status."""
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            return merged
        meta, old_meta = new["metadata"], old["metadata"]
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]  # a client that did not send them keeps them
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if resource.has_status:
            new["status"] = old.get("status", {})
        kind = kinds.of(resource)
        kind.default(new)
        kind.on_update(new, old)
        if kind.generation:
            meta["generation"] = _generation(old, new)
        return new

    async def _write(
        self, resource: Resource, namespace: str, old: Obj, new: Obj, subresource: str, *, manager: str = ""
    ) -> Obj:
        name = old["metadata"]["name"]
        new = self._merge_update(resource, old, new, subresource)
        if manager and subresource != "status":
            fieldmanager.record_update(old, new, manager, resource.group_version)
        if new["metadata"].get("name") != name:
            raise status.bad_request(
                f"the name of the object ({new['metadata'].get('name')}) "
                f"does not match the name on the URL ({name})"
            )
        await self._validate_update(resource, namespace, new, old, subresource)
        expected = int(old["metadata"]["resourceVersion"])
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return old  # nothing changed: no write, no new resourceVersion, no watch event
        deleting = new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")
        if deleting and resource is not PODS:
            # The last finalizer is gone: the object goes (pods instead wait for their node agent).
            new["metadata"]["resourceVersion"] = str(expected)
            return await self._finalize(resource, namespace, new)
        # A claim that grows: its class must allow expansion, and quota is charged for the growth.
        charged = []
        if subresource != "status":
            charged = await self.quota.admit_update(resource, namespace, new, old)
        try:
            picked = self.allocation is not None and await self.allocation(resource, new, old)
            try:
                return await self.store.replace(resource, namespace, new, expected, old)
            except ClaimTakenError:
                if picked:  # another object won the value this server picked: retried with a new pick
                    raise status.conflict(resource.plural, resource.group, name) from None
                raise
        except Exception:
            if charged:
                await self.quota.refund_update(namespace, new, old, charged)
            raise

    async def _validate_update(
        self, resource: Resource, namespace: str, new: Obj, old: Obj, subresource: str
    ) -> None:
        """The kind's checks, then the validating hooks (not for /status writes)."""
        kind = kinds.of(resource)
        causes = kind.validate(new)
        if causes:
            # Ratcheting, as upstream: a field refused since the object was stored (the pod-field
            # table) does not block its updates (status reports, finalizers); new uses are refused.
            stored = set(kind.validate(old))
            causes = [c for c in causes if c.reason != "FieldValueForbidden" or c not in stored]
        if subresource != "status":
            causes += kind.validate_update(new, old)
        if causes:
            raise status.invalid(resource.kind, resource.group, str(new["metadata"]["name"]), causes)
        if subresource != "status":
            for check in self.validating:
                await check(resource, namespace, new, old)

    async def update(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: Any,
        subresource: str = "",
        *,
        manager: str = "",
    ) -> Obj:
        """PUT: replace the object; a resourceVersion in the body makes it compare-and-swap (409)."""
        new = self._check_type(resource, body)
        if new["metadata"].get("name") not in (None, name):
            raise status.bad_request(
                f"the name of the object ({new['metadata']['name']}) "
                f"does not match the name on the URL ({name})"
            )
        new["metadata"]["name"] = name
        wanted = str(new["metadata"].get("resourceVersion") or "")

        async def change(current: Obj) -> Obj:
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise status.conflict(resource.plural, resource.group, name)
            return await self._write(
                resource, namespace, current, copy.deepcopy(new), subresource, manager=manager
            )

        return await self._retrying(resource, namespace, name, change, pinned=bool(wanted))

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        *,
        subresource: str = "",
        manager: str = "",
    ) -> Obj:
        """PATCH: apply to the latest copy; retried on contention unless it names a resourceVersion."""

        async def change(current: Obj) -> Obj:
            patched = apply_patch(content_type, copy.deepcopy(current), body)
            if not isinstance(patched, dict):
                raise status.bad_request("the patch does not produce an object")
            wanted = str(_meta(patched).get("resourceVersion") or "")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise status.conflict(resource.plural, resource.group, name)
            patched = self._check_type(resource, patched)
            if (
                subresource != "status"
                and resource.has_status
                and patched.get("status") != current.get("status")
            ):
                patched["status"] = current.get("status", {})
            return await self._write(resource, namespace, current, patched, subresource, manager=manager)

        meta = body.get("metadata") if isinstance(body, dict) else None
        pinned = isinstance(meta, dict) and bool(meta.get("resourceVersion"))
        return await self._retrying(resource, namespace, name, change, pinned=pinned)

    async def apply(
        self, resource: Resource, namespace: str, name: str, body: Any, manager: str, *, force: bool
    ) -> tuple[Obj, bool]:
        """Server-side apply of ``body`` by ``manager``: (the object, whether it was created)."""
        config = self._check_type(resource, body)
        if config["metadata"].get("name") not in (None, name):
            named = config["metadata"]["name"]
            raise status.bad_request(
                f"the name of the object ({named}) does not match the name on the URL ({name})"
            )
        config["metadata"]["name"] = name
        version = resource.group_version
        for _ in range(_RETRIES):
            try:
                current = await self.store.get(resource, namespace, name)
            except status.ApiError as exc:
                if exc.code != 404:
                    raise
                fresh = fieldmanager.apply(
                    None, copy.deepcopy(config), manager, force=force, api_version=version
                )
                return await self.create(resource, namespace, fresh), True
            new = fieldmanager.apply(
                current, copy.deepcopy(config), manager, force=force, api_version=version
            )
            try:
                return await self._write(resource, namespace, current, new, ""), False
            except status.ApiError as exc:
                if exc.reason != "Conflict" or "has been modified" not in exc.message:
                    raise
        raise status.conflict(resource.plural, resource.group, name)

    async def _retrying(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        change: Callable[[Obj], Awaitable[Obj]],
        *,
        pinned: bool,
    ) -> Obj:
        """Run ``change`` on the latest copy; lost compare-and-swap races are retried unless the
        client pinned a resourceVersion (then the 409 is the answer it asked for).

        It starts from the newest copy this server has seen (:meth:`Store.latest`), as upstream
        starts from its watch cache's copy; the write compares that copy's revision. A refusal
        or a no-change answer reached on such a copy, which may be stale, is decided again on a
        fresh read, so a client only ever gets an answer about the object as it is in etcd."""
        current, fresh = self.store.latest(resource, namespace, name), False
        for _ in range(_RETRIES):
            if current is None:
                current, fresh = await self.store.get(resource, namespace, name), True
            try:
                result = await change(current)
            except status.ApiError as exc:
                if fresh and (exc.reason != "Conflict" or pinned or "has been modified" not in exc.message):
                    raise
                # a lost race, or a copy that may be stale: the copy the failed write found, or a read
                current, fresh = (self.store.latest(resource, namespace, name) if fresh else None), False
                continue
            if result is current and not fresh:  # "nothing changed" on a copy that may be stale
                current = None
                continue
            return result
        raise status.conflict(resource.plural, resource.group, name)

    async def bind(self, namespace: str, name: str, body: Any) -> Obj:
        """pods/binding: assign an unscheduled pod to a node, once."""
        target = body.get("target") if isinstance(body, dict) else None
        node = target.get("name") if isinstance(target, dict) else None
        if not node or not isinstance(node, str):
            raise status.invalid(
                "Binding", "", name, [status.Cause("target.name", "Required value", "FieldValueRequired")]
            )

        async def assign(pod: Obj) -> Obj:
            current = pod["spec"].get("nodeName")
            if current:
                raise status.conflict(
                    "pods/binding", "", name, f'pod {name} is already assigned to node "{current}"'
                )
            if pod["metadata"].get("deletionTimestamp"):
                raise status.conflict(
                    "pods/binding", "", name, f"pod {name} is being deleted, cannot be assigned to a host"
                )
            pod["spec"]["nodeName"] = node
            conditions = [c for c in pod["status"].get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now()})
            pod["status"]["conditions"] = conditions
            return pod

        await self.store.mutate(PODS, namespace, name, assign)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    async def delete(self, resource: Resource, namespace: str, name: str, options: Obj) -> Obj:
        """DELETE: graceful for scheduled pods, Terminating for namespaces, blocked by finalizers.

        A delete that lost a race with another writer (a node agent reporting the pod's status)
        is retried on the latest copy, as upstream's storage retries it, unless the client pinned
        a resourceVersion precondition (then the 409 is the answer it asked for)."""
        pre = options.get("preconditions")
        pinned = isinstance(pre, dict) and bool(pre.get("resourceVersion"))
        for attempt in range(_RETRIES):
            try:
                return await self._delete_once(resource, namespace, name, options)
            except status.ApiError as exc:
                raced = exc.reason == "Conflict" and "has been modified" in exc.message
                if not raced or pinned or attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable: the last attempt raises")

    async def _delete_once(self, resource: Resource, namespace: str, name: str, options: Obj) -> Obj:
        current = await self.store.get(resource, namespace, name)
        pre = options.get("preconditions") or {}
        grace = options.get("gracePeriodSeconds")
        if not isinstance(pre, dict):
            raise status.bad_request("DeleteOptions.preconditions must be an object")
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool) or grace < 0):
            raise status.bad_request(
                f"DeleteOptions.gracePeriodSeconds must be a non-negative integer, got {grace!r}"
            )
        if pre.get("uid") and pre["uid"] != current["metadata"].get("uid"):
            raise status.conflict(
                resource.plural,
                resource.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, "
                f"UID in object meta: {current['metadata'].get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise status.conflict(resource.plural, resource.group, name)
        if resource is NAMESPACES:
            return await self.namespaces.terminate(current)
        finalizer = _propagation_finalizer(kinds.of(resource), options)
        if finalizer and resource is not PODS:
            return await self._mark_deleting(resource, namespace, current, 0, finalizer)
        if resource is PODS and self._needs_grace(current, grace):
            return await self._mark_deleting(resource, namespace, current, grace)
        if current["metadata"].get("finalizers"):
            return await self._mark_deleting(resource, namespace, current, 0)
        return await self._finalize(resource, namespace, current)

    @staticmethod
    def _needs_grace(pod: Obj, grace: Any) -> bool:
        if grace is not None and int(grace) == 0:
            return False
        scheduled = bool((pod.get("spec") or {}).get("nodeName"))
        terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        return scheduled and not terminal

    async def _mark_deleting(
        self, resource: Resource, namespace: str, current: Obj, grace: Any, finalizer: str = ""
    ) -> Obj:
        finalizers = list(current["metadata"].get("finalizers") or [])
        if finalizer and finalizer not in finalizers:
            # the garbage collector acts on it: dependents first (foreground) or released (orphan)
            current["metadata"]["finalizers"] = [*finalizers, finalizer]
        elif current["metadata"].get("deletionTimestamp"):
            if not graceful.shorten(current["metadata"], None if grace is None else int(grace)):
                return current  # already going, as soon or sooner
            return await self.store.replace(
                resource, namespace, current, int(current["metadata"]["resourceVersion"])
            )
        seconds = (
            int(grace)
            if grace is not None
            else int(current.get("spec", {}).get("terminationGracePeriodSeconds", 30))
        )
        stamp = datetime.now(UTC) + timedelta(seconds=seconds)
        current["metadata"].setdefault("deletionTimestamp", stamp.strftime("%Y-%m-%dT%H:%M:%SZ"))
        current["metadata"].setdefault("deletionGracePeriodSeconds", seconds)
        return await self.store.replace(
            resource, namespace, current, int(current["metadata"]["resourceVersion"])
        )

    async def _finalize(self, resource: Resource, namespace: str, current: Obj) -> Obj:
        if not resource.namespaced or resource is QUOTAS:
            return await self.store.remove(resource, namespace, current)
        # The namespace's quotas are read in the deletion's own transaction, as they are right
        # after it: the refund needs no read of its own.
        removed, quotas = await self.store.remove_listing(resource, namespace, current, QUOTAS)
        await self.quota.refund(resource, namespace, removed, known=quotas)
        return removed

    def dry_run(self) -> Registry:
        """A registry for ``?dryRun=All``: same rules and admission, nothing written."""
        return Registry(
            DryRunStore(self.store.etcd),
            self.admission,
            self.allocation,
            mutating=self.mutating,
            validating=self.validating,
        )

    async def bootstrap(self) -> None:
        """Create the system namespaces and resume interrupted namespace deletions."""
        await self.namespaces.bootstrap()

    async def close(self) -> None:
        """Stop background work."""
        await self.namespaces.close()


def _generation(old: Obj, new: Obj) -> int:
    """``metadata.generation`` after an update: +1 when anything but metadata and status changed."""
    current = int(old["metadata"].get("generation") or 1)

    def desired(obj: Obj) -> Obj:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}

    return current + 1 if desired(old) != desired(new) else current


def _propagation_finalizer(kind: Kind, options: Obj) -> str:
    """The garbage collector's finalizer DeleteOptions ask for ("" for background deletion)."""
    policy = options.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    if policy is not None and orphan is not None:
        raise status.invalid(
            "DeleteOptions",
            "",
            "",
            [status.Cause("propagationPolicy", "Invalid value: orphanDependents and propagationPolicy cannot "
                          "both be set", "FieldValueInvalid")],
        )  # fmt: skip
    if policy is None and orphan is None:
        return ORPHAN if kind.orphan_by_default else ""
    if orphan is not None:
        return ORPHAN if orphan else ""
    if policy not in PROPAGATION:
        supported = ", ".join(f'"{p}"' for p in PROPAGATION)
        cause = status.Cause(
            "propagationPolicy",
            f'Unsupported value: "{policy}": supported values: {supported}',
            "FieldValueNotSupported",
        )
        raise status.invalid("DeleteOptions", "", "", [cause])
    return {"Foreground": FOREGROUND, "Orphan": ORPHAN}.get(str(policy), "")
