"""Informer: list then watch, resume from the last resourceVersion, relist on 410 with a diff."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nestlab.api import status
from nestlab.api.client import _keepalive_socket
from nestlab.api.resources import PODS, Resource
from nestlab.controller import informer as informer_module
from nestlab.controller.informer import EventHandler, Informer, controller_ref, enqueue_controller, key_of
from nestlab.controller.workqueue import WorkQueue

Obj = dict[str, Any]


def pod(name: str, rv: str, **meta: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, **meta}}


class FakeClient:
    """Scripted lists and watches; records where each watch started."""

    def __init__(self, lists: list[Obj], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []
        self.done = asyncio.Event()

    async def list(self, resource: Resource, namespace: str = "") -> Obj:
        return self.lists.pop(0)

    async def watch(
        self, resource: Resource, namespace: str = "", **kw: Any
    ) -> AsyncIterator[tuple[str, Obj]]:
        self.watched_from.append(kw["since"])
        assert kw["bookmarks"] is True
        assert kw["idle"] is not None
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()
        for item in self.watches.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield item


def run_until_done(client: FakeClient, informer: Informer) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(informer.run())
        await asyncio.wait_for(client.done.wait(), 10)
        task.cancel()

    asyncio.run(scenario())


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer_module, "BACKOFF_MAX", 0.01)


def recorder(events: list[tuple[str, str]]) -> EventHandler:
    return EventHandler(
        on_add=lambda o: events.append(("add", key_of(o))),
        on_update=lambda _o, n: events.append(("update", key_of(n))),
        on_delete=lambda o: events.append(("delete", key_of(o))),
    )


def test_list_then_watch_resumes_from_the_last_version_after_a_broken_watch() -> None:
    client = FakeClient(
        [{"metadata": {"resourceVersion": "10"}, "items": [pod("a", "5")]}],
        [
            [
                ("ADDED", pod("b", "11")),
                ("MODIFIED", pod("a", "12")),
                status.unavailable("watch went silent"),
            ],
            [("BOOKMARK", {"metadata": {"resourceVersion": "20"}})],
            [("DELETED", pod("b", "21"))],
        ],
    )
    events: list[tuple[str, str]] = []
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    inf.add_handler(recorder(events))
    run_until_done(client, inf)
    assert client.watched_from == ["10", "12", "20", "21"]  # never listed again: resumed each time
    assert events == [("add", "ns/a"), ("add", "ns/b"), ("update", "ns/a"), ("delete", "ns/b")]
    assert [key_of(o) for o in inf.list("ns")] == ["ns/a"]
    assert inf.synced.is_set()


def test_gone_relists_and_replays_only_the_difference() -> None:
    client = FakeClient(
        [
            {"metadata": {"resourceVersion": "10"}, "items": [pod("a", "5"), pod("b", "6")]},
            {"metadata": {"resourceVersion": "90"}, "items": [pod("a", "5"), pod("c", "80"), pod("b", "70")]},
        ],
        [[status.gone("too old resource version: 10")]],
    )
    client.lists[1]["items"].pop(2)  # b was deleted while we were blind
    events: list[tuple[str, str]] = []
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    inf.add_handler(recorder(events))
    run_until_done(client, inf)
    assert events[2:] == [("add", "ns/c"), ("delete", "ns/b")]  # a unchanged: no event
    assert client.watched_from == ["10", "90"]
    assert inf.get("ns/b") is None


def test_a_late_handler_gets_the_cache_replayed() -> None:
    inf = Informer(None, PODS)  # type: ignore[arg-type]
    inf.apply("ADDED", pod("a", "1"))
    events: list[tuple[str, str]] = []
    inf.add_handler(recorder(events))
    assert events == [("add", "ns/a")]


def test_a_failing_handler_does_not_stop_the_others() -> None:
    inf = Informer(None, PODS)  # type: ignore[arg-type]
    events: list[tuple[str, str]] = []

    def boom(obj: Obj) -> None:
        raise RuntimeError("bug")

    inf.add_handler(EventHandler(on_add=boom))
    inf.add_handler(recorder(events))
    inf.apply("ADDED", pod("a", "1"))
    assert events == [("add", "ns/a")]


def test_enqueue_controller_wakes_old_and_new_owner() -> None:
    async def scenario() -> list[str | None]:
        queue = WorkQueue("t")
        handler = enqueue_controller(queue, "ReplicaSet")
        owned = pod("p", "1", ownerReferences=[{"kind": "ReplicaSet", "name": "web", "controller": True}])
        moved = pod("p", "2", ownerReferences=[{"kind": "ReplicaSet", "name": "api", "controller": True}])
        other = pod("q", "3", ownerReferences=[{"kind": "Job", "name": "j", "controller": True}])
        assert handler.on_update is not None
        assert handler.on_add is not None
        handler.on_update(owned, moved)
        handler.on_add(other)
        return sorted([await queue.get() for _ in range(len(queue))], key=str)

    assert asyncio.run(scenario()) == ["ns/api", "ns/web"]


def test_controller_ref_ignores_non_controller_owners() -> None:
    obj = pod(
        "p", "1", ownerReferences=[{"kind": "A", "name": "x"}, {"kind": "B", "name": "y", "controller": True}]
    )
    assert controller_ref(obj) == {"kind": "B", "name": "y", "controller": True}
    assert controller_ref(pod("p", "1")) is None


def test_a_malformed_event_does_not_end_the_informer() -> None:
    client = FakeClient(
        [{"metadata": {"resourceVersion": "10"}, "items": []}],
        [[ValueError("bad json")], [("ADDED", pod("a", "11"))]],
    )
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    run_until_done(client, inf)
    assert inf.get("ns/a") is not None
    assert client.watched_from == ["10", "10", "11"]


def test_client_sockets_probe_dead_peers() -> None:
    sock = _keepalive_socket((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 1)))
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
    finally:
        sock.close()
