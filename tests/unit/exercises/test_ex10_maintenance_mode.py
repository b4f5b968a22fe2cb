"""Exercise 10's check and reset against the fake Lab of the exercise 9 tests."""

from __future__ import annotations

import pytest

from nestlab.exercises import ex10_maintenance_mode as ex10
from nestlab.exercises.base import Obj
from tests.unit.exercises.test_ex09_host_failure import FakeLab, deployment, event

EVENTS = "/api/v1/namespaces/ex10/events"
PODS = "/api/v1/namespaces/ex10/pods"
PDB = "/apis/policy/v1/namespaces/ex10/poddisruptionbudgets/web"


def web_pod(name: str, host: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"app": "web"}}, "spec": {"nodeName": host}}


@pytest.fixture
def done() -> FakeLab:
    """Exercise 10 as a learner leaves it: budget relaxed, esx-03 emptied and back in service."""
    lab = FakeLab()
    lab.objects["/apis/apps/v1/namespaces/ex10/deployments/web"] = deployment()
    lab.objects[PDB] = {"spec": {"minAvailable": 2}}
    lab.lists[PODS] = [web_pod("web-a", "esx-01"), web_pod("web-b", "esx-02"), web_pod("web-c", "esx-02")]
    lab.lists[EVENTS] = [event("SuccessfulCreate", "ReplicaSet", "web-1", "2026-12-06T02:17:00Z")] * 4
    return lab


def test_passes_when_esx_03_was_emptied_under_the_budget(done: FakeLab) -> None:
    assert ex10.check(done) == []


def test_a_fresh_lab_misses_the_deployment() -> None:
    assert ex10.check(FakeLab()) == ["there is no Deployment ex10/web: create it with 3 replicas (step 1)"]


def test_a_strict_or_missing_budget_is_named(done: FakeLab) -> None:
    done.objects[PDB] = {"spec": {"minAvailable": 3}}
    assert ex10.check(done) == ["PodDisruptionBudget ex10/web has minAvailable 3, not 2 (step 4)"]
    del done.objects[PDB]
    assert ex10.check(done) == ["there is no PodDisruptionBudget ex10/web (step 2)"]


def test_a_pod_left_on_esx_03_and_no_replacement_mean_no_maintenance(done: FakeLab) -> None:
    done.lists[PODS][2] = web_pod("web-c", "esx-03")
    done.lists[EVENTS] = done.lists[EVENTS][:3]
    missing = ex10.check(done)
    assert "a pod of ex10/web still runs on esx-03: put it into maintenance mode (step 5)" in missing
    assert "no pod of ex10/web was evicted and replaced yet (step 5)" in missing


def test_a_terminating_pod_on_esx_03_does_not_count(done: FakeLab) -> None:
    gone = web_pod("web-old", "esx-03")
    gone["metadata"]["deletionTimestamp"] = "2026-12-06T02:18:00Z"
    done.lists[PODS].append(gone)
    assert ex10.check(done) == []


def test_a_host_still_in_maintenance_is_named(done: FakeLab) -> None:
    done.objects["/api/v1/nodes/esx-03"]["spec"]["unschedulable"] = True
    (missing,) = ex10.check(done)
    assert "esx-03 is still in maintenance mode" in missing
    assert "maintenance exit esx-03" in missing


def test_reset_takes_esx_03_out_of_maintenance_and_deletes_the_namespace(done: FakeLab) -> None:
    done.objects["/api/v1/nodes/esx-03"]["spec"]["unschedulable"] = True
    ex10.reset(done)
    assert ("host", "maintenance", "exit", "esx-03") in done.commands("nestlab")
    assert done.commands("kubectl")[-1][:3] == ("wait", "--for=delete", "namespace/ex10")
