"""A second delete with a shorter grace period wins (upstream BeforeDelete); a longer one does not."""

from __future__ import annotations

import asyncio
from datetime import datetime

from nestlab.api import graceful
from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd
from tests.unit.api.test_registry import pod


def terminating(period: int) -> dict[str, object]:
    return {"deletionTimestamp": "2026-12-06T03:00:30Z", "deletionGracePeriodSeconds": period}


def test_shorter_period_moves_the_deadline_earlier() -> None:
    meta = terminating(30)
    assert graceful.shorten(meta, 1)
    assert meta == {"deletionTimestamp": "2026-12-06T03:00:01Z", "deletionGracePeriodSeconds": 1}


def test_longer_equal_or_no_period_changes_nothing() -> None:
    for grace in (30, 60, None):
        meta = terminating(30)
        assert not graceful.shorten(meta, grace)
        assert meta == terminating(30)
    assert not graceful.shorten({}, 1)  # not being deleted
    assert not graceful.shorten(terminating(0), 0)


def test_registry_second_delete_shortens_a_terminating_pod() -> None:
    async def scenario() -> None:
        registry = Registry(Store(FakeEtcd()))  # type: ignore[arg-type]
        await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
        await registry.create(r.PODS, "demo", pod("web"))
        await registry.bind("demo", "web", {"target": {"kind": "Node", "name": "esx-01"}})
        first = await registry.delete(r.PODS, "demo", "web", {})
        assert first["metadata"]["deletionGracePeriodSeconds"] == 30
        longer = await registry.delete(r.PODS, "demo", "web", {"gracePeriodSeconds": 60})
        assert longer["metadata"]["deletionGracePeriodSeconds"] == 30
        await registry.delete(r.PODS, "demo", "web", {"gracePeriodSeconds": 1})
        stored = (await registry.get(r.PODS, "demo", "web"))["metadata"]
        assert stored["deletionGracePeriodSeconds"] == 1

        def at(stamp: str) -> datetime:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")

        moved = at(first["metadata"]["deletionTimestamp"]) - at(stored["deletionTimestamp"])
        assert moved.total_seconds() == 29
        await registry.close()

    asyncio.run(scenario())
