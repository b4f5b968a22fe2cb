"""The scheduler pass over a fake API: concurrent bounded binds, same-pass spreading, refusals."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, cast

import pytest

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import EVENTS, NAMESPACES, NODES, PODS, Resource
from nestlab.controller import placement
from nestlab.controller.scheduler import Scheduler
from tests.unit.controller.test_placement import node, pod

Obj = dict[str, Any]
BIND_YIELDS = 3  # a request yields to the loop a few times (send, wait, read): binds overlap decisions


class FakeApi:
    """Pods, nodes and events in memory; binds yield to the loop so they overlap like requests."""

    def __init__(self, nodes: list[Obj], pods: list[Obj]) -> None:
        self.nodes = nodes
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.events: list[Obj] = []
        self.patches = 0
        self.in_flight = self.most_in_flight = 0
        self.refuse: dict[str, status.ApiError] = {}
        self.namespace_lists = 0

    async def list(
        self, resource: Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj:
        if resource is NODES:
            return {"items": self.nodes}
        if resource is NAMESPACES:
            self.namespace_lists += 1
            return {"items": [{"metadata": {"name": "demo", "labels": {"team": "a"}}}]}
        items = list(self.pods.values())
        if fields:
            items = [p for p in items if not p["spec"].get("nodeName")]
        return {"items": items}

    async def bind(self, namespace: str, name: str, node_name: str) -> Obj:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in range(BIND_YIELDS):
                await asyncio.sleep(0)
            if name in self.refuse:
                raise self.refuse[name]
            self.pods[name]["spec"]["nodeName"] = node_name
            return {}
        finally:
            self.in_flight -= 1

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        assert resource is PODS
        assert subresource == "status"
        self.patches += 1
        self.pods[name]["status"]["conditions"] = patch["status"]["conditions"]
        return self.pods[name]

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        assert resource is EVENTS
        self.events.append(obj)
        return obj


def replica(name: str) -> Obj:
    made = pod(name, cpu=None, memory=None, labels={"app": "web"})
    made["metadata"]["ownerReferences"] = [
        {"uid": "rs-1", "controller": True, "kind": "ReplicaSet", "name": "web"}
    ]
    made["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:{name[-1]}0Z"
    return made


def run(api: FakeApi, scheduler: Scheduler) -> list[Any]:
    async def go() -> list[Any]:
        outcomes = await scheduler.pass_once()
        await scheduler.flush()
        return outcomes

    return asyncio.run(go())


def scheduler_for(api: FakeApi, in_flight: int = 2) -> Scheduler:
    return Scheduler(cast("ApiClient", api), max_in_flight=in_flight)


def test_one_pass_spreads_replicas_with_bounded_concurrent_binds() -> None:
    api = FakeApi([node("esx-01"), node("esx-02"), node("esx-03")], [replica(f"web-{i}") for i in range(6)])
    outcomes = run(api, scheduler_for(api, in_flight=2))
    assert Counter(o.node for o in outcomes) == {"esx-01": 2, "esx-02": 2, "esx-03": 2}
    assert api.most_in_flight == 2
    messages = sorted(e["message"] for e in api.events)
    assert messages[0] == "Successfully assigned demo/web-0 to esx-01"
    assert {e["reason"] for e in api.events} == {"Scheduled"}
    assert len(messages) == 6


def test_lost_binding_is_dropped_and_others_proceed() -> None:
    api = FakeApi([node("esx-01"), node("esx-02")], [replica("web-0"), replica("web-1")])
    api.refuse["web-0"] = status.ApiError(409, "Conflict", 'pod "web-0" is already assigned to node "esx-09"')
    outcomes = {o.pod: o for o in run(api, scheduler_for(api))}
    assert outcomes["web-0"].node is None
    assert "already assigned" in outcomes["web-0"].message
    assert outcomes["web-1"].node == "esx-02"  # decided while web-0 was assumed on esx-01
    assert [e["involvedObject"]["name"] for e in api.events] == ["web-1"]


def test_unavailable_api_requeues_only_that_pod_and_the_next_pass_binds_it() -> None:
    api = FakeApi([node("esx-01")], [replica("web-0"), replica("web-1")])
    api.refuse["web-0"] = status.unavailable("etcd is away")
    scheduler = scheduler_for(api)
    outcomes = {o.pod: o for o in run(api, scheduler)}
    assert outcomes["web-0"].node is None
    assert outcomes["web-0"].message == "Binding rejected: etcd is away"
    assert api.pods["web-1"]["spec"]["nodeName"] == "esx-01"
    del api.refuse["web-0"]
    assert [(o.pod, o.node) for o in run(api, scheduler)] == [("web-0", "esx-01")]


def test_a_refused_binding_still_fails_the_pass() -> None:
    api = FakeApi([node("esx-01")], [replica("web-0")])
    api.refuse["web-0"] = status.ApiError(403, "Forbidden", "scheduler may not bind")
    with pytest.raises(status.ApiError, match="may not bind"):
        run(api, scheduler_for(api))


def test_unschedulable_pod_gets_condition_and_event_once() -> None:
    huge = pod("huge", cpu="8")
    api = FakeApi([node("esx-01")], [huge])
    scheduler = scheduler_for(api)
    assert [o.node for o in run(api, scheduler)] == [None]
    condition = api.pods["huge"]["status"]["conditions"][0]
    message = (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert condition["message"] == message
    assert [(e["type"], e["reason"], e["message"]) for e in api.events] == [
        ("Warning", "FailedScheduling", message)
    ]
    run(api, scheduler)  # nothing changed: no second write, no second event
    assert api.patches == 1
    assert len(api.events) == 1


def test_nothing_pending_lists_nothing_else() -> None:
    api = FakeApi([node("esx-01")], [])
    assert run(api, scheduler_for(api)) == []


def test_namespace_labels_are_listed_only_when_a_term_selects_by_them() -> None:
    by_team = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    by_team["namespaceSelector"] = {"matchLabels": {"team": "a"}}
    rule = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [by_team]}}
    web = pod("web", node_name="esx-01", labels={"app": "web"})
    heavy = pod("heavy", cpu="1", node_name="esx-02", namespace="x")  # without the rule, esx-01 would win
    api = FakeApi(
        [node("esx-01"), node("esx-02")], [web, heavy, pod("new", namespace="other", affinity=rule)]
    )
    assert [o.node for o in run(api, scheduler_for(api))] == ["esx-02"]
    assert api.namespace_lists == 1
    plain = FakeApi([node("esx-01")], [pod("new")])
    run(plain, scheduler_for(plain))
    assert plain.namespace_lists == 0


def test_bindings_go_out_while_later_pods_are_still_being_decided(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi([node("esx-01"), node("esx-02")], [replica(f"web-{i}") for i in range(6)])
    decided: list[str] = []
    choose = placement.Snapshot.choose

    def counting(self: placement.Snapshot, pod: Obj) -> placement.Decision:
        decided.append(pod["metadata"]["name"])
        return choose(self, pod)

    monkeypatch.setattr(placement.Snapshot, "choose", counting)
    bind = api.bind
    decided_at_bind: list[int] = []

    async def recording(namespace: str, name: str, node_name: str) -> Obj:
        decided_at_bind.append(len(decided))
        return await bind(namespace, name, node_name)

    monkeypatch.setattr(api, "bind", recording)
    outcomes = run(api, scheduler_for(api, in_flight=2))
    assert len([o for o in outcomes if o.node]) == 6
    assert decided_at_bind[0] == 1  # the first binding did not wait for the other five decisions
