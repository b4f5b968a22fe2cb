"""NoExecute taint manager decisions: untolerated taints evict at once, tolerationSeconds evict that
long after the taint's timeAdded, tolerating forever never evicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nestlab.api.tolerations import NOT_READY, UNREACHABLE
from nestlab.controller.taintmanager import assess_pods, eviction_time, taint_id

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def ago(seconds: int) -> datetime:
    return NOW - timedelta(seconds=seconds)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def taint(
    key: str = UNREACHABLE, effect: str = "NoExecute", added: int | None = 10, **extra: str
) -> dict[str, str]:
    result = {"key": key, "effect": effect, **extra}
    if added is not None:
        result["timeAdded"] = stamp(ago(added))
    return result


def tol(key: str = UNREACHABLE, seconds: int | None = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"key": key, "operator": "Exists", "effect": "NoExecute", **extra}
    if seconds is not None:
        result["tolerationSeconds"] = seconds
    return result


# (id, taints, tolerations, not_before, expected eviction time (None: never))
CASES: list[tuple[str, list[dict[str, str]], list[dict[str, Any]], datetime | None, datetime | None]] = [
    ("no taints", [], [], None, None),
    ("only NoSchedule taints", [taint(effect="NoSchedule")], [], None, None),
    ("untolerated: now", [taint()], [], None, NOW),
    ("tolerated for another key only: now", [taint()], [tol(NOT_READY, 300)], None, NOW),
    ("NoSchedule toleration does not cover NoExecute", [taint()], [tol(effect="NoSchedule")], None, NOW),
    ("tolerated forever", [taint()], [tol()], None, None),
    ("empty key + Exists tolerates everything", [taint(), taint("x")], [{"operator": "Exists"}], None, None),
    ("30 s from timeAdded 10 s ago", [taint()], [tol(seconds=30)], None, ago(10) + timedelta(seconds=30)),
    ("30 s from timeAdded 40 s ago: overdue", [taint(added=40)], [tol(seconds=30)], None, ago(10)),
    ("zero seconds: at once", [taint()], [tol(seconds=0)], None, ago(10)),
    ("negative seconds: at once", [taint()], [tol(seconds=-5)], None, ago(10)),
    (
        "no timeAdded counts from now",
        [taint(added=None)],
        [tol(seconds=30)],
        None,
        NOW + timedelta(seconds=30),
    ),
    (
        "smallest of several taints' deadlines",
        [taint(added=100), taint(NOT_READY, added=5)],
        [tol(seconds=200), tol(NOT_READY, 30)],
        None,
        ago(5) + timedelta(seconds=30),
    ),
    (
        "one taint forever, another with seconds: the seconds win",
        [taint(), taint(NOT_READY)],
        [tol(), tol(NOT_READY, 60)],
        None,
        ago(10) + timedelta(seconds=60),
    ),
    ("one of two taints untolerated: now", [taint(), taint("custom")], [tol()], None, NOW),
    ("first matching toleration is used (forever)", [taint()], [tol(), tol(seconds=1)], None, None),
    ("first matching toleration is used (seconds)", [taint()], [tol(seconds=1), tol()], None, ago(9)),
    (
        "pod created after the taint counts from creation",
        [taint(added=100)],
        [tol(seconds=30)],
        ago(5),
        ago(5) + timedelta(seconds=30),
    ),
    (
        "Equal operator compares values",
        [taint("k", value="a")],
        [{"key": "k", "value": "b", "effect": "NoExecute"}],
        None,
        NOW,
    ),
    (
        "Equal operator, same value, forever",
        [taint("k", value="a")],
        [{"key": "k", "value": "a"}],
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "taints", "tolerations", "not_before", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_eviction_time(
    case: str,
    taints: list[dict[str, str]],
    tolerations: list[dict[str, Any]],
    not_before: datetime | None,
    expected: datetime | None,
) -> None:
    assert eviction_time(taints, tolerations, NOW, not_before) == expected


def pod(
    name: str, node: str = "esx-02", tolerations: list[dict[str, Any]] | None = None, **meta: str
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-11-21T10:00:00Z", **meta},
        "spec": {"nodeName": node, "tolerations": tolerations or []},
    }


def test_assess_pods_sorts_due_pending_and_staying() -> None:
    nodes = {"esx-02": [taint(added=10)]}
    pods = [
        pod("plain"),
        pod("patient", tolerations=[tol(seconds=30)]),
        pod("overdue", tolerations=[tol(seconds=5)]),
        pod("forever", tolerations=[tol()]),
        pod("elsewhere", node="esx-01"),
        pod("terminating", deletionTimestamp="2026-11-21T11:59:59Z"),
    ]
    result = {e.pod: (e.done, e.at) for e in assess_pods(nodes, pods, NOW, {})}
    assert result == {
        "plain": (True, NOW),
        "patient": (False, ago(10) + timedelta(seconds=30)),
        "overdue": (True, ago(5)),
    }


def test_taint_without_time_added_counts_from_first_seen() -> None:
    untimed = taint(added=None)
    nodes = {"esx-02": [untimed]}
    seen = {taint_id("esx-02", untimed): ago(25)}
    [eviction] = assess_pods(nodes, [pod("p", tolerations=[tol(seconds=20)])], NOW, seen)
    assert (eviction.done, eviction.at) == (True, ago(5))
