"""Exercise 5's check and reset against a fake lab holding the objects the steps would leave."""

from __future__ import annotations

import copy
from typing import Any

from nestlab.exercises.ex05_rolling_update import EXERCISE, check, reset

Obj = dict[str, Any]
NS_PATH = "/api/v1/namespaces/ex05"
DEPLOYMENT = "/apis/apps/v1/namespaces/ex05/deployments/web"
REPLICASETS = "/apis/apps/v1/namespaces/ex05/replicasets"
WEB1, WEB2 = "depot:5000/nestlab/web:1", "depot:5000/nestlab/web:2"


class FakeLab:
    """API paths answer from a dict; commands are recorded."""

    name = "fake"

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects
        self.commands: list[tuple[str, ...]] = []

    def get(self, path: str) -> Obj | None:
        found = self.objects.get(path)
        return found if isinstance(found, dict) else None

    def items(self, path: str) -> list[Obj]:
        found = self.objects.get(path)
        return list(found) if isinstance(found, list) else []

    def kubectl(self, *args: str, check: bool = True) -> str:
        self.commands.append(("kubectl", *args))
        return ""

    def nestlab(self, *args: str, check: bool = True) -> str:
        raise AssertionError("exercise 5 runs no nestlab command")

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        raise AssertionError("exercise 5 logs in nowhere")

    def node_running(self, node: str) -> bool:
        return True


def template(image: str) -> Obj:
    return {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}


def replicaset(image: str, revision: str, owner: str = "d-uid") -> Obj:
    return {
        "metadata": {
            "name": f"web-{revision}",
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"kind": "Deployment", "uid": owner, "controller": True}],
        },
        "spec": template(image),
    }


def done() -> dict[str, Any]:
    """The lab after the steps: web:2 rolled out to 3 replicas, web:1 in the history."""
    status = {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    return {
        NS_PATH: {"metadata": {"name": "ex05"}},
        DEPLOYMENT: {
            "metadata": {"name": "web", "uid": "d-uid", "generation": 4},
            "spec": {"replicas": 3, **template(WEB2)},
            "status": status,
        },
        REPLICASETS: [replicaset(WEB1, "1"), replicaset(WEB2, "2")],
    }


def test_the_finished_steps_pass() -> None:
    assert check(FakeLab(done())) == []


def test_an_empty_lab_names_step_one() -> None:
    assert check(FakeLab({})) == ["namespace ex05 does not exist yet (step 1)"]
    assert check(FakeLab({NS_PATH: {}})) == ["deployment web in ex05 does not exist yet (step 1)"]


def test_a_deployment_still_on_web_1_is_not_done() -> None:
    objects = done()
    objects[DEPLOYMENT]["spec"].update(template(WEB1))
    objects[REPLICASETS] = [replicaset(WEB1, "1")]
    (missing,) = check(FakeLab(objects))
    assert "does not run image web:2 yet" in missing
    assert WEB1 in missing


def test_a_deployment_created_with_web_2_has_no_history() -> None:
    objects = done()
    objects[REPLICASETS] = [replicaset(WEB2, "1"), replicaset(WEB1, "1", owner="someone-else")]
    (missing,) = check(FakeLab(objects))
    assert "no revision with web:1" in missing


def test_an_unfinished_rollout_is_named_with_its_counts() -> None:
    objects = done()
    objects[DEPLOYMENT]["status"].update(updatedReplicas=1, availableReplicas=3, replicas=4)
    (missing,) = check(FakeLab(objects))
    assert "1 of 3 replicas updated" in missing
    assert "rollout status" in missing


def test_a_status_from_an_older_generation_does_not_count() -> None:
    objects = done()
    objects[DEPLOYMENT]["metadata"]["generation"] = 5
    assert "has not finished rolling out" in check(FakeLab(objects))[0]


def test_five_replicas_are_not_three() -> None:
    objects = done()
    objects[DEPLOYMENT]["spec"]["replicas"] = 5
    assert check(FakeLab(objects)) == [
        "deployment web in ex05 asks for 5 replicas, not 3 (step 4 scales it back)"
    ]


def test_check_does_not_change_what_it_reads() -> None:
    objects = done()
    before = copy.deepcopy(objects)
    check(FakeLab(objects))
    assert objects == before


def test_reset_terminates_the_namespace_force_deletes_its_pods_then_waits() -> None:
    lab = FakeLab({})
    reset(lab)
    terminate, pods, wait = (c[1:] for c in lab.commands)
    assert terminate[:3] == ("delete", "namespace", "ex05")
    assert "--wait=false" in terminate
    assert pods[:5] == ("-n", "ex05", "delete", "pods", "--all")
    assert "--force" in pods
    assert "--grace-period=0" in pods
    assert wait[:3] == ("wait", "--for=delete", "namespace/ex05")


def test_the_exercise_names_its_file() -> None:
    assert (EXERCISE.number, EXERCISE.slug, EXERCISE.minutes) == (5, "rolling-update", 15)
    assert not EXERCISE.destructive
