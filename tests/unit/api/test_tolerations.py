"""DefaultTolerationSeconds as upstream: new pods get not-ready/unreachable NoExecute tolerations
unless they tolerate those taints already; and Toleration.ToleratesTaint's matching rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nestlab.api.tolerations import NOT_READY, UNREACHABLE, default_tolerations, tolerates

NR = {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
UR = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
GPU = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}

# (id, the pod's tolerations (None: field absent), the tolerations expected after defaulting)
CASES: list[tuple[str, list[dict[str, Any]] | None, list[dict[str, Any]]]] = [
    ("no tolerations field", None, [NR, UR]),
    ("empty list", [], [NR, UR]),
    ("own tolerations kept first", [GPU], [GPU, NR, UR]),
    (
        "own not-ready toleration kept, unreachable added",
        [{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
        [{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}, UR],
    ),
    (
        "own unreachable toleration forever kept",
        [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}],
        [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}, NR],
    ),
    ("toleration of every key and effect covers both", [{"operator": "Exists"}], [{"operator": "Exists"}]),
    (
        "empty key with NoExecute covers both",
        [{"operator": "Exists", "effect": "NoExecute"}],
        [{"operator": "Exists", "effect": "NoExecute"}],
    ),
    (
        "not-ready with no effect covers not-ready",
        [{"key": NOT_READY, "operator": "Exists"}],
        [{"key": NOT_READY, "operator": "Exists"}, UR],
    ),
    (
        "a NoSchedule toleration of not-ready does not count",
        [{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}],
        [{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}, NR, UR],
    ),
]


@pytest.mark.parametrize(("case", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_default_tolerations(
    case: str, given: list[dict[str, Any]] | None, expected: list[dict[str, Any]]
) -> None:
    pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    if given is not None:
        pod["spec"]["tolerations"] = copy.deepcopy(given)
    default_tolerations(pod, 30, 60)
    assert pod["spec"].get("tolerations", []) == expected


def test_defaulting_twice_adds_nothing() -> None:
    pod: dict[str, Any] = {"spec": {}}
    default_tolerations(pod, 300, 300)
    once = copy.deepcopy(pod)
    default_tolerations(pod, 1, 1)
    assert pod == once


@pytest.mark.parametrize(
    "pod",
    [{}, {"spec": None}, {"spec": "x"}, {"spec": {"tolerations": "x"}}],
    ids=["no-spec", "null-spec", "string-spec", "string-tolerations"],
)
def test_malformed_pods_are_left_for_validation(pod: dict[str, Any]) -> None:
    before = copy.deepcopy(pod)
    default_tolerations(pod, 30, 30)
    assert pod == before


TAINT = {"key": "k", "value": "v", "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "k", "operator": "Exists"}, True),
        ({"key": "k", "operator": "Equal", "value": "v"}, True),
        ({"key": "k", "value": "v"}, True),  # operator defaults to Equal
        ({"key": "k", "value": "w"}, False),
        ({"key": "other", "operator": "Exists"}, False),
        ({"operator": "Exists"}, True),
        ({"operator": "Exists", "effect": "NoSchedule"}, False),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, True),
        ({"key": "k", "operator": "Lt", "value": "v"}, False),
    ],
)
def test_tolerates(toleration: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, TAINT) is expected
