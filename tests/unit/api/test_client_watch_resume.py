"""The host agent's pod watch: every end of a watch (its timeoutSeconds, a broken or silent
connection after the VIP moved, 410 Gone) lists the node's pods again, which repairs whatever the
watch missed, and watches from the list's version. Here a scripted client plays the API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nestlab.agent import main
from nestlab.api import status
from nestlab.api.client import WATCH_IDLE_S

Obj = dict[str, Any]


def _pod(name: str, version: int) -> Obj:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": str(version)}}


def _bookmark(version: int) -> Obj:
    return {"metadata": {"resourceVersion": str(version)}}


class ScriptedApi:
    """Lists and watches as scripted; each watch is a list of events ending with an error or not."""

    def __init__(self, lists: list[Obj], watches: list[tuple[list[tuple[str, Obj]], status.ApiError | None]]):
        self.lists = lists
        self.watches = watches
        self.listed = 0
        self.since: list[str] = []
        self.timeouts: list[int] = []
        self.done = asyncio.Event()

    async def list(self, _resource: Any, namespace: str = "", *, labels: str = "", fields: str = "") -> Obj:
        assert fields == "spec.nodeName=esx-01"
        self.listed += 1
        return self.lists.pop(0)

    async def watch(
        self, _resource: Any, namespace: str = "", **options: Any
    ) -> AsyncIterator[tuple[str, Obj]]:
        self.since.append(options["since"])
        self.timeouts.append(options["timeout"])
        assert options["bookmarks"] is True
        assert options["idle"] == WATCH_IDLE_S
        if not self.watches:
            self.done.set()
            await asyncio.Event().wait()  # the last watch stays open until the test stops the loop
        events, error = self.watches.pop(0)
        for event in events:
            yield event
        if error is not None:
            raise error


class RecordingAgent:
    """What the watch loop tells the agent, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.records: dict[str, Obj] = {}
        self.tasks: dict[str, Obj] = {}

    async def adopt(self, items: dict[str, Obj]) -> None:
        self.calls.append(f"adopt {sorted(items)}")
        self.records.update(items)

    async def sync(self, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        self.calls.append(f"{kind} {meta.get('name', meta['uid'])} {meta.get('resourceVersion', '')}".strip())
        if kind == "DELETED":
            self.records.pop(meta["uid"], None)
        else:
            self.records[meta["uid"]] = obj


def _run(api: ScriptedApi, agent: RecordingAgent) -> None:
    async def scenario() -> None:
        loop = asyncio.create_task(main.watch_loop(agent, api, "esx-01"))  # type: ignore[arg-type]
        done = asyncio.create_task(api.done.wait())
        finished, _ = await asyncio.wait({loop, done}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        loop.cancel()
        done.cancel()
        await asyncio.gather(loop, done, return_exceptions=True)
        assert done in finished, "the watch loop stopped before the scripted watches ran out"

    asyncio.run(scenario())


@pytest.fixture(autouse=True)
def no_resume_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "RESUME_DELAY_S", 0.0)


def test_every_end_of_the_watch_lists_again_and_the_list_repairs_what_it_missed() -> None:
    api = ScriptedApi(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [_pod("a", 9)]},
            # b was made while the watch was silent: the watch never said so, the list does
            {"metadata": {"resourceVersion": "20"}, "items": [_pod("a", 11), _pod("b", 16)]},
            {"metadata": {"resourceVersion": "30"}, "items": [_pod("c", 21)]},
        ],
        watches=[
            ([("MODIFIED", _pod("a", 11)), ("BOOKMARK", _bookmark(15))], status.unavailable("went silent")),
            ([("ADDED", _pod("c", 21))], None),  # timeoutSeconds reached: a clean end
        ],
    )
    agent = RecordingAgent()
    _run(api, agent)
    assert api.listed == 3
    assert api.since == ["10", "20", "30"]
    assert agent.calls == [
        "adopt ['uid-a']", "ADDED a 9",
        "MODIFIED a 11",
        "ADDED a 11", "ADDED b 16",
        "ADDED c 21",
        "DELETED uid-a", "DELETED uid-b", "ADDED c 21",
    ]  # fmt: skip


def test_410_gone_lists_again_and_deletes_what_vanished_meanwhile() -> None:
    api = ScriptedApi(
        lists=[
            {"metadata": {"resourceVersion": "10"}, "items": [_pod("a", 9)]},
            {"metadata": {"resourceVersion": "40"}, "items": [_pod("b", 30)]},
        ],
        watches=[([], status.ApiError(410, "Expired", "too old resource version: 10 (35)"))],
    )
    agent = RecordingAgent()
    _run(api, agent)
    assert api.listed == 2
    assert api.since == ["10", "40"]
    assert agent.calls == ["adopt ['uid-a']", "ADDED a 9", "DELETED uid-a", "ADDED b 30"]


def test_a_failed_first_list_is_retried_and_each_watch_asks_for_a_spread_timeout() -> None:
    class FlakyList(ScriptedApi):
        async def list(
            self, _resource: Any, namespace: str = "", *, labels: str = "", fields: str = ""
        ) -> Obj:
            if self.listed == 0:
                self.listed += 1
                raise status.unavailable("API server unreachable")
            return await super().list(_resource, namespace, labels=labels, fields=fields)

    api = FlakyList(
        lists=[{"metadata": {"resourceVersion": "10"}, "items": []}] * 4,
        watches=[([], None), ([], None), ([], None)],
    )
    _run(api, RecordingAgent())
    assert api.listed == 5  # the failed one, then one before each of the four watches
    assert api.since == ["10"] * 4
    assert all(main.WATCH_TIMEOUT_S <= t < 2 * main.WATCH_TIMEOUT_S for t in api.timeouts)
