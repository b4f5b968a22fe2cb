"""Deployment status: counts, Available and Progressing conditions with upstream reasons/messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.controller import progress
from nestlab.controller.pods import stamp

Obj = dict[str, Any]
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def deploy(replicas: int = 3, status: Obj | None = None, generation: int = 2) -> Obj:
    spec = {
        "replicas": replicas,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    }
    return {"metadata": {"name": "web", "generation": generation}, "spec": spec, "status": status or {}}


def rs(name: str, replicas: int, ready: int, available: int) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": available},
    }


def test_counts_and_available_condition() -> None:
    old, new = rs("web-old", 2, 2, 2), rs("web-new", 2, 1, 1)
    status = progress.compute_status(deploy(), [old, new], new, NOW)
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3,
    }  # fmt: skip
    assert status["unavailableReplicas"] == 1
    assert status["observedGeneration"] == 2
    available = progress.get_condition(status, "Available")
    assert available is not None
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    assert available["message"] == "Deployment has minimum availability."
    short = progress.compute_status(deploy(), [rs("web-new", 3, 2, 2)], None, NOW)
    cond = progress.get_condition(short, "Available")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "MinimumReplicasUnavailable")


def test_complete_rollout_is_new_replica_set_available() -> None:
    new = rs("web-abc", 3, 3, 3)
    status = progress.rollout_status(deploy(), [new], new, NOW)
    cond = progress.get_condition(status, "Progressing")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "NewReplicaSetAvailable")
    assert cond["message"] == 'ReplicaSet "web-abc" has successfully progressed.'


def test_progress_refreshes_last_update_but_keeps_transition_time() -> None:
    earlier = stamp(NOW - timedelta(seconds=30))
    before = {
        "updatedReplicas": 1, "replicas": 4, "availableReplicas": 3,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated",
                        "lastUpdateTime": earlier, "lastTransitionTime": earlier, "message": "x"}],
    }  # fmt: skip
    new = rs("web-abc", 2, 1, 1)
    status = progress.rollout_status(deploy(status=before), [rs("web-old", 2, 2, 2), new], new, NOW)
    cond = progress.get_condition(status, "Progressing")
    assert cond is not None
    assert cond["reason"] == "ReplicaSetUpdated"
    assert cond["message"] == 'ReplicaSet "web-abc" is progressing.'
    assert cond["lastUpdateTime"] == stamp(NOW)
    assert cond["lastTransitionTime"] == earlier


def test_no_progress_past_the_deadline_times_out() -> None:
    stale = stamp(NOW - timedelta(seconds=601))
    before = {
        "updatedReplicas": 1, "replicas": 4, "availableReplicas": 3, "readyReplicas": 3,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                        "lastUpdateTime": stale, "lastTransitionTime": stale, "message": "x"}],
    }  # fmt: skip
    new = rs("web-abc", 1, 0, 0)
    d = deploy(status=before)
    status = progress.rollout_status(d, [rs("web-old", 3, 3, 3), new], new, NOW)
    cond = progress.get_condition(status, "Progressing")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"] == 'ReplicaSet "web-abc" has timed out progressing.'
    assert progress.requeue_after(d, status, NOW) is None


def test_requeue_when_the_deadline_falls() -> None:
    recent = stamp(NOW - timedelta(seconds=100))
    cond = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "lastUpdateTime": recent}
    after = progress.requeue_after(deploy(), {"conditions": [cond]}, NOW)
    assert after is not None
    assert 500 < after <= 502


def test_no_deadline_drops_progressing() -> None:
    d = deploy(status={"conditions": [{"type": "Progressing", "status": "True", "reason": "x"}]})
    d["spec"]["progressDeadlineSeconds"] = progress.NO_DEADLINE
    status = progress.rollout_status(d, [rs("a", 3, 3, 3)], None, NOW)
    assert progress.get_condition(status, "Progressing") is None


def test_replica_failure_is_surfaced_from_replica_sets() -> None:
    new = rs("web-abc", 3, 0, 0)
    new["status"]["conditions"] = [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}
    ]
    status = progress.rollout_status(deploy(), [new], new, NOW)
    cond = progress.get_condition(status, "ReplicaFailure")
    assert cond is not None
    assert (cond["reason"], cond["message"]) == ("FailedCreate", "quota")


def test_set_condition_is_a_no_op_for_same_status_and_reason() -> None:
    status: Obj = {}
    first = progress.condition("Available", "True", "A", "m", NOW)
    progress.set_condition(status, first)
    progress.set_condition(
        status, progress.condition("Available", "True", "A", "m", NOW + timedelta(hours=1))
    )
    assert status["conditions"] == [first]
