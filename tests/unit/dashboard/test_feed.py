"""The feed's watches over a scripted client: events applied, broken watches resumed, 401 ends it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nestlab.api import status
from nestlab.api.kinds.base import Resource
from nestlab.dashboard import feed as feed_module
from nestlab.dashboard.feed import Feed
from nestlab.dashboard.store import Store


class ScriptedClient:
    """Pods: listed at version 1, a watch that adds one pod and breaks (503), its resumption from
    version 2 answered 410 (compacted), a second list, then a 401."""

    def __init__(self) -> None:
        self.lists = 0
        self.watch_since: list[str] = []

    async def list(self, resource: Resource, namespace: str = "", **_: Any) -> dict[str, Any]:
        if resource.plural != "pods":
            raise status.ApiError(403, "Forbidden", f"cannot list {resource.plural}")
        self.lists += 1
        return {
            "items": [{"metadata": {"namespace": "a", "name": "first"}}],
            "metadata": {"resourceVersion": "1"},
        }

    async def watch(
        self, _: Resource, __: str = "", *, since: str = "", **___: Any
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.watch_since.append(since)
        if len(self.watch_since) == 1:
            yield "ADDED", {"metadata": {"namespace": "a", "name": "second", "resourceVersion": "2"}}
            raise status.ApiError(503, "ServiceUnavailable", "watch broke")
        if len(self.watch_since) == 2:
            raise status.ApiError(410, "Expired", "too old resource version: 2 (5)")
        raise status.ApiError(401, "Unauthorized", "token expired")

    async def close(self) -> None:
        pass


def test_a_broken_watch_resumes_a_410_lists_again_and_401_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed_module, "RETRY_S", 0.0)

    async def scenario() -> tuple[Feed, Store, ScriptedClient]:
        client, store = ScriptedClient(), Store()
        feed = Feed(client, store)  # type: ignore[arg-type]
        feed.start()
        for _ in range(500):
            if feed.expired:
                break
            await asyncio.sleep(0.01)
        await feed.close()
        return feed, store, client

    feed, store, client = asyncio.run(scenario())
    assert feed.expired
    assert client.lists == 2  # listed again only after the 410
    assert client.watch_since == ["1", "2", "1"]  # the 503 resumed from the last version seen
    assert [o["metadata"]["name"] for o in store.items("pods")] == ["first"]  # the relist replaced "second"
    assert set(store.refused) == {"nodes", "namespaces", "resourcequotas", "events", "leases", "pods"}
    assert store.refused["pods"] == "your login expired: log in again"
