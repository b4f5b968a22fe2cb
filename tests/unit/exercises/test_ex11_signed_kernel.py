"""Exercise 11's check and reset against the fake Lab of the exercise 9 tests."""

from __future__ import annotations

import pytest

from nestlab.exercises import ex11_signed_kernel as ex11
from nestlab.exercises.base import Obj
from tests.unit.exercises.test_ex09_host_failure import FakeLab


def pod(phase: str, created: str, reason: str | None = None, ready: bool = False) -> Obj:
    status: Obj = {"phase": phase, "containerStatuses": [{"ready": ready}]}
    if reason:
        status["reason"] = reason
    return {"metadata": {"creationTimestamp": created}, "spec": {"nodeName": "esx-03"}, "status": status}


@pytest.fixture
def done() -> FakeLab:
    """Exercise 11 as a learner leaves it: the tampered launch refused, the kernel repaired, a pod after."""
    lab = FakeLab()
    lab.objects["/api/v1/namespaces/ex11/pods/tampered"] = pod(
        "Failed", "2026-12-06T02:18:30Z", "KernelVerificationFailed"
    )
    lab.objects["/api/v1/namespaces/ex11/pods/after"] = pod("Running", "2026-12-06T02:19:00Z", ready=True)
    lab.ssh_answers.append(("esx-03", "sbverify", ex11.INTACT))
    return lab


def test_passes_after_refusal_repair_and_a_new_launch(done: FakeLab) -> None:
    assert ex11.check(done) == []


def test_a_fresh_lab_misses_every_step() -> None:
    missing = ex11.check(FakeLab())
    assert any("no pod ex11/tampered" in m for m in missing)
    assert any("not intact" in m for m in missing)
    assert any("ex11/after is not running on esx-03" in m for m in missing)


def test_a_tampered_pod_that_ran_was_not_refused(done: FakeLab) -> None:
    done.objects["/api/v1/namespaces/ex11/pods/tampered"] = pod("Running", "2026-12-06T02:18:30Z", ready=True)
    (missing,) = ex11.check(done)
    assert "was not refused (phase Running" in missing


def test_a_pod_started_before_the_refusal_does_not_count(done: FakeLab) -> None:
    done.objects["/api/v1/namespaces/ex11/pods/after"]["metadata"]["creationTimestamp"] = (
        "2026-12-06T02:10:00Z"
    )
    (missing,) = ex11.check(done)
    assert "started before ex11/tampered" in missing


def test_reset_reinstalls_only_a_broken_package(done: FakeLab) -> None:
    ex11.reset(done)
    assert not [c for c in done.commands("ssh") if "apt-get" in c[1]]
    broken = FakeLab()
    ex11.reset(broken)
    assert ("esx-03", ex11.REINSTALL) in broken.commands("ssh")
    assert broken.commands("kubectl")[-1][:3] == ("wait", "--for=delete", "namespace/ex11")
