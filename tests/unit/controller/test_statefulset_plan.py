"""StatefulSet decisions: ordinal names and identity, ordering, recreation, scale-down, rolling updates."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.controller import ordinals, revisions

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def sts(replicas: int = 3, image: str = "web:1", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "demo", "uid": "sts-uid", "generation": 2},
        "spec": {
            "replicas": replicas,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            **spec,
        },
    }


def revision(owner: Obj, number: int = 1) -> Obj:
    return revisions.new_revision(owner, "StatefulSet", number, 0)


REV1 = revision(sts())
REV2 = revision(sts(image="web:2"), 2)


def pod(ordinal: int, phase: str = "Running", ready: bool = True, rev: Obj = REV1, **meta: Any) -> Obj:
    created = ordinals.new_pod(sts(), ordinal, rev)
    created["metadata"].update(uid=f"uid-{ordinal}", **meta)
    created["status"] = {
        "phase": phase,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": "2026-12-05T11:00:00Z",
            }
        ],
    }
    return created


def names(objs: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_new_pod_identity() -> None:
    created = ordinals.new_pod(sts(), 1, REV1)
    meta = created["metadata"]
    assert meta["name"] == "web-1"
    assert "generateName" not in meta
    assert meta["labels"] == {
        "app": "web",
        "statefulset.kubernetes.io/pod-name": "web-1",
        "apps.kubernetes.io/pod-index": "1",
        "controller-revision-hash": REV1["metadata"]["name"],
    }
    assert meta["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "sts-uid",
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert (created["spec"]["hostname"], created["spec"]["subdomain"]) == ("web-1", "web")


def test_ordinal_of() -> None:
    assert ordinals.ordinal_of("web", "web-12") == 12
    assert ordinals.ordinal_of("web", "web-x") is None
    assert ordinals.ordinal_of("web", "webby-1") is None


def test_ordered_ready_creates_one_at_a_time() -> None:
    plan = ordinals.plan(sts(), [], REV1, REV1, NOW)
    assert names(plan.create) == ["web-0"]
    assert plan.status["replicas"] == 1
    # web-0 exists but is not ready yet: nothing more
    assert ordinals.plan(sts(), [pod(0, "Pending", ready=False)], REV1, REV1, NOW).create == []
    assert ordinals.plan(sts(), [pod(0, ready=False)], REV1, REV1, NOW).create == []
    # web-0 Running and Ready: web-1 next
    assert names(ordinals.plan(sts(), [pod(0)], REV1, REV1, NOW).create) == ["web-1"]


def test_parallel_creates_all() -> None:
    plan = ordinals.plan(sts(podManagementPolicy="Parallel"), [], REV1, REV1, NOW)
    assert names(plan.create) == ["web-0", "web-1", "web-2"]


def test_deleted_pod_comes_back_under_the_same_name() -> None:
    plan = ordinals.plan(sts(), [pod(0), pod(2)], REV1, REV1, NOW)
    assert names(plan.create) == ["web-1"]
    assert plan.delete == []


def test_failed_pod_is_deleted_then_recreated_once_gone() -> None:
    plan = ordinals.plan(sts(), [pod(0), pod(1, "Failed", ready=False), pod(2)], REV1, REV1, NOW)
    assert plan.delete == [ordinals.Deletion("web-1", "uid-1", "failed")]
    assert plan.create == []
    terminating = pod(1, "Failed", ready=False, deletionTimestamp="2026-12-05T12:00:00Z")
    again = ordinals.plan(sts(), [pod(0), terminating, pod(2)], REV1, REV1, NOW)
    assert (again.create, again.delete) == ([], [])  # wait until it is gone
    assert names(ordinals.plan(sts(), [pod(0), pod(2)], REV1, REV1, NOW).create) == ["web-1"]


def test_scale_down_highest_first_one_at_a_time() -> None:
    pods = [pod(i) for i in range(5)]
    plan = ordinals.plan(sts(replicas=2), pods, REV1, REV1, NOW)
    assert plan.delete == [ordinals.Deletion("web-4", "uid-4", "condemned")]
    pods[4]["metadata"]["deletionTimestamp"] = "2026-12-05T12:00:00Z"
    assert ordinals.plan(sts(replicas=2), pods, REV1, REV1, NOW).delete == []
    parallel = ordinals.plan(sts(replicas=2, podManagementPolicy="Parallel"), pods[:4], REV1, REV1, NOW)
    assert [d.name for d in parallel.delete] == ["web-3", "web-2"]


def test_scale_down_waits_for_unhealthy_pods() -> None:
    pods = [pod(0, ready=False), pod(1), pod(2)]
    assert ordinals.plan(sts(replicas=2), pods, REV1, REV1, NOW).delete == []


def test_rolling_update_from_the_highest_ordinal_one_at_a_time() -> None:
    new = sts(image="web:2")
    pods = [pod(i) for i in range(3)]
    plan = ordinals.plan(new, pods, REV1, REV2, NOW)
    assert plan.delete == [ordinals.Deletion("web-2", "uid-2", "update")]
    # web-2 recreated at the update revision but not ready yet: wait
    pods[2] = pod(2, ready=False, rev=REV2)
    assert ordinals.plan(new, pods, REV1, REV2, NOW).delete == []
    pods[2] = pod(2, rev=REV2)
    assert [d.name for d in ordinals.plan(new, pods, REV1, REV2, NOW).delete] == ["web-1"]
    # a gap is filled at the update revision
    plan = ordinals.plan(new, [pods[0], pods[2]], REV1, REV2, NOW)
    assert plan.create[0]["metadata"]["labels"]["controller-revision-hash"] == REV2["metadata"]["name"]


def test_rolling_update_respects_the_partition() -> None:
    new = sts(image="web:2", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    pods = [pod(0), pod(1), pod(2, rev=REV2)]
    assert ordinals.plan(new, pods, REV1, REV2, NOW).delete == []
    # below the partition a missing pod comes back at the current revision
    plan = ordinals.plan(new, [pod(0), pods[2]], REV1, REV2, NOW)
    assert plan.create[0]["metadata"]["labels"]["controller-revision-hash"] == REV1["metadata"]["name"]


def test_max_unavailable() -> None:
    new = sts(image="web:2", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}})
    plan = ordinals.plan(new, [pod(i) for i in range(3)], REV1, REV2, NOW)
    assert [d.name for d in plan.delete] == ["web-2", "web-1"]


def test_on_delete_leaves_pods_alone() -> None:
    new = sts(image="web:2", updateStrategy={"type": "OnDelete"})
    plan = ordinals.plan(new, [pod(i) for i in range(3)], REV1, REV2, NOW)
    assert plan.delete == []
    plan = ordinals.plan(new, [pod(0), pod(2)], REV1, REV2, NOW)
    assert plan.create[0]["metadata"]["labels"]["controller-revision-hash"] == REV2["metadata"]["name"]


def test_status_counts_and_completed_rollout() -> None:
    new = sts(image="web:2")
    status = ordinals.plan(new, [pod(0), pod(1, rev=REV2), pod(2, rev=REV2)], REV1, REV2, NOW).status
    assert status == {
        "observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "currentReplicas": 1, "updatedReplicas": 2,
        "currentRevision": REV1["metadata"]["name"], "updateRevision": REV2["metadata"]["name"],
        "collisionCount": 0,
    }  # fmt: skip
    done = ordinals.plan(new, [pod(i, rev=REV2) for i in range(3)], REV1, REV2, NOW).status
    assert (done["currentRevision"], done["currentReplicas"]) == (REV2["metadata"]["name"], 3)


def test_min_ready_seconds_requeues_until_available() -> None:
    fresh = pod(0)
    fresh["status"]["conditions"][0]["lastTransitionTime"] = "2026-12-05T11:59:55Z"
    plan = ordinals.plan(sts(minReadySeconds=10), [fresh], REV1, REV1, NOW)
    assert plan.create == []
    assert plan.requeue_after == 5.0
    assert plan.status["availableReplicas"] == 0
    later = ordinals.plan(sts(minReadySeconds=10), [fresh], REV1, REV1, NOW + timedelta(seconds=6))
    assert names(later.create) == ["web-1"]


def test_a_deleting_set_only_reports_status() -> None:
    deleting = sts()
    deleting["metadata"]["deletionTimestamp"] = "2026-12-05T12:00:00Z"
    plan = ordinals.plan(deleting, [pod(0)], REV1, REV1, NOW)
    assert (plan.create, plan.delete, plan.status["replicas"]) == ([], [], 1)


def test_revision_shape() -> None:
    assert REV1["metadata"]["name"].startswith("web-")
    digest = REV1["metadata"]["labels"]["controller-revision-hash"]
    assert REV1["metadata"]["name"] == f"web-{digest}"
    assert set(digest) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert REV1["data"]["spec"]["template"]["$patch"] == "replace"
    assert revisions.template_of(REV1) == sts()["spec"]["template"]
    assert REV1["metadata"]["name"] != REV2["metadata"]["name"]
    assert revisions.hash_of(REV1["data"], 1) != digest  # the collision count changes the name
    assert revisions.same_template(REV1, revisions.revision_data(copy.deepcopy(sts())))


def test_history_pruning_keeps_live_and_newest() -> None:
    history = [{"metadata": {"name": f"web-{n}"}, "revision": n} for n in range(1, 6)]
    assert revisions.to_prune(history, {"web-1"}, 2) == ["web-2", "web-3"]
    assert revisions.next_number(history) == 6


def test_start_ordinal() -> None:
    shifted = sts(replicas=2, ordinals={"start": 1}, podManagementPolicy="Parallel")
    plan = ordinals.plan(shifted, [pod(0)], REV1, REV1, NOW)
    assert names(plan.create) == ["web-1", "web-2"]
    assert [d.name for d in plan.delete] == ["web-0"]  # below the start: out of range, removed
