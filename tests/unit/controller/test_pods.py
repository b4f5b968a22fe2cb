"""Pod facts: availability with minReadySeconds, the scale-down order, pods from templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.controller import pods
from nestlab.controller.pods import stamp

Obj = dict[str, Any]
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def pod(
    name: str,
    *,
    node: str = "",
    phase: str = "Running",
    ready_for: float | None = None,
    age: float = 100,
    **extra: Any,
) -> Obj:
    conditions = []
    if ready_for is not None:
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "lastTransitionTime": stamp(NOW - timedelta(seconds=ready_for)),
            }
        )
    return {
        "metadata": {"name": name, "creationTimestamp": stamp(NOW - timedelta(seconds=age)), **extra},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_available_needs_min_ready_seconds() -> None:
    assert pods.is_available(pod("a", ready_for=5), 0, NOW)
    assert not pods.is_available(pod("a", ready_for=5), 10, NOW)
    assert pods.is_available(pod("a", ready_for=10), 10, NOW)
    assert not pods.is_available(pod("a"), 0, NOW)
    assert pods.available_in(pod("a", ready_for=4), 10, NOW) == 6


def test_active_excludes_finished_and_terminating() -> None:
    assert pods.is_active(pod("a"))
    assert not pods.is_active(pod("a", phase="Failed"))
    assert not pods.is_active(pod("a", phase="Succeeded"))
    assert not pods.is_active(pod("a", deletionTimestamp=stamp(NOW)))


def test_delete_order_follows_upstream() -> None:
    candidates = [
        pod("ready-old", node="n1", ready_for=50, age=100),
        pod("unscheduled", phase="Pending"),
        pod("pending", node="n1", phase="Pending"),
        pod("not-ready", node="n1"),
        pod("ready-new", node="n1", ready_for=50, age=10),
        pod("ready-recently", node="n1", ready_for=5, age=200),
        pod("unknown", node="n1", phase="Unknown"),
    ]
    order = [p["metadata"]["name"] for p in pods.to_delete(candidates, [], len(candidates))]
    assert order == [
        "unscheduled",
        "pending",
        "unknown",
        "not-ready",
        "ready-recently",
        "ready-new",
        "ready-old",
    ]


def test_deletion_cost_and_doubled_up_nodes() -> None:
    cheap = pod("cheap", node="n1", ready_for=50, annotations={pods.DELETION_COST: "-5"})
    crowded = pod("crowded", node="n2", ready_for=50)
    alone = pod("alone", node="n3", ready_for=50)
    related = [crowded, pod("x", node="n2"), alone, cheap]
    order = [p["metadata"]["name"] for p in pods.to_delete([alone, crowded, cheap], related, 3)]
    assert order == ["cheap", "crowded", "alone"]


def test_pod_from_template_is_owned_and_generated() -> None:
    template: Obj = {
        "metadata": {"labels": {"app": "web"}, "annotations": {"a": "1"}},
        "spec": {"containers": [{"name": "c"}]},
    }
    owner = {"metadata": {"name": "web-abc", "uid": "u1"}}
    ref = pods.owner_reference(owner, "apps/v1", "ReplicaSet")
    made = pods.from_template(template, "ns", ref, "web-abc-")
    assert made["metadata"] == {
        "generateName": "web-abc-", "namespace": "ns", "labels": {"app": "web"}, "annotations": {"a": "1"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1",
                             "controller": True, "blockOwnerDeletion": True}],
    }  # fmt: skip
    made["spec"]["containers"][0]["name"] = "changed"
    assert template["spec"]["containers"][0]["name"] == "c"  # a copy, not the template itself
