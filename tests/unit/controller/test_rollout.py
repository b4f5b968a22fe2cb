"""Rollout arithmetic against upstream's numbers (deployment/util and the Deployment docs)."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.controller import rollout

Obj = dict[str, Any]


def deploy(replicas: int, surge: Any = None, unavailable: Any = None, strategy: str = "RollingUpdate") -> Obj:
    rolling = {k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable)) if v is not None}
    spec: Obj = {
        "replicas": replicas,
        "strategy": {"type": strategy},
        "template": {"metadata": {"labels": {"a": "b"}}},
    }
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = rolling
    return {"metadata": {"name": "web", "annotations": {}}, "spec": spec, "status": {}}


def rs(
    name: str,
    replicas: int,
    available: int = 0,
    created: str = "2026-01-01T00:00:00Z",
    ann: dict[str, str] | None = None,
) -> Obj:
    return {
        "metadata": {"name": name, "creationTimestamp": created, "annotations": dict(ann or {})},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "availableReplicas": available},
    }


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (10, None, None, (3, 2)),  # defaults 25%/25%: surge rounds up, unavailable down
        (1, None, None, (1, 0)),
        (3, "0%", "0%", (0, 1)),  # both zero: unavailable becomes 1 so a rollout can progress
        (3, 1, 0, (1, 0)),
        (10, "30%", "15%", (3, 1)),
        (4, "50%", 3, (2, 3)),
    ],
)
def test_fenceposts(replicas: int, surge: Any, unavailable: Any, expected: tuple[int, int]) -> None:
    assert rollout.fenceposts(deploy(replicas, surge, unavailable)) == expected


def test_max_unavailable_is_capped_and_zero_for_recreate() -> None:
    assert rollout.max_unavailable(deploy(2, 0, 5)) == 2
    assert rollout.max_unavailable(deploy(3, strategy="Recreate")) == 0
    assert rollout.max_surge(deploy(3, strategy="Recreate")) == 0


def test_new_rs_grows_within_max_surge() -> None:
    d = deploy(10, 3, 2)
    old, new = rs("old", 10, 10), rs("new", 0)
    assert rollout.new_rs_replicas(d, [old, new], new) == 3
    old, new = rs("old", 10, 10), rs("new", 3)
    assert rollout.new_rs_replicas(d, [old, new], new) == 3  # at 13 already: no more
    assert rollout.new_rs_replicas(deploy(3, strategy="Recreate"), [], rs("new", 0)) == 3


def test_max_unavailable_zero_rolls_one_at_a_time() -> None:
    d = deploy(3, 1, 0)
    old, new = rs("old", 3, 3), rs("new", 0)
    assert rollout.new_rs_replicas(d, [old, new], new) == 1
    new = rs("new", 1, 0)  # surged pod not yet available: nothing old may go
    assert rollout.old_scale_room([old, new], new, d) == 0
    new = rs("new", 1, 1)
    assert rollout.old_scale_room([old, new], new, d) == 1
    assert rollout.cleanup_unhealthy([old], 1) == []
    plans = rollout.scale_down_old([old, new], [old], d)
    assert [(p["metadata"]["name"], size) for p, size in plans] == [("old", 2)]


def test_unhealthy_old_replicas_go_first_oldest_first() -> None:
    older = rs("older", 2, 0, "2026-01-01T00:00:00Z")
    old = rs("old", 3, 1, "2026-01-02T00:00:00Z")
    plans = rollout.cleanup_unhealthy([old, older], 3)
    assert [(p["metadata"]["name"], size) for p, size in plans] == [("older", 0), ("old", 2)]


def test_proportional_scaling_matches_the_docs_example() -> None:
    # docs: 10 replicas, maxSurge 3, maxUnavailable 2; rollout stuck with old 8 and new 5; scale to 15:
    # "3 replicas are added to the old ReplicaSet and 2 replicas are added to the new ReplicaSet".
    d = deploy(15, 3, 2)
    old = rs("old", 8, 8, "2026-01-01T00:00:00Z", ann={rollout.MAX_REPLICAS: "13"})
    new = rs("new", 5, 0, "2026-01-02T00:00:00Z", ann={rollout.MAX_REPLICAS: "13"})
    sizes = {p["metadata"]["name"]: size for p, size in rollout.proportional(d, [new, old])}
    assert sizes == {"old": 11, "new": 7}


def test_proportional_scale_down_and_to_zero() -> None:
    d = deploy(5, 1, 0)
    old = rs("old", 6, 6, "2026-01-01T00:00:00Z", ann={rollout.MAX_REPLICAS: "11"})
    new = rs("new", 5, 5, "2026-01-02T00:00:00Z", ann={rollout.MAX_REPLICAS: "11"})
    sizes = {p["metadata"]["name"]: size for p, size in rollout.proportional(d, [old, new])}
    assert sum(sizes.values()) == 6
    zero = {p["metadata"]["name"]: s for p, s in rollout.proportional(deploy(0, 1, 0), [old, new])}
    assert zero == {"old": 0, "new": 0}


def test_template_hash_is_stable_safe_and_changes_with_collisions() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    first = rollout.template_hash(template)
    assert first == rollout.template_hash({"spec": template["spec"], "metadata": template["metadata"]})
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert 1 <= len(first) <= 10
    assert rollout.template_hash(template, 1) != first


def test_same_template_ignores_the_hash_label() -> None:
    mine = {"metadata": {"labels": {"app": "web"}}, "spec": {"x": 1}}
    theirs = {"metadata": {"labels": {"app": "web", rollout.HASH_LABEL: "abc"}}, "spec": {"x": 1}}
    assert rollout.same_template(mine, theirs)
    assert not rollout.same_template(mine, {**theirs, "spec": {"x": 2}})
    undone = {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}, "annotations": {}},
        "spec": {"x": 1},
    }
    assert rollout.same_template(mine, undone)  # what kubectl rollout undo sends back


def test_new_rs_annotations_copy_change_cause_and_set_replicas() -> None:
    d = deploy(3, 1, 0)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "set image", rollout.REVISION: "9"}
    annotations, changed = rollout.new_rs_annotations(d, rs("new", 0), 2, exists=False)
    assert changed
    assert annotations == {
        "kubernetes.io/change-cause": "set image",
        rollout.REVISION: "2",
        rollout.DESIRED_REPLICAS: "3",
        rollout.MAX_REPLICAS: "4",
    }


def test_reused_rs_keeps_its_old_revisions_in_history() -> None:
    d = deploy(3)
    reused = rs("v1", 0, ann={rollout.REVISION: "1"})
    annotations, changed = rollout.new_rs_annotations(d, reused, 4, exists=True)
    assert changed
    assert annotations[rollout.REVISION] == "4"
    assert annotations[rollout.REVISION_HISTORY] == "1"
    reused["metadata"]["annotations"] = annotations
    annotations, _ = rollout.new_rs_annotations(d, reused, 6, exists=True)
    assert annotations[rollout.REVISION_HISTORY] == "1,4"
    assert (
        rollout.new_rs_annotations(d, reused | {"metadata": {"annotations": annotations}}, 6, True)[1]
        is False
    )


def test_find_new_takes_the_oldest_matching() -> None:
    d = deploy(1)
    template = d["spec"]["template"]
    first = rs("a", 0, created="2026-01-01T00:00:00Z") | {"spec": {"template": template}}
    second = rs("b", 0, created="2026-01-02T00:00:00Z") | {"spec": {"template": template}}
    assert rollout.find_new(d, [second, first]) is first
    assert rollout.find_new(d, [rs("c", 0) | {"spec": {"template": {}}}]) is None


def test_revision_history_limit_deletes_the_oldest_empty_ones() -> None:
    d = deploy(1)
    d["spec"]["revisionHistoryLimit"] = 1
    olds = [rs(f"r{i}", 0, ann={rollout.REVISION: str(i)}) for i in (3, 1, 2)]
    busy = rs("busy", 1, ann={rollout.REVISION: "0"})
    assert [r["metadata"]["name"] for r in rollout.to_clean(d, [*olds, busy])] == ["r1", "r2"]


def test_scaling_event_and_saturation() -> None:
    d = deploy(5)
    assert rollout.is_scaling_event(d, [rs("a", 3, ann={rollout.DESIRED_REPLICAS: "3"})])
    assert not rollout.is_scaling_event(d, [rs("a", 5, ann={rollout.DESIRED_REPLICAS: "5"})])
    assert rollout.saturated(d, rs("a", 5, 5, ann={rollout.DESIRED_REPLICAS: "5"}))
    assert not rollout.saturated(d, rs("a", 5, 4, ann={rollout.DESIRED_REPLICAS: "5"}))
