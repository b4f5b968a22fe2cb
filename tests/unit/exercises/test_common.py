"""The exercises' shared namespace deletion: graceful by default, forced for resets."""

from __future__ import annotations

from nestlab.exercises.common import delete_namespaces
from tests.unit.exercises.fakelab import FakeLab


def test_graceful_delete_is_one_waiting_command() -> None:
    lab = FakeLab()
    delete_namespaces(lab, "ex08")
    assert lab.ran == [
        ("kubectl", "delete", "namespace", "ex08", "--ignore-not-found", "--wait=true", "--timeout=300s")
    ]


def test_forced_delete_terminates_force_deletes_every_namespaces_pods_then_waits_for_them() -> None:
    lab = FakeLab()
    delete_namespaces(lab, "ex04", "ex04-other", force=True)
    terminate, first_pods, other_pods, wait = lab.ran
    assert terminate == (
        "kubectl",
        "delete",
        "namespace",
        "ex04",
        "ex04-other",
        "--ignore-not-found",
        "--wait=false",
    )
    for pods, namespace in ((first_pods, "ex04"), (other_pods, "ex04-other")):
        assert pods == ("kubectl", "-n", namespace, "delete", "pods", "--all", "--force", "--grace-period=0")
    # waited for, not deleted a second time (a second delete starts a second sweeper)
    assert wait == (
        "kubectl",
        "wait",
        "--for=delete",
        "namespace/ex04",
        "namespace/ex04-other",
        "--timeout=300s",
    )
