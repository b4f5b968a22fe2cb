"""Node lifecycle decisions: stale heartbeats make a node Unknown and unschedulable, fresh ones heal it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.controller.leader import micro_time
from nestlab.controller.nodelifecycle import UNREACHABLE, assess

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def node(ready: str = "True", taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "esx-02", "creationTimestamp": "2026-11-21T11:00:00Z"},
        "spec": {"taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}, {"type": "MemoryPressure", "status": "False"}]
        },
    }


def lease(age: int) -> dict[str, Any]:
    return {"metadata": {"name": "esx-02"}, "spec": {"renewTime": micro_time(NOW - timedelta(seconds=age))}}


def test_fresh_heartbeat_changes_nothing() -> None:
    assert assess(node(), lease(10), NOW) is None


def test_stale_heartbeat_marks_unknown_and_taints() -> None:
    change = assess(node(), lease(41), NOW)
    assert change is not None
    assert change.conditions is not None
    ready = next(c for c in change.conditions if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert ready["message"] == "Kubelet stopped posting node status."
    assert any(c["type"] == "MemoryPressure" for c in change.conditions)
    assert change.taints == [
        {"key": UNREACHABLE, "effect": "NoSchedule", "timeAdded": "2026-11-21T12:00:00Z"}
    ]


def test_already_marked_node_is_left_alone() -> None:
    marked = node("Unknown", [{"key": UNREACHABLE, "effect": "NoSchedule"}])
    assert assess(marked, lease(400), NOW) is None


def test_node_without_lease_counts_from_creation() -> None:
    assert assess(node(), None, NOW) is not None  # created an hour ago, never heartbeated
    assert assess(node(), None, datetime(2026, 11, 21, 11, 0, 30, tzinfo=UTC)) is None


def test_heartbeats_resuming_remove_the_taint() -> None:
    marked = node(
        "True", [{"key": "maintenance", "effect": "NoSchedule"}, {"key": UNREACHABLE, "effect": "NoSchedule"}]
    )
    change = assess(marked, lease(1), NOW)
    assert change is not None
    assert change.conditions is None
    assert change.taints == [{"key": "maintenance", "effect": "NoSchedule"}]
