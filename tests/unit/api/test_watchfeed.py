"""The shared etcd watch (:mod:`nestlab.api.watchfeed`): one etcd stream per prefix for every watch
that can join it, each subscriber seeing exactly the events from its own start revision on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nestlab.api import watchfeed
from nestlab.api.etcd import EtcdUnavailableError, WatchEvent
from nestlab.api.watchfeed import Feeds
from tests.unit.api.fake_etcd import FakeEtcd


class CountingEtcd(FakeEtcd):
    def __init__(self) -> None:
        super().__init__()
        self.watches: list[tuple[str, int]] = []
        self.fail: BaseException | None = None

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[tuple[int, list[WatchEvent]]]:
        self.watches.append((prefix, start_revision))
        async for batch in super().watch(prefix, start_revision):
            if self.fail is not None:
                raise self.fail
            yield batch


async def collect(stream: AsyncIterator[tuple[int, list[WatchEvent]]], count: int) -> list[str]:
    seen: list[str] = []
    async for _revision, events in stream:
        seen += [f"{e.kind} {e.kv.key}@{e.kv.mod_revision}" for e in events]
        if len(seen) >= count:
            break
    return seen


def test_watches_share_one_etcd_stream_and_each_starts_at_its_own_revision() -> None:
    async def scenario() -> tuple[list[str], list[str], list[str], list[tuple[str, int]]]:
        etcd = CountingEtcd()
        feeds = Feeds(etcd)
        await etcd.create("/p/a", b"1")  # revision 2
        first = asyncio.create_task(collect(feeds.watch("/p/", 2), 3))
        await asyncio.sleep(0.01)
        await etcd.create("/p/b", b"2")  # 3
        await asyncio.sleep(0.01)
        second = asyncio.create_task(collect(feeds.watch("/p/", 4), 1))  # joins: the feed is at 4
        await asyncio.sleep(0.01)
        await etcd.create("/p/c", b"3")  # 4
        await asyncio.sleep(0.01)
        behind = asyncio.create_task(collect(feeds.watch("/p/", 3), 2))  # further back: its own stream
        return await first, await second, await behind, etcd.watches

    first, second, behind, watches = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert first == ["PUT /p/a@2", "PUT /p/b@3", "PUT /p/c@4"]
    assert second == ["PUT /p/c@4"]
    assert behind == ["PUT /p/b@3", "PUT /p/c@4"]
    assert watches == [("/p/", 2), ("/p/", 3)]


def test_a_failed_etcd_watch_fails_every_subscriber_and_the_next_watch_starts_afresh() -> None:
    async def scenario() -> tuple[list[Any], list[tuple[str, int]]]:
        etcd = CountingEtcd()
        feeds = Feeds(etcd)
        one = asyncio.create_task(collect(feeds.watch("/p/", 2), 5))
        two = asyncio.create_task(collect(feeds.watch("/p/", 2), 5))
        await asyncio.sleep(0.01)
        etcd.fail = EtcdUnavailableError("etcd watch at x broke")
        await etcd.create("/p/a", b"1")
        results = list(await asyncio.gather(one, two, return_exceptions=True))
        etcd.fail = None
        again = asyncio.create_task(collect(feeds.watch("/p/", 2), 1))
        results.append(await again)
        return results, etcd.watches

    results, watches = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert [type(r) for r in results[:2]] == [EtcdUnavailableError, EtcdUnavailableError]
    assert results[0] is not results[1]
    assert results[2] == ["PUT /p/a@2"]
    assert watches == [("/p/", 2), ("/p/", 2)]


def test_the_feed_stops_with_its_last_subscriber() -> None:
    async def scenario() -> tuple[int, int]:
        etcd = CountingEtcd()
        feeds = Feeds(etcd)
        stream = feeds.watch("/p/", 2)
        task = asyncio.create_task(collect(stream, 1))
        await asyncio.sleep(0.01)
        running = len(feeds._feeds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
        return running, len(feeds._feeds)

    assert asyncio.run(scenario()) == (1, 0)


def test_a_subscriber_that_stops_reading_is_ended_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watchfeed, "BACKLOG", 3)

    async def scenario() -> tuple[list[str], list[str]]:
        etcd = CountingEtcd()
        feeds = Feeds(etcd)
        reader = asyncio.create_task(collect(feeds.watch("/p/", 2), 6))
        stalled = feeds.watch("/p/", 2)
        first = asyncio.ensure_future(anext(stalled))
        await asyncio.sleep(0.01)
        for index in range(6):
            await etcd.create(f"/p/{index}", b"x")
            await asyncio.sleep(0.01)  # the reader keeps up; the stalled one reads nothing more
        got = [e.kv.key for e in (await first)[1]]
        async for _revision, events in stalled:  # what it had queued, then the end
            got += [e.kv.key for e in events]
        return await reader, got

    read, stalled = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert len(read) == 6
    assert stalled == ["/p/0", "/p/1", "/p/2"]


def test_a_subscriber_with_a_window_takes_the_first_change_at_once_and_the_next_ones_together() -> None:
    """``every``: a quiet watch is not delayed; changes that follow within the window wait for its
    end and come in one take (the client watches' batching, :data:`watchfeed.CLIENT_EVERY_S`)."""
    every = 1.0  # far longer than the three writes below take, so the test does not race them

    async def scenario() -> tuple[list[tuple[float, str]], int, float]:
        etcd = CountingEtcd()
        feeds = Feeds(etcd)
        loop = asyncio.get_running_loop()
        taken: list[tuple[float, str]] = []

        async def consume() -> None:
            async for _revision, events in feeds.watch("/p/", 2, every):
                taken.extend((loop.time(), e.kv.key) for e in events)
                if len(taken) == 4:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        started = loop.time()
        await etcd.create("/p/a", b"1")
        while not taken:
            await asyncio.sleep(0.005)
        for key in ("/p/b", "/p/c", "/p/d"):
            await etcd.create(key, b"x")
            await asyncio.sleep(0.01)
        seen_meanwhile = len(taken)
        await task
        return taken, seen_meanwhile, started

    taken, seen_meanwhile, started = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert [key for _, key in taken] == ["/p/a", "/p/b", "/p/c", "/p/d"]
    assert taken[0][0] - started < every  # the first change was not held back
    assert seen_meanwhile == 1  # the next three waited for the window's end...
    assert taken[1][0] - taken[0][0] >= every * 0.99
    assert taken[3][0] - taken[1][0] < every / 10  # ...and came in one take
