"""A delete racing another writer is retried on the latest copy (upstream's storage retries it),
unless the client pinned a resourceVersion: then the 409 is the answer."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.test_registry import fresh, pod, run

Obj = dict[str, Any]


def _racing_status_write(monkeypatch: pytest.MonkeyPatch, registry: Registry, times: int) -> list[int]:
    """Before each of the first ``times`` removals, another writer reports the pod's status."""
    raced: list[int] = []
    real = Store.remove_listing

    async def remove(
        self: Store, resource: Any, namespace: str, obj: Obj, listed: Any
    ) -> tuple[Obj, list[Obj]]:
        if len(raced) < times:
            raced.append(1)
            body = {"status": {"phase": "Running", "message": f"report {len(raced)}"}}
            await registry.patch(
                r.PODS,
                namespace,
                obj["metadata"]["name"],
                "application/merge-patch+json",
                body,
                subresource="status",
            )
        return await real(self, resource, namespace, obj, listed)

    monkeypatch.setattr(Store, "remove_listing", remove)  # a pod is removed with its quotas listed
    return raced


def test_a_delete_that_loses_a_race_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> tuple[list[int], int]:
        registry = await fresh()
        await registry.create(r.PODS, "demo", pod("web"))
        raced = _racing_status_write(monkeypatch, registry, times=2)
        await registry.delete(r.PODS, "demo", "web", {"gracePeriodSeconds": 0})
        try:
            await registry.get(r.PODS, "demo", "web")
        except ApiError as exc:
            return raced, exc.code
        return raced, 200

    raced, code = run(scenario())
    assert len(raced) == 2  # two lost races, then the delete went through
    assert code == 404


def test_a_pinned_resource_version_gets_the_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        registry = await fresh()
        created = await registry.create(r.PODS, "demo", pod("web"))
        _racing_status_write(monkeypatch, registry, times=1)
        options = {
            "gracePeriodSeconds": 0,
            "preconditions": {"resourceVersion": created["metadata"]["resourceVersion"]},
        }
        await registry.delete(r.PODS, "demo", "web", options)

    with pytest.raises(ApiError) as caught:
        run(scenario())
    assert caught.value.code == 409
    assert "has been modified" in caught.value.message
