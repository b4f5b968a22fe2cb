"""The host-failure phases and the host-restart recovery, from views of the API."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.drills.timeline import UNREACHABLE, Timeline, back_after_restart, reached, split

HOST = "esx-02"


def pod(
    uid: str, node: str, *, ready: bool = True, deleting: bool = False, restarts: int = 0
) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "name": f"web-{uid}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": node},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "web", "restartCount": restarts}],
        },
    }


def node(ready: str = "True", taints: list[str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": HOST},
        "spec": {"taints": [{"key": k} for k in taints or []]},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def test_nothing_happened_yet() -> None:
    pods = [pod("a", HOST), pod("b", "esx-01"), pod("c", "esx-03")]
    assert reached(node(), pods, HOST, {"a"}, 3) == set()


def test_detection_by_condition_or_taint() -> None:
    pods = [pod("a", HOST)]
    assert "detection" in reached(node("Unknown"), pods, HOST, {"a"}, 3)
    assert "detection" in reached(node("True", [UNREACHABLE]), pods, HOST, {"a"}, 3)


def test_eviction_scheduling_boot() -> None:
    pods = [
        pod("a", HOST, deleting=True),
        pod("b", "esx-01"),
        pod("c", "esx-03"),
        pod("d", "esx-01", ready=False),
    ]
    assert reached(node("Unknown"), pods, HOST, {"a"}, 3) == {"detection", "eviction", "scheduling"}
    pods[-1] = pod("d", "esx-01")
    assert reached(node("Unknown"), pods, HOST, {"a"}, 3) == {"detection", "eviction", "scheduling", "boot"}


def test_split_makes_each_phase_start_at_the_previous_milestone() -> None:
    first = {"detection": 12.0, "eviction": 40.0, "scheduling": 39.0, "boot": 45.0}
    seconds = split(10.0, first)
    assert seconds == {"detection": 2.0, "eviction": 28.0, "scheduling": 0.0, "boot": 5.0, "total": 35.0}


def test_timeline_arms_only_once_the_host_failed() -> None:
    timeline = Timeline(HOST, 1)
    timeline.nodes_seen(1.0, {HOST: node("Unknown")})
    assert timeline.first == {}
    timeline.old = {"a"}
    timeline.nodes_seen(2.0, {HOST: node("Unknown")})
    assert timeline.first == {}, "no pods seen yet: nothing can be said about them"
    timeline.pods_seen(3.0, {"a": pod("a", HOST)})
    assert timeline.first == {"detection": 3.0}
    timeline.pods_seen(4.0, {"b": pod("b", "esx-01")})
    assert timeline.first == {"detection": 3.0, "eviction": 4.0, "scheduling": 4.0, "boot": 4.0}
    assert timeline.complete()


@pytest.mark.parametrize(
    ("pods", "back"),
    [
        ([pod("a", HOST), pod("b", "esx-01"), pod("c", "esx-03")], False),  # a: stale Ready, not rebooted
        ([pod("a", HOST, restarts=1), pod("b", "esx-01"), pod("c", "esx-03")], True),
        ([pod("a", HOST, deleting=True), pod("d", "esx-01"), pod("b", "esx-01"), pod("c", "esx-03")], True),
        ([pod("a", HOST, restarts=1, ready=False), pod("b", "esx-01"), pod("c", "esx-03")], False),
    ],
)
def test_back_after_restart_needs_the_host_pods_booted_again(pods: list[dict[str, Any]], back: bool) -> None:
    assert back_after_restart(pods, {"a": 0}, 3) is back
