"""Scheduler scores: each upstream score plugin with its normalisation and default weight."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.controller import placement, scoring
from tests.unit.controller.test_placement import node, placed, pod, term

Obj = dict[str, Any]


def best_effort(name: str, node_name: str = "", labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return pod(name, cpu=None, memory=None, node_name=node_name, labels=labels, **spec)


def owned(p: Obj, uid: str) -> Obj:
    p["metadata"]["ownerReferences"] = [{"uid": uid, "controller": True, "kind": "ReplicaSet", "name": uid}]
    return p


def test_least_allocated_counts_best_effort_pods() -> None:
    nodes = [node("esx-01"), node("esx-02")]
    decision = placement.choose(best_effort("new"), nodes, [best_effort("old", "esx-01")])
    # TaintToleration 3 x 100; LeastAllocated (90 | 95): 200m/400Mi vs 100m/200Mi of 2 cpu/4Gi
    assert decision.scores == {"esx-01": 390, "esx-02": 395}
    assert decision.node == "esx-02"


def test_balanced_allocation_prefers_even_use() -> None:
    nodes = [node("esx-01", cpu="2", memory="4Gi"), node("esx-02", cpu="4", memory="4Gi")]
    decision = placement.choose(pod("new", cpu="1", memory="2Gi"), nodes, [])
    # LeastAllocated 50 | 62, BalancedAllocation 100 | 87 (cpu 1/4 vs memory 1/2)
    assert decision.scores == {"esx-01": 450, "esx-02": 449}
    assert decision.node == "esx-01"


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([], {"esx-01": 95, "esx-02": 395}),
        (
            [{"key": "soft", "operator": "Exists", "effect": "PreferNoSchedule"}],
            {"esx-01": 395, "esx-02": 395},
        ),
        ([{"key": "soft", "operator": "Exists", "effect": "NoSchedule"}], {"esx-01": 95, "esx-02": 395}),
    ],
)
def test_prefer_no_schedule_taints_score_lower(tolerations: list[Obj], expected: dict[str, int]) -> None:
    nodes = [node("esx-01", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]), node("esx-02")]
    assert placement.choose(best_effort("new", tolerations=tolerations), nodes, []).scores == expected


def test_preferred_node_affinity_weights() -> None:
    nodes = [
        node("esx-01", labels={"disk": "ssd"}),
        node("esx-02", labels={"zone": "b"}),
        node("esx-03", labels={"disk": "ssd", "zone": "b"}),
        node("esx-04"),
    ]
    preferred = [
        {
            "weight": 20,
            "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
        },
        {"weight": 80, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}},
    ]
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}
    decision = placement.choose(best_effort("new", affinity=affinity), nodes, [])
    base = 300 + 95
    assert decision.scores == {
        "esx-01": base + 40,
        "esx-02": base + 160,
        "esx-03": base + 200,
        "esx-04": base,
    }
    assert decision.node == "esx-03"


def test_schedule_anyway_spread_over_zones() -> None:
    nodes = [
        node("esx-01", labels={"zone": "a"}),
        node("esx-02", labels={"zone": "a"}),
        node("esx-03", labels={"zone": "b"}),
    ]
    constraint = {
        "maxSkew": 1,
        "topologyKey": "zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    new = best_effort("new", labels={"app": "web"}, topologySpreadConstraints=[constraint])
    decision = placement.choose(new, nodes, [best_effort("w", "esx-01", labels={"app": "web"})])
    # zone a holds 1 match: esx-02 scores 0 for spreading although it is as empty as esx-03
    assert decision.scores == {"esx-01": 390, "esx-02": 395, "esx-03": 595}
    assert decision.node == "esx-03"


@pytest.mark.parametrize(
    ("owner", "labels", "expected"),
    [
        ("rs-1", {"app": "other"}, "esx-02"),  # same controller: spread, whatever the labels
        ("rs-2", {"app": "web"}, "esx-01"),  # another controller: not counted, even with equal labels
        ("", {"app": "web"}, "esx-02"),  # no controller: pods with the same labels count
        ("", {"app": "db"}, "esx-01"),  # nothing in common: the tie goes to the first name
        ("", {}, "esx-01"),  # no labels, no owner: no default spreading at all
    ],
)
def test_system_default_spreading(owner: str, labels: dict[str, str], expected: str) -> None:
    nodes = [node("esx-01"), node("esx-02")]
    existing = [
        owned(best_effort("web-0", "esx-01", labels={"app": "web"}), "rs-1"),
        best_effort("x", "esx-02"),
    ]
    new = best_effort("new", labels=labels)
    if owner:
        owned(new, owner)
    assert placement.choose(new, nodes, existing).node == expected


def test_preferred_pod_affinity_attracts_and_anti_affinity_repels() -> None:
    nodes = [node("esx-01"), node("esx-02")]
    near = {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": term("db")}]
        }
    }
    db = best_effort("db", "esx-02", labels={"app": "db"})
    decision = placement.choose(best_effort("new", affinity=near), nodes, [db])
    assert decision.scores == {"esx-01": 395, "esx-02": 590}
    far = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term("web")}
            ]
        }
    }
    crowd = [
        best_effort("web", "esx-01", labels={"app": "web"}),
        best_effort("a", "esx-02"),
        best_effort("b", "esx-02"),
    ]
    assert placement.choose(best_effort("new", affinity=far), nodes, crowd).node == "esx-02"


def test_existing_pods_terms_weigh_on_newcomers() -> None:
    nodes = [node("esx-01"), node("esx-02")]
    wants_web = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web")]}}
    cache = best_effort("cache", "esx-02", labels={"app": "cache"}, affinity=wants_web)
    decision = placement.choose(best_effort("new", labels={"app": "web"}), nodes, [cache])
    assert decision.node == "esx-02"  # hardPodAffinityWeight: the cache's required affinity pulls
    avoid = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": term("web")}
            ]
        }
    }
    loner = best_effort("loner", "esx-01", labels={"app": "loner"}, affinity=avoid)
    decision = placement.choose(
        best_effort("new", labels={"app": "web"}), nodes, [loner, best_effort("x", "esx-02")]
    )
    assert decision.node == "esx-02"


@pytest.mark.parametrize(
    ("raw", "reverse", "expected"),
    [
        ({"a": 0, "b": 0}, False, {"a": 0, "b": 0}),
        ({"a": 0, "b": 0}, True, {"a": 100, "b": 100}),
        ({"a": 1, "b": 3}, False, {"a": 33, "b": 100}),
        ({"a": 1, "b": 3}, True, {"a": 67, "b": 0}),
    ],
)
def test_default_normalize(raw: dict[str, int], reverse: bool, expected: dict[str, int]) -> None:
    assert scoring._normalize(raw, reverse) == expected


def test_replicas_placed_in_one_pass_spread_over_three_hosts() -> None:
    nodes = [node("esx-01"), node("esx-02"), node("esx-03")]
    snapshot = placement.Snapshot(nodes, [placed(best_effort("busy"), "esx-02")])
    hosts = []
    for index in range(3):
        replica = best_effort(f"web-{index}", labels={"app": "web"})
        decision = snapshot.choose(replica)
        assert decision.node is not None
        snapshot.assume(replica, decision.node)
        hosts.append(decision.node)
    assert sorted(hosts) == ["esx-01", "esx-02", "esx-03"]
