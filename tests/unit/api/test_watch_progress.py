"""PROGRESS: how far a watch has seen etcd, for its bookmarks (etcd answers, the store, the stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from nestlab.api import etcdwire, reads
from nestlab.api.etcd import WatchEvent as EtcdEvent
from nestlab.api.etcd import _watch_batch
from nestlab.api.resources import CONFIGMAPS
from nestlab.api.store import Store, WatchEvent, progress
from tests.unit.api.fake_etcd import FakeEtcd

Obj = dict[str, Any]


def test_the_creation_answer_promises_nothing_and_a_notification_its_revision() -> None:
    created = etcdwire.new("WatchResponse", header=etcdwire.new("ResponseHeader", revision=90), created=True)
    notified = etcdwire.new("WatchResponse", header=etcdwire.new("ResponseHeader", revision=120))
    assert _watch_batch(created) == (0, [])
    assert _watch_batch(notified) == (120, [])


class NotifyingEtcd(FakeEtcd):
    """The fake etcd, whose watches also get a progress notification when asked."""

    def __init__(self) -> None:
        super().__init__()
        self.notify: asyncio.Queue[int] = asyncio.Queue()

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[tuple[int, list[EtcdEvent]]]:
        yield 0, []  # the creation answer
        merged: asyncio.Queue[tuple[int, list[EtcdEvent]]] = asyncio.Queue()

        async def changes() -> None:
            async for batch in super(NotifyingEtcd, self).watch(prefix, start_revision):
                merged.put_nowait(batch)

        async def notes() -> None:
            while True:
                merged.put_nowait((await self.notify.get(), []))

        tasks = [asyncio.ensure_future(changes()), asyncio.ensure_future(notes())]
        try:
            while True:
                yield await merged.get()
        finally:
            for task in tasks:
                task.cancel()


async def _next(events: Any) -> WatchEvent:
    return await asyncio.wait_for(anext(events), 5)


def test_the_store_reports_progress_only_when_asked_and_only_forward() -> None:
    async def scenario() -> None:
        etcd = NotifyingEtcd()
        store = Store(etcd)  # type: ignore[arg-type]
        start = await etcd.revision()
        named_a = lambda obj: obj["metadata"]["name"] == "a"  # noqa: E731
        asked = await store.open_watch(CONFIGMAPS, "quiet", str(start), named_a, progress=True)
        plain = await store.open_watch(CONFIGMAPS, "quiet", str(start), named_a)
        made = await store.create(CONFIGMAPS, "quiet", {"metadata": {"name": "b"}})  # filtered out
        first = await _next(asked)
        assert (first.type, first.object) == (
            "PROGRESS",
            progress(int(made["metadata"]["resourceVersion"])).object,
        )
        await store.create(CONFIGMAPS, "elsewhere", {"metadata": {"name": "a"}})
        etcd.notify.put_nowait(etcd.rev)  # etcd: sent everything up to here
        second = await _next(asked)
        assert second.type == "PROGRESS"
        assert second.object["metadata"]["resourceVersion"] == str(etcd.rev)
        created = await store.create(CONFIGMAPS, "quiet", {"metadata": {"name": "a"}})
        third = await _next(asked)
        assert (third.type, third.object["metadata"]["name"]) == ("ADDED", "a")
        only = await _next(plain)  # without progress: the event alone
        assert only.type == "ADDED"
        assert only.object["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        for events in (asked, plain):
            await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_progress_moves_the_bookmark_forward_and_sends_nothing() -> None:
    def line(kind: str, obj: Obj) -> bytes:
        return f"{kind} {obj['metadata']['resourceVersion']}\n".encode()

    event = WatchEvent("ADDED", {"metadata": {"resourceVersion": "10"}})
    data, last = reads._lines([event, progress(15)], line, "5")
    assert (data, last) == (b"ADDED 10\n", "15")
    data, last = reads._lines([progress(12)], line, "15")  # never backwards
    assert (data, last) == (b"", "15")
    data, last = reads._lines([progress(3)], line, "")  # a watch that started from a list
    assert (data, last) == (b"", "3")
