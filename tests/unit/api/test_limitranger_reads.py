"""A pod create reads the namespace's LimitRanges once, with its other admission reads (one etcd round
trip, :mod:`nestlab.api.admitreads`): both hooks use that list; called on their own, the validating
hook uses what the mutating hook of the same object listed, and a call for another object lists again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import limitranger
from nestlab.api import resources as r
from nestlab.api.status import ApiError
from nestlab.api.store import Snapshot, Store, Wanted
from tests.unit.api.test_limitranger import container, pod, ranged, registry_with

Obj = dict[str, Any]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    listed: list[str] = []
    real = Store.list

    async def counted(self: Store, resource: Any, namespace: str, predicate: Any) -> Any:
        if resource is r.LIMITRANGES:
            listed.append(namespace)
        return await real(self, resource, namespace, predicate)

    monkeypatch.setattr(Store, "list", counted)
    return listed


def _reads_together(monkeypatch: pytest.MonkeyPatch) -> list[list[Wanted]]:
    batches: list[list[Wanted]] = []
    real = Store.read_together

    async def counted(self: Store, wanted: Any) -> Snapshot:
        batches.append(list(wanted))
        return await real(self, wanted)

    monkeypatch.setattr(Store, "read_together", counted)
    return batches


def test_a_pod_create_lists_limitranges_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> tuple[Obj, list[str], list[list[Wanted]]]:
        registry = await registry_with(ranged({"type": "Container", "defaultRequest": {"cpu": "100m"}}))
        listed = _counting(monkeypatch)
        batches = _reads_together(monkeypatch)
        created = await registry.create(r.PODS, "demo", pod())
        return created, listed, batches

    created, listed, batches = asyncio.run(scenario())
    assert listed == []  # no list of its own: the one read of the create held them
    assert len(batches) == 1
    assert batches[0].count(Wanted(r.LIMITRANGES, "demo")) == 2  # both hooks asked; read once
    assert {w.resource for w in batches[0]} == {r.NAMESPACES, r.QUOTAS, r.LIMITRANGES}
    assert created["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m"}


def test_the_validating_hook_still_refuses_with_what_was_listed() -> None:
    async def scenario() -> None:
        registry = await registry_with(ranged({"type": "Container", "max": {"cpu": "1"}}))
        await registry.create(r.PODS, "demo", pod(container(limits={"cpu": "2"})))

    with pytest.raises(ApiError) as caught:
        asyncio.run(scenario())
    assert caught.value.code == 403
    assert "maximum cpu usage per Container is 1" in caught.value.message


def test_another_object_is_validated_against_a_fresh_list(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> list[str]:
        registry = await registry_with()
        mutate, validate = limitranger.hooks(registry.store)
        listed = _counting(monkeypatch)
        first, second = pod(name="a"), pod(name="b")
        await mutate(r.PODS, "demo", first, None)
        await validate(r.PODS, "demo", second, None)  # not the object the mutating hook saw
        await validate(r.PODS, "demo", first, None)  # the memo was used up by the call before
        return listed

    assert asyncio.run(scenario()) == ["demo", "demo", "demo"]
