"""Exercise 13's check and reset against the fake Lab of the exercise 9 tests."""

from __future__ import annotations

import pytest

from nestlab.exercises import ex13_control_plane_failover as ex13
from tests.unit.exercises.test_ex09_host_failure import FakeLab

VIP = "2: host0    inet 198.18.100.5/24 scope global secondary host0"
MEMBER = "127.0.0.1:2379, e51dee7654251b8d, 3.4.23, 8.5 MB, false, false, 4, 4298, 4298,"


@pytest.fixture
def done() -> FakeLab:
    """Exercise 13 as a learner leaves it: both failovers logged, everything back."""
    lab = FakeLab()
    lab.objects["/api/v1/namespaces/ex13"] = {"metadata": {"creationTimestamp": "2026-12-06T02:21:45Z"}}
    for name in ex13.CONFIGMAPS:
        lab.objects[f"/api/v1/namespaces/ex13/configmaps/{name}"] = {"metadata": {"name": name}}
    lab.ssh_answers += [
        ("lb-2", "Entering MASTER STATE", "1"),
        ("cp-2", "became leader at term", "1"),
        ("lb-1", "ip -4 -o addr show", VIP),
        *((cp, "endpoint status", MEMBER) for cp in ex13.CONTROL_PLANE),
    ]
    return lab


def test_passes_after_both_failovers_and_the_restore(done: FakeLab) -> None:
    assert ex13.check(done) == []


def test_the_journals_are_read_since_the_namespace_was_made(done: FakeLab) -> None:
    ex13.check(done)
    assert any("--since @1796523705" in c[1] for c in done.commands("ssh")), done.commands("ssh")


def test_a_fresh_lab_misses_the_namespace() -> None:
    assert ex13.check(FakeLab()) == ["there is no namespace ex13 (step 3)"]


def test_no_vip_move_and_no_election_are_named(done: FakeLab) -> None:
    done.ssh_answers = [
        a for a in done.ssh_answers if a[1] not in ("Entering MASTER STATE", "became leader at term")
    ]
    missing = ex13.check(done)
    assert any("VIP has not moved to lb-2" in m for m in missing)
    assert any("etcd has not elected a new leader" in m for m in missing)


def test_stopped_nodes_and_a_missing_configmap_are_named(done: FakeLab) -> None:
    done.running["cp-2"] = False
    del done.objects["/api/v1/namespaces/ex13/configmaps/written-without-the-leader"]
    missing = ex13.check(done)
    assert any("still stopped: cp-2" in m for m in missing)
    assert any("ConfigMap ex13/written-without-the-leader" in m for m in missing)


def test_the_vip_elsewhere_means_the_control_plane_is_not_whole(done: FakeLab) -> None:
    done.ssh_answers = [a for a in done.ssh_answers if a[0] != "lb-1"]
    assert ex13.check(done) == ["the control plane is not whole again: lb-1 does not hold the VIP"]


def test_reset_starts_the_stopped_leader_and_waits_for_etcd(done: FakeLab) -> None:
    done.running["cp-1"] = False
    ex13.reset(done)
    assert ("node", "start", "cp-1") in done.commands("nestlab")
    assert done.commands("kubectl")[-1][:3] == ("wait", "--for=delete", "namespace/ex13")
