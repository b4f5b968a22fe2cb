"""ResourceQuota admission: an object is admitted only if every quota in its namespace has room.

Like Kubernetes, admission charges the quota *before* the object is stored, by a compare-and-swap on
the quota's ``status.used``: two concurrent creates that would each fit alone but not together
race on the same quota revision, and the loser re-reads, re-checks and is refused. Charges are
released when an object is finally removed (and when a create fails after charging). Pods count
their compute requests and limits and one ``pods``; a PersistentVolumeClaim counts its storage
request and one claim, in total and against its class (``<class>.storageclass.storage.k8s.io/...``);
every namespaced object counts one ``count/<resource>[.<group>]`` (and its legacy name:
``configmaps``, ``secrets``...). Which keys a quota may hold is decided by
:mod:`nestlab.api.kinds.resourcequota`.

A claim's class must be known before it is charged, so admission first gives a claim that names no
class the default one (:mod:`nestlab.api.storageclasses`), as upstream runs DefaultStorageClass
before ResourceQuota. Growing a bound claim is admitted by :meth:`QuotaAdmission.admit_update`:
only when its class allows expansion (upstream's PersistentVolumeClaimResize), charging the growth.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from nestlab.api import quantity, status, storageclasses
from nestlab.api.kinds.persistentvolumeclaim import class_of, storage_request
from nestlab.api.kinds.resourcequota import (
    CLASS_SUFFIX,
    COMPUTE,
    STORAGE,
    canonical,
    class_key,
    count_keys,
    counted,
    is_storage,
)
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PODS, QUOTAS, Resource
from nestlab.api.store import Obj, Store

Usage = dict[str, Decimal]


def pod_usage(pod: Obj) -> Usage:
    """What one pod counts against quota (terminal pods count nothing)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return {}
    usage: Usage = {key: Decimal(1) for key in count_keys("", "pods")}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for name in ("cpu", "memory"):
                value = (resources.get(section) or {}).get(name)
                if value is not None:
                    key = f"{section}.{name}"
                    usage[key] = usage.get(key, Decimal(0)) + quantity.parse(value)
    return usage


def claim_usage(claim: Obj) -> Usage:
    """What one PersistentVolumeClaim counts (upstream's PVC evaluator): the claim and its request,
    in total and against its class when it has one."""
    usage: Usage = {key: Decimal(1) for key in count_keys("", "persistentvolumeclaims")}
    usage[STORAGE] = storage_request(claim)
    name = class_of(claim)
    if name:
        usage[f"{name}{CLASS_SUFFIX}{STORAGE}"] = usage[STORAGE]
        usage[f"{name}{CLASS_SUFFIX}persistentvolumeclaims"] = Decimal(1)
    return usage


def growth_of(new: Obj, old: Obj) -> Usage:
    """What a claim update adds to quota: its storage growth, in total and in its class (nothing when
    the request stays or shrinks: validation refuses shrinking)."""
    grown = storage_request(new) - storage_request(old)
    if grown <= 0:
        return {}
    return {k: grown for k in claim_usage(new) if k == STORAGE or k.endswith(f"{CLASS_SUFFIX}{STORAGE}")}


def _format(key: str, value: Decimal) -> str:
    """A quota value as upstream prints it: per-class storage in bytes like ``requests.storage``."""
    where = class_key(key)
    return quantity.format_for(where[1] if where else key, value)


def usage_of(resource: Resource, obj: Obj) -> Usage:
    """What one object of ``resource`` counts against quota."""
    if resource is PODS:
        return pod_usage(obj)
    if resource is PERSISTENTVOLUMECLAIMS:
        return claim_usage(obj)
    if resource is QUOTAS or not resource.namespaced:
        return {}
    return {key: Decimal(1) for key in count_keys(resource.group, resource.plural)}


def _value(quota_map: dict[str, Any], name: str) -> Decimal:
    for key, raw in quota_map.items():
        if canonical(key) == name:
            return quantity.parse(raw)
    return Decimal(0)


def _tracked(key: str) -> bool:
    return canonical(key) in COMPUTE or counted(key) is not None or is_storage(key)


def charge(quota: Obj, usage: Usage, name: str, resource: Resource = PODS) -> Obj:
    """``quota`` with ``usage`` added to status.used; raises 403 when a hard limit would be exceeded."""
    hard: dict[str, Any] = (quota.get("spec") or {}).get("hard") or {}
    used: dict[str, Any] = dict((quota.get("status") or {}).get("used") or {})
    compute = resource is PODS and bool(usage)
    relevant = [k for k in hard if canonical(k) in usage or (compute and canonical(k) in COMPUTE)]
    missing = [
        canonical(k).split(".")[-1] if k in ("cpu", "memory") else k
        for k in relevant
        if canonical(k) in COMPUTE and canonical(k) not in usage
    ]
    if missing:
        reason = f"failed quota: {quota['metadata']['name']}: must specify {','.join(sorted(missing))}"
        raise status.admission_forbidden(resource.plural, resource.group, name, reason)
    over = [
        k
        for k in relevant
        if _value(used, canonical(k)) + usage.get(canonical(k), Decimal(0)) > quantity.parse(hard[k])
    ]
    if over:
        keys = sorted(over)

        def show(values: Usage) -> str:
            return ",".join(f"{k}={_format(k, values.get(canonical(k), Decimal(0)))}" for k in keys)

        reason = (
            f"exceeded quota: {quota['metadata']['name']}, requested: {show(usage)}, "
            f"used: {show({canonical(k): _value(used, canonical(k)) for k in keys})}, "
            f"limited: {show({canonical(k): quantity.parse(hard[k]) for k in keys})}"
        )
        raise status.admission_forbidden(resource.plural, resource.group, name, reason)
    for key in hard:
        if _tracked(key):
            total = _value(used, canonical(key)) + usage.get(canonical(key), Decimal(0))
            used[key] = _format(key, total)
    quota.setdefault("status", {})["used"] = used
    quota["status"]["hard"] = dict(hard)
    return quota


def release(quota: Obj, usage: Usage) -> Obj:
    """``quota`` with ``usage`` taken back out of status.used (never below zero)."""
    hard: dict[str, Any] = (quota.get("spec") or {}).get("hard") or {}
    used: dict[str, Any] = dict((quota.get("status") or {}).get("used") or {})
    for key in hard:
        if _tracked(key):
            total = max(Decimal(0), _value(used, canonical(key)) - usage.get(canonical(key), Decimal(0)))
            used[key] = _format(key, total)
    quota.setdefault("status", {})["used"] = used
    return quota


def recompute(quota: Obj, usages: list[Usage]) -> Obj:
    """``quota`` with status.hard/used computed from scratch from the usage of every object."""
    hard: dict[str, Any] = (quota.get("spec") or {}).get("hard") or {}
    totals: Usage = {}
    for usage in usages:
        for key, value in usage.items():
            totals[key] = totals.get(key, Decimal(0)) + value
    used = {k: _format(k, totals.get(canonical(k), Decimal(0))) for k in hard if _tracked(k)}
    quota["status"] = {"hard": dict(hard), "used": used}
    return quota


def counted_resources(quota: Obj, resolve: Callable[[str, str], Resource | None]) -> list[Resource]:
    """The resources whose objects ``quota``'s keys count (pods for compute keys)."""
    found: dict[str, Resource] = {}
    for key in (quota.get("spec") or {}).get("hard") or {}:
        where = counted(key)
        resource = PODS if canonical(key) in COMPUTE else (resolve(*where) if where else None)
        if is_storage(key):
            resource = PERSISTENTVOLUMECLAIMS
        if resource is not None:
            found[resource.key("", "")] = resource
    return list(found.values())


class QuotaAdmission:
    """Charges and releases object usage against the ResourceQuotas stored in a namespace."""

    def __init__(self, store: Store, resolve: Callable[[str, str], Resource | None]) -> None:
        self.store = store
        self.resolve = resolve
        """(group, plural) -> the served Resource, for counting what exists when a quota is made."""

    async def _each(
        self,
        namespace: str,
        names: list[str] | None,
        act: Callable[[str, Obj | None], Awaitable[None]],
        known: list[Obj] | None = None,
    ) -> None:
        """``act(name, copy read a moment ago or None)`` for each named quota (all of the namespace's
        when ``names`` is None: ``known``, when given, is that list as just read)."""
        if names is None and known is None:
            known, _ = await self.store.list(QUOTAS, namespace, lambda _obj: True)
        read = {q["metadata"]["name"]: q for q in known or []}
        for name in list(read) if names is None else names:
            await act(name, read.get(name))

    async def admit(
        self, resource: Resource, namespace: str, obj: Obj, known: list[Obj] | None = None
    ) -> list[str]:
        """Charge every quota of ``namespace`` for ``obj``; the names charged (for rollback).

        ``known`` is the namespace's quotas as read for this create (the admission reads of
        :mod:`nestlab.api.admitreads`); each charge is a compare-and-swap on the copy it starts
        from, so a quota changed since is read again, never overwritten."""
        if resource is PERSISTENTVOLUMECLAIMS:
            await storageclasses.default_claim_class(self.store, obj)
        usage = usage_of(resource, obj)
        return await self._charge(resource, namespace, obj["metadata"]["name"], usage, known)

    async def admit_update(self, resource: Resource, namespace: str, new: Obj, old: Obj) -> list[str]:
        """Admit a claim whose storage request grows: only when its class allows expansion (upstream
        PersistentVolumeClaimResize, 403), charging the growth to every quota; the names charged
        (refund them with :meth:`refund_update` when the write fails). Other updates charge nothing."""
        if resource is not PERSISTENTVOLUMECLAIMS:
            return []
        growth = growth_of(new, old)
        if not growth:
            return []
        await storageclasses.check_resize(self.store, new)
        return await self._charge(resource, namespace, new["metadata"]["name"], growth)

    async def refund_update(self, namespace: str, new: Obj, old: Obj, names: list[str]) -> None:
        """Take back what :meth:`admit_update` charged for a write that did not happen."""
        await self._release(namespace, growth_of(new, old), names)

    async def _charge(
        self, resource: Resource, namespace: str, name: str, usage: Usage, known: list[Obj] | None = None
    ) -> list[str]:
        if not usage:
            return []
        charged: list[str] = []

        async def add_to(quota: str, read: Obj | None) -> None:
            async def add(current: Obj) -> Obj:
                return charge(current, usage, name, resource)

            await self.store.mutate(QUOTAS, namespace, quota, add, read)
            charged.append(quota)

        try:
            await self._each(namespace, None, add_to, known)
        except status.ApiError:
            await self._release(namespace, usage, charged)
            raise
        return charged

    async def refund(
        self,
        resource: Resource,
        namespace: str,
        obj: Obj,
        names: list[str] | None = None,
        *,
        known: list[Obj] | None = None,
    ) -> None:
        """Take ``obj``'s usage back out of the named quotas (all of the namespace's by default;
        ``known``: those quotas as just read, with the object's removal)."""
        await self._release(namespace, usage_of(resource, obj), names, known)

    async def _release(
        self, namespace: str, usage: Usage, names: list[str] | None, known: list[Obj] | None = None
    ) -> None:
        if not usage:
            return

        async def take_from(name: str, read: Obj | None) -> None:
            async def sub(current: Obj) -> Obj:
                return release(current, usage)

            try:
                await self.store.mutate(QUOTAS, namespace, name, sub, read)
            except status.ApiError as exc:
                if exc.code != 404:
                    raise

        await self._each(namespace, names, take_from, known)

    async def initial_status(self, namespace: str, quota: Obj) -> Obj:
        """A new quota's status, counting the objects that already exist."""
        usages: list[Usage] = []
        for resource in counted_resources(quota, self.resolve):
            objects, _ = await self.store.list(resource, namespace, lambda _obj: True)
            usages += [usage_of(resource, o) for o in objects]
        return recompute(quota, usages)
