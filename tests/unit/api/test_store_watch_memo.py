"""Many watches of one prefix decode each change once, and still see only what their selector matches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import store as store_module
from nestlab.api.etcd import KeyValue
from nestlab.api.resources import PODS
from nestlab.api.store import Store, WatchEvent
from tests.unit.api.fake_etcd import FakeEtcd

Obj = dict[str, Any]
WATCHERS = 5


def _on(node: str) -> Any:
    return lambda obj: (obj.get("spec") or {}).get("nodeName") == node


async def _take(events: Any, count: int) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async for event in events:
        out.append(event)
        if len(out) == count:
            break
    await events.aclose()
    return out


def test_watchers_share_one_decode_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> tuple[list[list[WatchEvent]], list[WatchEvent], int]:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        decodes = [0]
        real = Store._decode

        def counting(self: Store, resource: Any, kv: KeyValue, revision: int | None = None) -> Obj:
            decodes[0] += 1
            return real(self, resource, kv, revision)

        monkeypatch.setattr(Store, "_decode", counting)
        start = await store.etcd.revision()
        everything = [
            await store.open_watch(PODS, "ns", str(start), lambda _obj: True) for _ in range(WATCHERS)
        ]
        on_a = await store.open_watch(PODS, "ns", str(start), _on("a"))
        readers = [asyncio.ensure_future(_take(w, 3)) for w in everything]
        reader_a = asyncio.ensure_future(_take(on_a, 2))
        pod = {"metadata": {"name": "p"}, "spec": {"containers": []}}
        created = await store.create(PODS, "ns", pod)
        created["spec"]["nodeName"] = "a"
        bound = await store.replace(PODS, "ns", created, int(created["metadata"]["resourceVersion"]))
        await store.remove(PODS, "ns", bound)
        seen = await asyncio.wait_for(asyncio.gather(*readers), 10)
        seen_a = await asyncio.wait_for(reader_a, 10)
        return seen, seen_a, decodes[0]

    seen, seen_a, decodes = asyncio.run(scenario())
    for events in seen:
        assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
        assert events[1].object["spec"]["nodeName"] == "a"
        assert int(events[2].object["metadata"]["resourceVersion"]) > int(
            events[1].object["metadata"]["resourceVersion"]
        )
    # the selector still decides: ADDED when it starts matching, DELETED at the end
    assert [e.type for e in seen_a] == ["ADDED", "DELETED"]
    # three changes, each a new object plus (for the update and the delete) the previous one:
    # decoded once each, not once per watch
    assert decodes <= 5, decodes


def test_watches_with_one_predicate_match_each_change_once() -> None:
    """The translation of a change (ADDED, MODIFIED, DELETED or nothing) is shared by the watches
    whose predicate is the same object, as compile_selector gives for the same selector texts."""
    calls = [0]

    def on_a(obj: Obj) -> bool:
        calls[0] += 1
        return bool((obj.get("spec") or {}).get("nodeName") == "a")

    async def scenario() -> list[list[WatchEvent]]:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        start = await store.etcd.revision()
        watches = [await store.open_watch(PODS, "ns", str(start), on_a) for _ in range(WATCHERS)]
        readers = [asyncio.ensure_future(_take(w, 2)) for w in watches]
        created = await store.create(PODS, "ns", {"metadata": {"name": "p"}, "spec": {"containers": []}})
        created["spec"]["nodeName"] = "a"
        bound = await store.replace(PODS, "ns", created, int(created["metadata"]["resourceVersion"]))
        await store.remove(PODS, "ns", bound)
        return list(await asyncio.wait_for(asyncio.gather(*readers), 10))

    seen = asyncio.run(scenario())
    assert all([e.type for e in events] == ["ADDED", "DELETED"] for events in seen), seen
    # create: the new object; bind: old and new; delete: the old one. Once, not once per watch.
    assert calls[0] <= 4, calls[0]


def test_the_same_selector_texts_give_the_same_predicate() -> None:
    from nestlab.api.selectors import compile_selector

    assert compile_selector("app=web", "spec.nodeName=a", "pods") is compile_selector(
        "app=web", "spec.nodeName=a", "pods"
    )
    assert compile_selector("app=web", "", "pods") is not compile_selector("app=db", "", "pods")


def test_the_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_WATCH_MEMO", 3)
    store = Store(FakeEtcd())  # type: ignore[arg-type]
    for revision in range(1, 10):
        kv = KeyValue(f"/registry/pods/ns/p{revision}", b'{"metadata":{"name":"x"}}', revision, revision)
        store._watched(PODS, kv)
    assert len(store._seen) == 3
