"""Exercise 8's check and reset against a fake lab: objects from a dict, the note in data-0 scripted."""

from __future__ import annotations

from typing import Any

from nestlab.exercises.ex08_storage import EXERCISE, check, reset

Obj = dict[str, Any]
NS = "/api/v1/namespaces/ex08"
CLAIM = f"{NS}/persistentvolumeclaims/disk-data-0"
POD = f"{NS}/pods/data-0"


class FakeLab:
    """API paths answer from a dict; ``kubectl exec`` answers ``note``; commands are recorded."""

    name = "fake"

    def __init__(self, objects: dict[str, Obj], note: str = "written on esx-02\n") -> None:
        self.objects = objects
        self.note = note
        self.commands: list[tuple[str, ...]] = []

    def get(self, path: str) -> Obj | None:
        return self.objects.get(path)

    def items(self, path: str) -> list[Obj]:
        return []

    def kubectl(self, *args: str, check: bool = True) -> str:
        self.commands.append(args)
        return self.note if "exec" in args else ""

    def nestlab(self, *args: str, check: bool = True) -> str:
        raise AssertionError("exercise 8 runs no nestlab command")

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        raise AssertionError("exercise 8 logs in nowhere")

    def node_running(self, node: str) -> bool:
        return True


def done() -> dict[str, Obj]:
    """data-0 on esx-03 after it was replaced away from esx-02, which is uncordoned again."""
    return {
        NS: {"metadata": {"name": "ex08"}},
        "/apis/apps/v1/namespaces/ex08/statefulsets/data": {"metadata": {"name": "data"}},
        CLAIM: {"spec": {"storageClassName": "datastore"}, "status": {"phase": "Bound"}},
        POD: {
            "spec": {"nodeName": "esx-03"},
            "status": {"phase": "Running", "containerStatuses": [{"ready": True}]},
        },
        "/api/v1/nodes/esx-02": {"spec": {}},
        "/api/v1/nodes/esx-03": {"spec": {}},
    }


def test_the_finished_steps_pass() -> None:
    lab = FakeLab(done())
    assert check(lab) == []
    assert lab.commands == [("-n", "ex08", "exec", "data-0", "--", "cat", "/data/note")]


def test_an_empty_lab_names_step_one() -> None:
    assert check(FakeLab({})) == ["namespace ex08 does not exist yet (step 1)"]
    assert check(FakeLab({NS: {}})) == ["there is no statefulset data in ex08 (step 1)"]


def test_a_pending_claim_and_a_pending_pod() -> None:
    objects = done()
    objects[CLAIM]["status"] = {"phase": "Pending"}
    objects[POD]["status"] = {"phase": "Pending"}
    lab = FakeLab(objects)
    missing = check(lab)
    assert missing[0] == "claim disk-data-0 in ex08 is Pending, not Bound yet (step 2)"
    assert "data-0 is not running" in missing[1]
    assert lab.commands == []


def test_a_claim_of_another_class() -> None:
    objects = done()
    objects[CLAIM]["spec"]["storageClassName"] = "gold"
    assert check(FakeLab(objects)) == ["claim disk-data-0 in ex08 is of class gold, not datastore"]


def test_no_note_yet() -> None:
    (missing,) = check(FakeLab(done(), note="cat: can't open '/data/note': No such file or directory\n"))
    assert "has no /data/note" in missing


def test_a_pod_that_never_moved() -> None:
    (missing,) = check(FakeLab(done(), note="written on esx-03\n"))
    assert missing.startswith("data-0 still runs on esx-03, where it wrote its note")


def test_a_host_left_cordoned() -> None:
    objects = done()
    objects["/api/v1/nodes/esx-02"] = {"spec": {"unschedulable": True}}
    assert check(FakeLab(objects)) == ["host esx-02 is still cordoned (step 7: kubectl uncordon esx-02)"]


def test_reset_uncordons_the_host_of_the_note_then_deletes_the_namespace() -> None:
    objects = done()
    objects["/api/v1/nodes/esx-02"] = {"spec": {"unschedulable": True}}
    lab = FakeLab(objects)
    reset(lab)
    assert lab.commands[1] == ("uncordon", "esx-02")
    assert lab.commands[2][:2] == ("delete", "namespace")
    assert "ex08" in lab.commands[2]


def test_reset_leaves_hosts_alone_when_the_note_host_is_schedulable() -> None:
    lab = FakeLab(done())
    reset(lab)
    assert not any(c[0] == "uncordon" for c in lab.commands)


def test_reset_of_a_clean_lab_only_deletes_the_namespace() -> None:
    lab = FakeLab({})
    reset(lab)
    (command,) = lab.commands
    assert command[:2] == ("delete", "namespace")
    assert "--wait=true" in command


def test_the_exercise_names_its_file() -> None:
    assert (EXERCISE.number, EXERCISE.slug) == (8, "storage")
    assert not EXERCISE.destructive
