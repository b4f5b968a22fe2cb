"""Updates start from the newest copy a server has seen, and a stale copy never decides an answer.

Two registries over one fake etcd play two API servers: each writes, reads and watches on its own,
so one's copy of an object goes stale when the other writes it. The fake counts etcd reads of one
key, which is what starting from a copy saves.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

MERGE = "application/merge-patch+json"


class CountingEtcd(FakeEtcd):
    """The fake etcd, counting single-key reads (``get``: what an update without a copy costs)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    async def get(self, key: str) -> Any:
        self.gets += 1
        return await super().get(key)


def pod(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"tier": "one"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }


async def two_servers() -> tuple[CountingEtcd, Registry, Registry]:
    etcd = CountingEtcd()
    first, second = Registry(Store(etcd)), Registry(Store(etcd))  # type: ignore[arg-type]
    await first.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
    return etcd, first, second


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_an_update_after_the_servers_own_write_reads_nothing() -> None:
    async def scenario() -> None:
        etcd, api, _ = await two_servers()
        await api.create(r.PODS, "demo", pod())
        etcd.gets = 0
        await api.bind("demo", "web", {"target": {"name": "esx-01"}})
        patched = await api.patch(r.PODS, "demo", "web", MERGE, {"metadata": {"labels": {"tier": "two"}}})
        assert etcd.gets == 0
        stored = await api.get(r.PODS, "demo", "web")
        assert stored["spec"]["nodeName"] == "esx-01"
        assert stored["metadata"]["labels"] == {"tier": "two"}
        assert stored["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]

    run(scenario())


def test_a_stale_copy_costs_a_retry_never_a_lost_update() -> None:
    async def scenario() -> None:
        _, first, second = await two_servers()
        await first.create(r.PODS, "demo", pod())
        await second.get(r.PODS, "demo", "web")  # the second server's copy, soon stale
        await first.patch(r.PODS, "demo", "web", MERGE, {"metadata": {"labels": {"by": "first"}}})
        await second.bind("demo", "web", {"target": {"name": "esx-02"}})
        stored = await first.get(r.PODS, "demo", "web")
        assert stored["metadata"]["labels"] == {"tier": "one", "by": "first"}
        assert stored["spec"]["nodeName"] == "esx-02"

    run(scenario())


def test_a_refusal_on_a_stale_copy_is_decided_again_on_a_read() -> None:
    async def scenario() -> None:
        _, first, second = await two_servers()
        await second.create(r.PODS, "demo", pod())
        await second.bind("demo", "web", {"target": {"name": "esx-01"}})  # second's copy: bound
        old = await first.get(r.PODS, "demo", "web")
        await first.delete(r.PODS, "demo", "web", {"gracePeriodSeconds": 0})
        assert old["spec"]["nodeName"] == "esx-01"
        await first.create(r.PODS, "demo", pod())  # the same name, not bound
        await second.bind("demo", "web", {"target": {"name": "esx-03"}})  # not "already assigned"
        assert (await second.get(r.PODS, "demo", "web"))["spec"]["nodeName"] == "esx-03"
        with pytest.raises(ApiError) as again:  # a real refusal is still one
            await first.bind("demo", "web", {"target": {"name": "esx-02"}})
        assert again.value.code == 409
        assert "already assigned" in again.value.message

    run(scenario())


def test_no_change_on_a_stale_copy_is_decided_again_on_a_read() -> None:
    async def scenario() -> None:
        _, first, second = await two_servers()
        await first.create(r.PODS, "demo", pod())
        await second.get(r.PODS, "demo", "web")  # second's copy says tier=one
        moved = await first.patch(r.PODS, "demo", "web", MERGE, {"metadata": {"labels": {"tier": "two"}}})
        back = await second.patch(r.PODS, "demo", "web", MERGE, {"metadata": {"labels": {"tier": "one"}}})
        assert back["metadata"]["labels"] == {"tier": "one"}
        assert int(back["metadata"]["resourceVersion"]) > int(moved["metadata"]["resourceVersion"])
        assert (await first.get(r.PODS, "demo", "web"))["metadata"]["labels"] == {"tier": "one"}

    run(scenario())


def test_a_pinned_update_is_judged_on_the_object_in_etcd() -> None:
    async def scenario() -> None:
        _, first, second = await two_servers()
        await first.create(r.PODS, "demo", pod())
        await second.get(r.PODS, "demo", "web")
        current = await first.patch(r.PODS, "demo", "web", MERGE, {"metadata": {"labels": {"tier": "two"}}})
        # the client holds the current version: second's stale copy must not refuse it
        body = {**current, "metadata": {**current["metadata"], "labels": {"tier": "three"}}}
        updated = await second.update(r.PODS, "demo", "web", body)
        assert updated["metadata"]["labels"] == {"tier": "three"}
        with pytest.raises(ApiError) as stale:  # and an old version is still refused
            await first.update(r.PODS, "demo", "web", body)
        assert stale.value.code == 409

    run(scenario())


def test_a_watch_keeps_another_servers_copies_current() -> None:
    async def scenario() -> None:
        etcd, first, second = await two_servers()
        start = await etcd.revision()
        events = await second.store.open_watch(r.PODS, "demo", str(start), lambda _o: True)
        created = await first.create(r.PODS, "demo", pod())
        seen = await asyncio.wait_for(anext(aiter(events)), 10)
        assert seen.object["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        etcd.gets = 0
        await second.bind("demo", "web", {"target": {"name": "esx-01"}})
        assert etcd.gets == 0  # the watched copy was current: no read
        await events.aclose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_deleted_object_is_not_found_whatever_the_copy_said() -> None:
    async def scenario() -> None:
        _, first, second = await two_servers()
        await first.create(r.PODS, "demo", pod())
        await second.get(r.PODS, "demo", "web")
        await first.delete(r.PODS, "demo", "web", {"gracePeriodSeconds": 0})
        with pytest.raises(ApiError) as gone:
            await second.bind("demo", "web", {"target": {"name": "esx-01"}})
        assert gone.value.code == 404

    run(scenario())
