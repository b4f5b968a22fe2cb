"""The scheduler's kept aggregates (nestlab.controller.podindex): the same answers as full rescans.

A pass decides many pods against one Snapshot and assumes each before the next; the spread counts
and the lists of pods with affinity terms are kept incrementally instead of being recounted per
pod. These tests place and remove pods in many orders and check, after every step, that what the
index says is what a scan of every node's pods says, and that a long-lived Snapshot decides each
pod exactly as a Snapshot built from scratch with the same pods would.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nestlab.controller import placement
from nestlab.controller.podindex import PodIndex
from nestlab.controller.podinfo import HOSTNAME, NodeInfo, PodInfo, Spread
from tests.unit.controller.test_placement import anti_affinity, node, placed, pod, term

Obj = dict[str, Any]
APPS = ("web", "db", "cache")
NODES = ("esx-01", "esx-02", "esx-03")


def info(p: Obj) -> PodInfo:
    return PodInfo.of(p, {})


def nodes() -> dict[str, NodeInfo]:
    return {n: NodeInfo.of(node(n, pods="100")) for n in NODES}


def owned(name: str, owner: str, **extra: Any) -> Obj:
    made = pod(name, labels={"app": owner}, **extra)
    made["metadata"]["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet"}]
    return made


def scan(spread: Spread, asking: PodInfo, where: dict[str, NodeInfo]) -> dict[str, int]:
    """What the index replaced: every pod of every node, tested one by one."""
    counts = {n: sum(1 for p in i.pods.values() if spread.counts(p, asking)) for n, i in where.items()}
    return {n: c for n, c in counts.items() if c}


def test_counts_are_kept_as_pods_come_and_go() -> None:
    where = nodes()
    index = PodIndex(where)
    by_label = Spread(HOSTNAME, 1, selector={"matchLabels": {"app": "web"}})
    by_owner = Spread(HOSTNAME, 3, owner="web")
    asking = info(owned("new", "web"))
    first = info(owned("a", "web"))
    where["esx-01"].add(first)
    index.added(first, where["esx-01"])
    assert index.matching(by_label, asking) == {"esx-01": 1}  # counted once, on first use
    assert index.matching(by_owner, asking) == {"esx-01": 1}
    others = [
        (info(owned("b", "web")), "esx-02"),
        (info(pod("c", labels={"app": "web"})), "esx-02"),  # the label, not the owner
        (info(owned("d", "db")), "esx-01"),
        (info(pod("e", labels={"app": "web"}, namespace="elsewhere")), "esx-03"),  # not our namespace
    ]
    for other, name in others:
        where[name].add(other)
        index.added(other, where[name])
    assert index.matching(by_label, asking) == {"esx-01": 1, "esx-02": 2} == scan(by_label, asking, where)
    assert index.matching(by_owner, asking) == {"esx-01": 1, "esx-02": 1} == scan(by_owner, asking, where)
    where["esx-02"].remove(others[0][0].key)
    index.removed(others[0][0], where["esx-02"])
    assert index.matching(by_label, asking) == {"esx-01": 1, "esx-02": 1} == scan(by_label, asking, where)
    assert index.matching(by_owner, asking).get("esx-02", 0) == 0


def test_pods_with_terms_are_listed_apart() -> None:
    where = nodes()
    index = PodIndex(where)
    plain = info(pod("plain", labels={"app": "web"}))
    repels = info(pod("repels", affinity=anti_affinity("web")))
    prefers = info(
        pod(
            "prefers",
            affinity={
                "podAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 5, "podAffinityTerm": term("db")}
                    ]
                }
            },
        )
    )
    for one in (plain, repels, prefers):
        where["esx-01"].add(one)
        index.added(one, where["esx-01"])
    assert set(index.with_affinity) == {repels.key, prefers.key}
    assert set(index.required_anti) == {repels.key}
    index.removed(repels, where["esx-01"])
    assert set(index.with_affinity) == {prefers.key}
    assert not index.required_anti


def incoming(kind: int, index: int) -> Obj:
    """One of the shapes that exercise every kept aggregate: owned replicas, labelled pods, pods
    with required or preferred (anti-)affinity, pods with their own spread constraints."""
    app = APPS[index % len(APPS)]
    name = f"p{index}"
    if kind == 0:
        return owned(name, app, cpu="100m")
    if kind == 1:
        return pod(name, cpu="100m", labels={"app": app})
    if kind == 2:
        return pod(name, cpu="100m", labels={"app": app}, affinity=anti_affinity(app))
    if kind == 3:
        preferred = {"weight": 10, "podAffinityTerm": term(APPS[(index + 1) % len(APPS)])}
        rule = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [preferred]}}
        return pod(name, cpu="100m", labels={"app": app}, affinity=rule)
    constraint = {
        "maxSkew": 1,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule" if kind == 4 else "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": app}},
    }
    return pod(name, cpu="100m", labels={"app": app}, topologySpreadConstraints=[constraint])


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(st.integers(0, 5), min_size=1, max_size=30), drop=st.sets(st.integers(0, 29)))
def test_a_kept_snapshot_decides_as_a_fresh_one(kinds: list[int], drop: set[int]) -> None:
    cluster = [
        node("esx-01", labels={"zone": "a"}, pods="20"),
        node("esx-02", labels={"zone": "a"}, pods="20"),
        node("esx-03", labels={"zone": "b"}, pods="20"),
        node("esx-04", labels={"zone": "b"}, pods="20", taints=[{"key": "k", "effect": "PreferNoSchedule"}]),
    ]
    kept = placement.Snapshot(cluster, [])
    bound: list[Obj] = []
    for number, kind in enumerate(kinds):
        new = incoming(kind, number)
        fresh = placement.Snapshot(cluster, bound).choose(new)
        decision = kept.choose(new)
        assert (decision.node, decision.scores, decision.message) == (fresh.node, fresh.scores, fresh.message)
        if decision.node is None:
            continue
        kept.assume(new, decision.node)
        if number in drop:  # the binding failed: the pod is forgotten again
            kept.forget(new)
        else:
            bound.append(placed(new, decision.node))
    spread_of = Spread(HOSTNAME, 3, selector={"matchLabels": {"app": "web"}})
    asking = info(pod("asking", labels={"app": "web"}))
    assert dict(kept.index.matching(spread_of, asking)) == scan(spread_of, asking, kept.nodes)
    on_nodes = Counter(p["spec"]["nodeName"] for p in bound)
    assert {n: len(i.pods) for n, i in kept.nodes.items() if i.pods} == dict(on_nodes)
