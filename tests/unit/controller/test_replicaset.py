"""ReplicaSet logic: status, ReplicaFailure, slow-start batches, selectors, expectations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.api import status as api_status
from nestlab.controller import selector
from nestlab.controller.expectations import TTL, Expectations
from nestlab.controller.pods import stamp
from nestlab.controller.replicaset import compute_status, selector_of, slow_start, status_patch

Obj = dict[str, Any]
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def rs(min_ready: int = 0, conditions: list[Obj] | None = None) -> Obj:
    return {
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "generation": 4},
        "spec": {
            "replicas": 3,
            "minReadySeconds": min_ready,
            "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}},
        },
        "status": {"conditions": conditions} if conditions else {},
    }


def pod(labels: Obj, ready_for: float | None = None) -> Obj:
    conds = (
        [{"type": "Ready", "status": "True", "lastTransitionTime": stamp(NOW - timedelta(seconds=ready_for))}]
        if ready_for is not None
        else []
    )
    return {"metadata": {"labels": labels}, "status": {"phase": "Running", "conditions": conds}}


def test_status_counts() -> None:
    pods = [pod({"app": "web", "tier": "fe"}, 30), pod({"app": "web"}, 2), pod({"app": "web", "tier": "fe"})]
    status = compute_status(rs(min_ready=10), pods, None, NOW)
    assert status == {
        "replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1, "observedGeneration": 4,
    }  # fmt: skip


def test_replica_failure_set_then_cleared() -> None:
    failed = compute_status(rs(), [], ("FailedCreate", 'pods "web-x" is forbidden: exceeded quota'), NOW)
    cond = failed["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    assert "exceeded quota" in cond["message"]
    cleared = compute_status(rs(conditions=failed["conditions"]), [], None, NOW)
    assert "conditions" not in cleared
    patch = status_patch(failed, cleared)
    assert patch is not None
    assert patch["conditions"] is None
    assert status_patch(cleared, dict(cleared)) is None


def test_slow_start_stops_at_the_first_refused_batch() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise api_status.ApiError(403, "Forbidden", "exceeded quota")

    created, error = asyncio.run(slow_start(10, create))
    assert (created, calls) == (3, 7)  # batches of 1, 2, then 4 refused: not 10 requests
    assert error is not None
    assert error.message == "exceeded quota"


def test_slow_start_all_good() -> None:
    async def create() -> None:
        return None

    assert asyncio.run(slow_start(5, create)) == (5, None)


def test_rc_selector_is_a_map_defaulting_to_template_labels() -> None:
    rc: Obj = {"kind": "ReplicationController", "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}
    assert selector_of(rc) == {"matchLabels": {"app": "x"}}
    rc["spec"]["selector"] = {"app": "y"}
    assert selector_of(rc) == {"matchLabels": {"app": "y"}}


def test_label_selector_semantics() -> None:
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe", "be"]},
        {"key": "canary", "operator": "DoesNotExist"},
    ]}  # fmt: skip
    assert selector.matches(sel, {"app": "web", "tier": "fe"})
    assert not selector.matches(sel, {"app": "web", "tier": "db"})
    assert not selector.matches(sel, {"app": "web", "tier": "fe", "canary": "1"})
    assert selector.matches({}, {"any": "thing"})
    assert not selector.matches(None, {"a": "b"})
    assert selector.to_string(sel) == "app=web,tier in (be,fe),!canary"


def test_expectations_gate_until_observed_or_expired() -> None:
    clock = [0.0]
    exp = Expectations(clock=lambda: clock[0])
    exp.expect("ns/web", adds=2, deletes=["ns/p1"])
    assert not exp.satisfied("ns/web")
    exp.creation_observed("ns/web")
    exp.creation_observed("ns/web")
    assert not exp.satisfied("ns/web")
    exp.deletion_observed("ns/web", "ns/p1")
    assert exp.satisfied("ns/web")
    exp.expect("ns/web", adds=1)
    clock[0] = TTL + 1
    assert exp.satisfied("ns/web")
