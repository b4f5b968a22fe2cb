"""ResourceQuota admission: a pod is admitted only if every quota in its namespace has room.

Like Kubernetes, admission charges the quota *before* the pod is stored, by a compare-and-swap on
the quota's ``status.used``: two concurrent creates that would each fit alone but not together
race on the same quota revision, and the loser re-reads, re-checks and is refused. Charges are
released when a pod is finally removed (and when a create fails after charging).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nestlab.api import quantity, status
from nestlab.api.resources import PODS, QUOTAS
from nestlab.api.store import Obj, Store

# Quota names that count pod requests; "cpu" and "requests.cpu" are the same thing upstream.
_ALIASES = {"cpu": "requests.cpu", "memory": "requests.memory"}
_TRACKED = ("pods", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")


def pod_usage(pod: Obj) -> dict[str, Decimal]:
    """What one pod counts against quota (terminal pods count nothing)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return {}
    usage: dict[str, Decimal] = {"pods": Decimal(1)}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for name in ("cpu", "memory"):
                value = (resources.get(section) or {}).get(name)
                if value is not None:
                    key = f"{section}.{name}"
                    usage[key] = usage.get(key, Decimal(0)) + quantity.parse(value)
    return usage


def _canonical(name: str) -> str:
    return _ALIASES.get(name, name)


def _value(quota_map: dict[str, Any], name: str) -> Decimal:
    for key, raw in quota_map.items():
        if _canonical(key) == name:
            return quantity.parse(raw)
    return Decimal(0)


def charge(quota: Obj, usage: dict[str, Decimal], pod_name: str) -> Obj:
    """``quota`` with ``usage`` added to status.used; raises 403 when a hard limit would be exceeded."""
    hard: dict[str, Any] = (quota.get("spec") or {}).get("hard") or {}
    used: dict[str, Any] = dict((quota.get("status") or {}).get("used") or {})
    tracked = [key for key in hard if _canonical(key) in _TRACKED]
    missing = [
        _canonical(k).split(".")[-1] if k in _ALIASES else k
        for k in tracked
        if k != "pods" and _canonical(k) not in usage
    ]
    if missing:
        reason = f"failed quota: {quota['metadata']['name']}: must specify {','.join(sorted(missing))}"
        raise status.admission_forbidden("pods", "", pod_name, reason)
    over = [
        k
        for k in tracked
        if _value(used, _canonical(k)) + usage.get(_canonical(k), Decimal(0)) > quantity.parse(hard[k])
    ]
    if over:
        keys = sorted(over)

        def show(values: dict[str, Decimal]) -> str:
            return ",".join(
                f"{k}={quantity.format_for(k, values.get(_canonical(k), Decimal(0)))}" for k in keys
            )

        reason = (
            f"exceeded quota: {quota['metadata']['name']}, requested: {show(usage)}, "
            f"used: {show({_canonical(k): _value(used, _canonical(k)) for k in keys})}, "
            f"limited: {show({_canonical(k): quantity.parse(hard[k]) for k in keys})}"
        )
        raise status.admission_forbidden("pods", "", pod_name, reason)
    for key in tracked:
        total = _value(used, _canonical(key)) + usage.get(_canonical(key), Decimal(0))
        used[key] = quantity.format_for(key, total)
    quota.setdefault("status", {})["used"] = used
    quota["status"]["hard"] = dict(hard)
    return quota


def release(quota: Obj, usage: dict[str, Decimal]) -> Obj:
    """``quota`` with ``usage`` taken back out of status.used (never below zero)."""
    hard: dict[str, Any] = (quota.get("spec") or {}).get("hard") or {}
    used: dict[str, Any] = dict((quota.get("status") or {}).get("used") or {})
    for key in hard:
        if _canonical(key) in _TRACKED:
            total = max(Decimal(0), _value(used, _canonical(key)) - usage.get(_canonical(key), Decimal(0)))
            used[key] = quantity.format_for(key, total)
    quota.setdefault("status", {})["used"] = used
    return quota


def recompute(quota: Obj, pods: list[Obj]) -> Obj:
    """``quota`` with status.hard/used computed from scratch from the namespace's pods."""
    hard: dict[str, Any] = (quota.get("spec") or {}).get("hard") or {}
    totals: dict[str, Decimal] = {}
    for pod in pods:
        for key, value in pod_usage(pod).items():
            totals[key] = totals.get(key, Decimal(0)) + value
    used = {
        k: quantity.format_for(k, totals.get(_canonical(k), Decimal(0)))
        for k in hard
        if _canonical(k) in _TRACKED
    }
    quota["status"] = {"hard": dict(hard), "used": used}
    return quota


class QuotaAdmission:
    """Charges and releases pod usage against the ResourceQuotas stored in a namespace."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def admit(self, namespace: str, pod: Obj) -> list[str]:
        """Charge every quota of ``namespace`` for ``pod``; the names charged (for rollback)."""
        usage = pod_usage(pod)
        quotas, _ = await self.store.list(QUOTAS, namespace, lambda _obj: True)
        charged: list[str] = []
        try:
            for quota in quotas:
                name = quota["metadata"]["name"]

                async def add(current: Obj) -> Obj:
                    return charge(current, usage, pod["metadata"]["name"])

                await self.store.mutate(QUOTAS, namespace, name, add)
                charged.append(name)
        except status.ApiError:
            await self.refund(namespace, pod, charged)
            raise
        return charged

    async def refund(self, namespace: str, pod: Obj, names: list[str] | None = None) -> None:
        """Take ``pod``'s usage back out of the named quotas (all of the namespace's by default)."""
        usage = pod_usage(pod)
        if names is None:
            quotas, _ = await self.store.list(QUOTAS, namespace, lambda _obj: True)
            names = [q["metadata"]["name"] for q in quotas]
        for name in names:

            async def sub(current: Obj) -> Obj:
                return release(current, usage)

            try:
                await self.store.mutate(QUOTAS, namespace, name, sub)
            except status.ApiError as exc:
                if exc.code != 404:
                    raise

    async def initial_status(self, namespace: str, quota: Obj) -> Obj:
        """A new quota's status, counting the pods that already exist."""
        pods, _ = await self.store.list(PODS, namespace, lambda _obj: True)
        return recompute(quota, pods)
