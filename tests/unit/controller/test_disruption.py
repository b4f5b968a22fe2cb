"""PodDisruptionBudget status as upstream's disruption controller computes it, and the controller shell."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from nestlab.api import resources as r
from nestlab.api.client import ApiClient
from nestlab.api.eviction import timestamp
from nestlab.controller.disruption import (
    DisruptionController,
    SyncError,
    compute,
    fail_safe,
)
from nestlab.controller.informer import InformerFactory

Obj = dict[str, Any]
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
NS = "demo"


def pod(name: str, *, ready: bool = True, owner: Obj | None = None, ns: str = NS, **meta: Any) -> Obj:
    metadata: Obj = {"name": name, "namespace": ns, "labels": {"app": "web"}, "uid": f"uid-{name}", **meta}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "metadata": metadata,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def ref(kind: str, name: str, api_version: str = "apps/v1") -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}


def owner(resource: r.Resource, name: str, replicas: int, controller: Obj | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": NS, "uid": f"uid-{name}"}
    if controller is not None:
        meta["ownerReferences"] = [controller]
    return {"kind": resource.kind, "metadata": meta, "spec": {"replicas": replicas}}


def budget(**spec: Any) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": NS, "generation": 3, "resourceVersion": "7"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


def lookup_from(*objs: Obj) -> Any:
    table = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    def lookup(resource: r.Resource, namespace: str, name: str) -> Obj | None:
        return table.get((resource.kind, namespace, name))

    return lookup


NOBODY = lookup_from()


def test_integer_min_available_counts_matching_pods() -> None:
    pods = [pod("a"), pod("b"), pod("c"), pod("x", ns="other")]
    status = compute(budget(minAvailable=2), pods, NOBODY, NOW).status
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "currentHealthy": 3,
        "desiredHealthy": 2,
        "expectedPods": 3,
        "disruptionsAllowed": 1,
        "observedGeneration": 3,
    }
    assert status["conditions"] == [
        {
            "type": "DisruptionAllowed",
            "status": "True",
            "reason": "SufficientPods",
            "message": "",
            "observedGeneration": 3,
            "lastTransitionTime": "2026-12-05T12:00:00Z",
        }
    ]


def test_not_enough_ready_pods_allows_nothing() -> None:
    status = compute(budget(minAvailable=2), [pod("a"), pod("b", ready=False)], NOBODY, NOW).status
    assert (status["currentHealthy"], status["disruptionsAllowed"]) == (1, 0)
    assert (status["conditions"][0]["status"], status["conditions"][0]["reason"]) == (
        "False",
        "InsufficientPods",
    )


def test_no_pods_allows_nothing_even_with_min_zero() -> None:
    status = compute(budget(minAvailable=0), [], NOBODY, NOW).status
    assert (status["expectedPods"], status["disruptionsAllowed"]) == (0, 0)


def test_percentage_uses_the_deployment_scale_through_its_replicaset() -> None:
    deployment = owner(r.DEPLOYMENTS, "web", 4)
    rs = owner(r.REPLICASETS, "web-5d8f", 4, ref("Deployment", "web"))
    pods = [pod(n, owner=ref("ReplicaSet", "web-5d8f")) for n in ("a", "b", "c")]
    status = compute(budget(minAvailable="50%"), pods, lookup_from(deployment, rs), NOW).status
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (4, 2, 1)


def test_max_unavailable_uses_statefulset_scale_and_rounds_up() -> None:
    sts = owner(r.STATEFULSETS, "db", 3)
    pods = [pod(f"db-{i}", owner=ref("StatefulSet", "db")) for i in range(3)]
    by_number = compute(budget(maxUnavailable=1), pods, lookup_from(sts), NOW).status
    assert (by_number["expectedPods"], by_number["desiredHealthy"], by_number["disruptionsAllowed"]) == (
        3,
        2,
        1,
    )
    by_percent = compute(budget(maxUnavailable="34%"), pods, lookup_from(sts), NOW).status
    assert (by_percent["desiredHealthy"], by_percent["disruptionsAllowed"]) == (
        1,
        2,
    )  # ceil(1.02) = 2 unavailable


def test_replicaset_and_replication_controller_scales_add_up() -> None:
    rs = owner(r.REPLICASETS, "solo", 2)
    rc = owner(r.REPLICATION_CONTROLLERS, "legacy", 3)
    pods = [
        pod("a", owner=ref("ReplicaSet", "solo")),
        pod("b", owner=ref("ReplicationController", "legacy", "v1")),
    ]
    status = compute(budget(maxUnavailable=0), pods, lookup_from(rs, rc), NOW).status
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (5, 5, 0)


def test_unmanaged_pods_count_for_nothing_in_percentages() -> None:
    rs = owner(r.REPLICASETS, "solo", 2)
    pods = [pod("a", owner=ref("ReplicaSet", "solo")), pod("loose")]
    computed = compute(budget(minAvailable="100%"), pods, lookup_from(rs), NOW)
    assert computed.unmanaged == ("loose",)
    assert (computed.status["expectedPods"], computed.status["desiredHealthy"]) == (2, 2)


def test_missing_controller_fails_safe() -> None:
    pods = [pod("a", owner=ref("ReplicaSet", "gone"))]
    with pytest.raises(SyncError, match='found no controllers for pod "a"'):
        compute(budget(maxUnavailable=1), pods, NOBODY, NOW)
    old = budget(maxUnavailable=1) | {"status": {"disruptionsAllowed": 2, "observedGeneration": 2}}
    safe = fail_safe(old, 'found no controllers for pod "a"', NOW)
    assert safe["disruptionsAllowed"] == 0
    assert safe["conditions"][0] | {"lastTransitionTime": ""} == {
        "type": "DisruptionAllowed",
        "status": "False",
        "reason": "SyncFailed",
        "message": 'found no controllers for pod "a"',
        "observedGeneration": 2,
        "lastTransitionTime": "",
    }


def test_bad_percentage_is_a_sync_error() -> None:
    rs = owner(r.REPLICASETS, "x", 2)
    with pytest.raises(SyncError, match="not a percentage"):
        compute(budget(maxUnavailable="half"), [pod("a", owner=ref("ReplicaSet", "x"))], lookup_from(rs), NOW)


def test_selector_null_selects_nothing_and_empty_selects_all() -> None:
    pods = [pod("a"), pod("b") | {"metadata": {"name": "b", "namespace": NS, "labels": {"tier": "db"}}}]
    nothing = budget(minAvailable=1)
    nothing["spec"]["selector"] = None
    assert compute(nothing, pods, NOBODY, NOW).status["expectedPods"] == 0
    everything = budget(minAvailable=1)
    everything["spec"]["selector"] = {}
    assert compute(everything, pods, NOBODY, NOW).status["expectedPods"] == 2


def test_recent_disruptions_are_not_healthy_and_expire_after_two_minutes() -> None:
    pdb = budget(minAvailable=1)
    pdb["status"] = {
        "disruptedPods": {
            "a": timestamp(NOW - timedelta(seconds=30)),  # evicted 30 s ago: on its way out
            "b": timestamp(NOW - timedelta(minutes=3)),  # never went: forgotten, healthy again
            "gone": timestamp(NOW - timedelta(seconds=10)),  # deleted: dropped
        }
    }
    computed = compute(pdb, [pod("a"), pod("b"), pod("c")], NOBODY, NOW)
    assert computed.status["disruptedPods"] == {"a": timestamp(NOW - timedelta(seconds=30))}
    assert computed.status["currentHealthy"] == 2
    assert computed.recheck == pytest.approx(90.0)


def test_deleting_pods_are_not_healthy() -> None:
    pods = [pod("a"), pod("b", deletionTimestamp="2026-12-05T12:00:30Z")]
    status = compute(budget(minAvailable=1), pods, NOBODY, NOW).status
    assert (status["currentHealthy"], status["disruptionsAllowed"]) == (1, 0)
    assert "disruptedPods" not in status


def test_condition_keeps_its_transition_time_while_unchanged() -> None:
    pdb = budget(minAvailable=1)
    first = compute(pdb, [pod("a"), pod("b")], NOBODY, NOW).status
    later = compute(pdb | {"status": first}, [pod("a"), pod("b")], NOBODY, NOW + timedelta(hours=1)).status
    assert later == first
    flipped = compute(pdb | {"status": first}, [pod("a")], NOBODY, NOW + timedelta(hours=1)).status
    assert flipped["conditions"][0]["lastTransitionTime"] == "2026-12-05T13:00:00Z"


class FakeClient:
    def __init__(self) -> None:
        self.writes: list[tuple[str, Obj, str]] = []
        self.events: list[tuple[str, str, str]] = []

    async def create(self, resource: r.Resource, namespace: str, obj: Obj) -> Obj:
        assert resource is r.EVENTS
        self.events.append((obj["type"], obj["reason"], obj["message"]))
        return obj

    async def replace(self, resource: r.Resource, namespace: str, obj: Obj, subresource: str = "") -> Obj:
        self.writes.append((namespace, obj, subresource))
        return obj


def test_controller_enqueues_budgets_of_changed_pods_and_writes_status() -> None:
    async def scenario() -> None:
        fake = FakeClient()
        client = cast(ApiClient, fake)
        controller = DisruptionController(client, InformerFactory(client))
        controller.pdbs.apply("ADDED", budget(minAvailable=1))
        assert await controller.queue.get() == "demo/web"
        controller.queue.done("demo/web")
        controller.pods.apply("ADDED", pod("a") | {"kind": "Pod"})
        controller.pods.apply("ADDED", pod("elsewhere", ns="other"))
        assert len(controller.queue) == 1
        await controller.sync("demo/web")
        assert len(fake.writes) == 1
        namespace, written, subresource = fake.writes[0]
        assert (namespace, subresource) == (NS, "status")
        assert written["status"]["expectedPods"] == 1
        assert written["metadata"]["resourceVersion"] == "7"  # compare-and-swap on what was read
        controller.pdbs.apply("MODIFIED", written)
        await controller.sync("demo/web")
        assert len(fake.writes) == 1  # nothing changed: no write
        await controller.sync("demo/absent")  # deleted budget: nothing to do
        controller.queue.shutdown()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("spec", "pods", "event"),
    [
        ({"minAvailable": 1}, [], ("Normal", "NoPods", "No matching pods found")),
        (
            {"minAvailable": "50%"},
            [pod("loose")],
            (
                "Warning",
                "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: app=web) were found to be unmanaged. "
                "As a result, the status of the PDB cannot be calculated correctly, which may result in "
                'undefined behavior. To account for these pods please set ".spec.minAvailable" field of the '
                "PDB to an integer value.",
            ),
        ),
        (
            {"maxUnavailable": 1},
            [pod("a", owner=ref("ReplicaSet", "gone"))],
            (
                "Warning",
                "CalculateExpectedPodCountFailed",
                'Failed to calculate the number of expected pods: found no controllers for pod "a"',
            ),
        ),
    ],
)
def test_controller_records_upstream_events_once_per_change(
    spec: Obj, pods: list[Obj], event: tuple[str, str, str]
) -> None:
    async def scenario() -> None:
        fake = FakeClient()
        client = cast(ApiClient, fake)
        controller = DisruptionController(client, InformerFactory(client))
        controller.pdbs.apply("ADDED", budget(**spec))
        for one in pods:
            controller.pods.apply("ADDED", one)
        await controller.sync("demo/web")
        assert fake.events == [event]
        controller.pdbs.apply("MODIFIED", fake.writes[-1][1])
        await controller.sync("demo/web")
        assert fake.events == [event]  # unchanged status: no write, no second Event
        controller.queue.shutdown()

    asyncio.run(scenario())
