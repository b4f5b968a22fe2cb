"""Scheduler filters that count the pods already placed: topology spread and inter-pod (anti-)affinity."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.controller import placement
from tests.unit.controller.test_placement import (
    NO_VICTIMS,
    NOT_HELPFUL,
    anti_affinity,
    node,
    placed,
    pod,
    term,
)

Obj = dict[str, Any]


def spread(key: str, skew: int = 1, when: str = "DoNotSchedule", **extra: Any) -> Obj:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}},
        **extra,
    }


def zoned() -> list[Obj]:
    return [
        node("esx-01", labels={"zone": "a"}),
        node("esx-02", labels={"zone": "a"}),
        node("esx-03", labels={"zone": "b"}),
        node("esx-04"),
    ]


@pytest.mark.parametrize(
    ("constraint", "existing", "expected", "reasons"),
    [
        # zone a has 1, zone b 0: skew allows only zone b; esx-04 lacks the label
        (spread("zone"), {"esx-01": 1}, "esx-03", {placement.SPREAD: 2, placement.SPREAD_LABEL: 1}),
        (spread("zone", skew=2), {"esx-01": 1}, "esx-02", {placement.SPREAD_LABEL: 1}),
        # minDomains 3 with 2 domains: the global minimum counts as 0
        (
            spread("zone", minDomains=3),
            {"esx-03": 1, "esx-01": 1},
            None,
            {placement.SPREAD: 3, placement.SPREAD_LABEL: 1},
        ),
        # an unrelated pod does not count
        (
            {**spread("zone"), "labelSelector": {"matchLabels": {"app": "db"}}},
            {"esx-01": 1},
            "esx-02",  # the least loaded; esx-01 was not refused
            {placement.SPREAD_LABEL: 1},
        ),
        # ScheduleAnyway never filters
        (spread("zone", when="ScheduleAnyway"), {"esx-01": 3}, "esx-03", {}),
    ],
)
def test_topology_spread_filter(
    constraint: Obj, existing: dict[str, int], expected: str | None, reasons: dict[str, int]
) -> None:
    pods = [
        pod(f"w-{n}-{i}", node_name=n, labels={"app": "web"})
        for n, count in existing.items()
        for i in range(count)
    ]
    decision = placement.choose(
        pod("new", labels={"app": "web"}, topologySpreadConstraints=[constraint]), zoned(), pods
    )
    assert decision.node == expected
    assert dict(decision.reasons) == reasons


def test_topology_spread_honours_node_affinity_when_counting_domains() -> None:
    nodes = zoned()[:3]
    pods = [pod("w", node_name="esx-03", labels={"app": "web"})]
    new = pod(
        "new", labels={"app": "web"}, topologySpreadConstraints=[spread("zone")], nodeSelector={"zone": "a"}
    )
    assert placement.choose(new, nodes, pods).node == "esx-01"  # zone b is not a domain for this pod
    ignore = pod(
        "new",
        labels={"app": "web"},
        topologySpreadConstraints=[spread("zone", nodeAffinityPolicy="Ignore")],
        nodeSelector={"zone": "a"},
    )
    assert placement.choose(ignore, nodes, pods).node == "esx-01"  # b (1) vs a (0): a is still fine


def test_required_pod_affinity() -> None:
    nodes = zoned()[:3]
    wants_db = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}
    db = pod("db", node_name="esx-02", labels={"app": "db"})
    assert placement.choose(pod("web", affinity=wants_db), nodes, [db]).node == "esx-01"  # same zone a
    decision = placement.choose(pod("web", affinity=wants_db), nodes, [])
    assert decision.reasons == {placement.AFFINITY: 3}
    assert decision.message.endswith(f"3 {NOT_HELPFUL}.")
    # the first pod of a group that wants itself may go anywhere
    first = pod("db-0", labels={"app": "db"}, affinity=wants_db)
    assert placement.choose(first, nodes, []).node == "esx-01"
    # a node without the topology key never fits
    assert placement.choose(pod("web", affinity=wants_db), [node("esx-04")], [db]).reasons == {
        placement.AFFINITY: 1
    }


def test_required_anti_affinity_both_directions() -> None:
    nodes = [node("esx-01"), node("esx-02")]
    first = pod("web-1", node_name="esx-01", labels={"app": "web"}, affinity=anti_affinity("web"))
    second = pod("web-2", labels={"app": "web"}, affinity=anti_affinity("web"))
    assert placement.choose(second, nodes, [first]).node == "esx-02"
    third = pod("web-3", labels={"app": "web"}, affinity=anti_affinity("web"))
    decision = placement.choose(third, nodes, [first, placed(second, "esx-02")])
    assert decision.message == (
        f"0/2 nodes are available: 2 {placement.ANTI_AFFINITY}. preemption: 0/2 nodes are available: 2 {NO_VICTIMS}."
    )
    plain = pod("plain", labels={"app": "web"})  # no rule of its own, but web-1's rule repels it
    assert placement.choose(plain, [node("esx-01")], [first]).reasons == {placement.EXISTING_ANTI_AFFINITY: 1}
    other_namespace = pod("x", labels={"app": "web"}, namespace="other")
    assert placement.choose(other_namespace, [node("esx-01")], [first]).node == "esx-01"
    everywhere = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("web", namespaceSelector={})]
        }
    }
    assert (
        placement.choose(pod("y", namespace="other", affinity=everywhere), [node("esx-01")], [first]).node
        is None
    )
    by_label = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                term("web", namespaceSelector={"matchLabels": {"team": "a"}})
            ]
        }
    }
    labelled = {"demo": {"team": "a"}}
    assert (
        placement.choose(
            pod("z", namespace="other", affinity=by_label), [node("esx-01")], [first], labelled
        ).node
        is None
    )
    assert (
        placement.choose(pod("z", namespace="other", affinity=by_label), [node("esx-01")], [first]).node
        == "esx-01"
    )


def test_match_label_keys_narrow_the_term() -> None:
    old = pod("old", node_name="esx-01", labels={"app": "web", "hash": "1"})
    rule = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("web", matchLabelKeys=["hash"])]
        }
    }
    same = pod("new", labels={"app": "web", "hash": "1"}, affinity=rule)
    newer = pod("new", labels={"app": "web", "hash": "2"}, affinity=rule)
    assert placement.choose(same, [node("esx-01")], [old]).node is None
    assert placement.choose(newer, [node("esx-01")], [old]).node == "esx-01"
