"""Node lifecycle decisions: stale heartbeats make a node Unknown and tainted (NoSchedule and
NoExecute), a node reporting Ready=False is tainted not-ready, fresh heartbeats heal it, and the pods
of a node that is not Ready get Ready=False."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nestlab.api.tolerations import NOT_READY, UNREACHABLE
from nestlab.controller.leader import micro_time
from nestlab.controller.nodelifecycle import GRACE, assess, effective_ready, ready_false

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
STAMP = "2026-11-21T12:00:00Z"
EARLIER = "2026-11-21T11:59:00Z"


def node(ready: str | None = "True", taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}, {"type": "Attested", "status": "True"}]
    if ready is not None:
        conditions.insert(0, {"type": "Ready", "status": ready})
    return {
        "metadata": {"name": "esx-02", "creationTimestamp": "2026-11-21T11:00:00Z"},
        "spec": {"taints": taints or []},
        "status": {"conditions": conditions},
    }


def lease(age: int) -> dict[str, Any]:
    return {"metadata": {"name": "esx-02"}, "spec": {"renewTime": micro_time(NOW - timedelta(seconds=age))}}


def taint(key: str, effect: str, added: str = EARLIER) -> dict[str, str]:
    return {"key": key, "effect": effect, "timeAdded": added}


MAINTENANCE = {"key": "maintenance", "effect": "NoSchedule"}
UNREACHABLE_BOTH = [taint(UNREACHABLE, "NoSchedule"), taint(UNREACHABLE, "NoExecute")]
NOT_READY_BOTH = [taint(NOT_READY, "NoSchedule"), taint(NOT_READY, "NoExecute")]

# (id, node, lease age in seconds (None: no lease), expected taints (None: unchanged))
TAINT_CASES: list[tuple[str, dict[str, Any], int | None, list[dict[str, str]] | None]] = [
    ("fresh and ready", node(), 10, None),
    (
        "stale: unreachable NoSchedule and NoExecute",
        node(),
        GRACE + 1,
        [taint(UNREACHABLE, "NoSchedule", STAMP), taint(UNREACHABLE, "NoExecute", STAMP)],
    ),
    ("stale, already tainted: timeAdded kept", node("Unknown", UNREACHABLE_BOTH), 400, None),
    (
        "stale with only the old NoSchedule taint: NoExecute added",
        node("Unknown", [taint(UNREACHABLE, "NoSchedule")]),
        400,
        [taint(UNREACHABLE, "NoSchedule"), taint(UNREACHABLE, "NoExecute", STAMP)],
    ),
    (
        "reports Ready=False: not-ready both effects",
        node("False", [MAINTENANCE]),
        5,
        [MAINTENANCE, taint(NOT_READY, "NoSchedule", STAMP), taint(NOT_READY, "NoExecute", STAMP)],
    ),
    (
        "not-ready node goes silent: not-ready swapped for unreachable",
        node("False", NOT_READY_BOTH),
        GRACE + 5,
        [taint(UNREACHABLE, "NoSchedule", STAMP), taint(UNREACHABLE, "NoExecute", STAMP)],
    ),
    (
        "heartbeats back, Ready=True: taints go",
        node("True", [MAINTENANCE, *UNREACHABLE_BOTH]),
        1,
        [MAINTENANCE],
    ),
    ("heartbeats back, Ready still Unknown: taints go", node("Unknown", UNREACHABLE_BOTH), 1, []),
    ("ready again after not-ready", node("True", NOT_READY_BOTH), 1, []),
    (
        "never heartbeated, created an hour ago",
        node(),
        None,
        [taint(UNREACHABLE, "NoSchedule", STAMP), taint(UNREACHABLE, "NoExecute", STAMP)],
    ),
]


@pytest.mark.parametrize(("case", "subject", "age", "expected"), TAINT_CASES, ids=[c[0] for c in TAINT_CASES])
def test_taints(
    case: str, subject: dict[str, Any], age: int | None, expected: list[dict[str, str]] | None
) -> None:
    change = assess(subject, None if age is None else lease(age), NOW)
    assert (None if change is None else change.taints) == expected


def test_stale_heartbeat_marks_kubelet_conditions_unknown() -> None:
    change = assess(node(), lease(GRACE + 1), NOW)
    assert change is not None
    assert change.conditions is not None
    by_type = {c["type"]: c for c in change.conditions}
    ready = by_type["Ready"]
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert ready["message"] == "Kubelet stopped posting node status."
    assert ready["lastTransitionTime"] == STAMP
    assert by_type["MemoryPressure"]["status"] == "Unknown"
    assert by_type["Attested"] == {"type": "Attested", "status": "True"}  # not the kubelet's: untouched
    assert change.went_not_ready


def test_already_marked_node_is_left_alone() -> None:
    marked = node("Unknown", UNREACHABLE_BOTH)
    marked["status"]["conditions"][1]["status"] = "Unknown"
    assert assess(marked, lease(400), NOW) is None


def test_grace_boundary() -> None:
    assert assess(node(), lease(GRACE), NOW) is None
    assert assess(node(), lease(GRACE + 1), NOW) is not None
    assert assess(node(), lease(GRACE + 1), NOW, grace=GRACE + 10) is None


@pytest.mark.parametrize(
    ("ready", "age", "expected"),
    [
        ("True", 1, "True"),
        ("True", 400, "Unknown"),
        ("False", 1, "False"),
        ("Unknown", 1, None),
        (None, 1, None),
    ],
)
def test_effective_ready(ready: str | None, age: int, expected: str | None) -> None:
    assert effective_ready(node(ready), lease(age), NOW) == expected


def pod(conditions: list[dict[str, str]]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns"}, "status": {"conditions": conditions}}


READY_TRUE = {"type": "Ready", "status": "True", "reason": "", "lastTransitionTime": EARLIER}
CONTAINERS = {"type": "ContainersReady", "status": "True"}


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (pod([CONTAINERS, READY_TRUE]), {**READY_TRUE, "status": "False", "lastTransitionTime": STAMP}),
        (pod([{"type": "Ready", "status": "False"}]), None),  # already not ready: no write
        (pod([{"type": "PodScheduled", "status": "True"}]), None),  # never started: nothing to mark
        (pod([]), None),
    ],
    ids=["ready", "already-false", "no-ready-condition", "no-conditions"],
)
def test_pods_marked_not_ready(subject: dict[str, Any], expected: dict[str, str] | None) -> None:
    assert ready_false(subject, NOW) == expected
