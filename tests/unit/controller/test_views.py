"""The passes on informer caches: a cache one watch event behind the pass's own writes must not make
the scheduler bind twice or say twice, nor the taint manager evict twice; the manager runs no pass
before its term's informers have listed."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from nestlab.api.client import ApiClient
from nestlab.api.resources import NODES, PODS, Resource
from nestlab.controller.informer import Informer, InformerFactory
from nestlab.controller.leader import LeaderElector
from nestlab.controller.manager import run_while_leading
from nestlab.controller.scheduler import Scheduler
from nestlab.controller.taintmanager import TaintManager
from nestlab.controller.views import Cached, is_pending
from tests.unit.controller.test_manager import FakeElector
from tests.unit.controller.test_placement import node, pod
from tests.unit.controller.test_placement_scheduler import FakeApi

Obj = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


class StaleView:
    """What the API held when :meth:`refresh` was last called (an informer that has not caught up)."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.refresh()

    def refresh(self) -> None:
        self._pods = copy.deepcopy(list(self.api.pods.values()))
        self._nodes = copy.deepcopy(self.api.nodes)

    async def pods(self, node: str | None = None) -> list[Obj]:
        return [p for p in self._pods if node is None or p["spec"].get("nodeName") == node]

    async def pending(self) -> list[Obj]:
        return [p for p in self._pods if is_pending(p)]

    async def nodes(self) -> list[Obj]:
        return self._nodes


def uid(made: Obj, value: str) -> Obj:
    made["metadata"]["uid"] = value
    return made


def test_a_pod_bound_last_pass_is_neither_bound_again_nor_left_out_while_the_cache_lags() -> None:
    api = FakeApi([node("esx-01", pods="1"), node("esx-02", pods="1")], [uid(pod("a"), "u-a")])
    view = StaleView(api)
    scheduler = Scheduler(cast("ApiClient", api), view=view)

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        first = await scheduler.pass_once()
        second = await scheduler.pass_once()  # the cache still shows "a" pending
        api.pods["b"] = uid(pod("b"), "u-b")
        view._pods.append(copy.deepcopy(api.pods["b"]))  # "b" arrives, "a" still looks pending
        third = await scheduler.pass_once()
        await scheduler.flush()
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert [(p.pod, p.node) for p in first] == [("a", "esx-01")]
    assert second == []  # not bound twice
    # "a" is counted where it was bound: the one-pod node esx-01 is full for "b"
    assert [(p.pod, p.node) for p in third] == [("b", "esx-02")]
    view.refresh()  # the cache catches up: nothing is remembered any more
    assert asyncio.run(scheduler.pass_once()) == []
    assert scheduler._assumed == {}


def test_an_unschedulable_pod_is_said_so_once_while_the_cache_lags() -> None:
    api = FakeApi([node("esx-01", cpu="100m")], [uid(pod("big", cpu="4"), "u-big")])
    view = StaleView(api)
    scheduler = Scheduler(cast("ApiClient", api), view=view)

    async def scenario() -> None:
        for _ in range(3):  # the view never shows the condition written
            await scheduler.pass_once()
        await scheduler.flush()

    asyncio.run(scenario())
    assert api.patches == 1
    assert [e["reason"] for e in api.events] == ["FailedScheduling"]


class TaintApi:
    """Pods on a NoExecute-tainted node; records the writes the taint manager makes."""

    def __init__(self) -> None:
        tainted = node(
            "esx-01", taints=[{"key": "x", "effect": "NoExecute", "timeAdded": "2026-12-07T11:00:00Z"}]
        )
        self.nodes = [tainted]
        self.pods = {"a": uid(pod("a", node_name="esx-01"), "u-a")}
        self.deletes: list[str] = []
        self.events: list[str] = []

    async def request(self, method: str, path: str, body: Obj, content_type: str = "") -> Obj:
        return {}

    async def delete(self, resource: Resource, namespace: str, name: str, **_: Any) -> Obj:
        self.deletes.append(name)
        self.pods[name]["metadata"]["deletionTimestamp"] = "2026-12-07T12:00:00Z"
        return {}

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        self.events.append(obj["message"])
        return obj


def test_a_pod_evicted_last_pass_is_not_evicted_again_while_the_cache_lags() -> None:
    api = TaintApi()
    view = StaleView(cast(FakeApi, api))
    manager = TaintManager(cast("ApiClient", api), clock=lambda: NOW, view=view)

    async def passes() -> None:
        await manager.pass_once()
        await manager.pass_once()  # the cache still shows "a" not terminating

    asyncio.run(passes())
    assert api.deletes == ["a"]
    assert api.events == ["Marking for deletion Pod demo/a"]
    # a new pod of the same name (a StatefulSet's) on the same node is evicted in its turn
    api.pods["a"] = uid(pod("a", node_name="esx-01"), "u-a2")
    view.refresh()
    asyncio.run(manager.pass_once())
    assert api.deletes == ["a", "a"]


def test_the_cached_view_answers_from_the_informers() -> None:
    informers = InformerFactory(cast("ApiClient", None))
    view = Cached(informers)
    pods, nodes = informers.informer(PODS), informers.informer(NODES)
    nodes.apply("ADDED", node("esx-01"))
    pods.apply("ADDED", pod("waiting"))
    pods.apply("ADDED", pod("placed", node_name="esx-01"))
    done = pod("done")
    done["status"]["phase"] = "Failed"
    pods.apply("ADDED", done)

    async def read() -> tuple[list[str], list[str], list[str], list[str]]:
        names = [p["metadata"]["name"] for p in await view.pods()]
        pending = [p["metadata"]["name"] for p in await view.pending()]
        on_node = [p["metadata"]["name"] for p in await view.pods("esx-01")]
        listed = [n["metadata"]["name"] for n in await view.nodes()]
        return names, pending, on_node, listed

    assert asyncio.run(read()) == (["waiting", "placed", "done"], ["waiting"], ["placed"], ["esx-01"])


def test_passes_wait_for_their_terms_informers_and_are_built_per_term(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[int] = []
    built: list[InformerFactory] = []

    def factory(client: Any, informers: InformerFactory) -> Any:
        term = len(built)
        built.append(informers)
        informers.informer(PODS)  # the pass reads pods: the term's informers list them first

        async def one_pass() -> None:
            ran.append(term)

        return one_pass

    async def lead(script: list[bool]) -> None:
        stop = asyncio.Event()
        await run_while_leading(cast("LeaderElector", FakeElector(script, stop)), [factory], 0.01, stop)

    monkeypatch.setattr(InformerFactory, "start", lambda self: None)  # no API: nothing ever lists
    asyncio.run(lead([True, True, True, False, True, True]))
    assert ran == []  # no pass on caches that never listed
    assert len(built) == 2  # one set of passes per leadership term

    built.clear()
    unsynced = InformerFactory.informer

    def listed(self: InformerFactory, resource: Resource) -> Informer:
        made = unsynced(self, resource)
        made.synced.set()
        return made

    monkeypatch.setattr(InformerFactory, "informer", listed)
    asyncio.run(lead([True, True]))
    assert ran == [0, 0]
