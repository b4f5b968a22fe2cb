"""Exercise 12's check and reset against the fake Lab of the exercise 9 tests."""

from __future__ import annotations

import pytest

from nestlab.exercises import ex12_attestation as ex12
from nestlab.exercises.base import Obj
from tests.unit.exercises.test_ex09_host_failure import FakeLab, deployment

NODE = "/api/v1/nodes/esx-02"
PODS = "/api/v1/namespaces/ex12/pods"


def attested(status: str, changed: str) -> Obj:
    return {"type": "Attested", "status": status, "lastTransitionTime": changed}


@pytest.fixture
def done() -> FakeLab:
    """Exercise 12 as a learner leaves it: esx-02 failed and passed again; web placed elsewhere."""
    lab = FakeLab()
    lab.objects["/api/v1/namespaces/ex12"] = {"metadata": {"creationTimestamp": "2026-12-06T02:20:00Z"}}
    lab.objects[NODE]["status"]["conditions"].append(attested("True", "2026-12-06T02:20:31Z"))
    lab.objects["/apis/apps/v1/namespaces/ex12/deployments/web"] = deployment()
    lab.lists[PODS] = [
        {"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": host}}
        for host in ("esx-01", "esx-03", "esx-03")
    ]
    return lab


def test_passes_after_a_failed_and_recovered_verdict(done: FakeLab) -> None:
    assert ex12.check(done) == []


def test_a_fresh_lab_misses_the_namespace() -> None:
    assert ex12.check(FakeLab()) == ["there is no namespace ex12 (step 1)"]


def test_a_verdict_that_never_changed_since_the_start_is_not_enough(done: FakeLab) -> None:
    done.objects[NODE]["status"]["conditions"][-1] = attested("True", "2026-12-06T02:00:00Z")
    (missing,) = ex12.check(done)
    assert "has not failed and recovered since ex12 began" in missing


def test_a_host_still_failing_and_tainted_is_named(done: FakeLab) -> None:
    done.objects[NODE]["status"]["conditions"][-1] = attested("False", "2026-12-06T02:20:09Z")
    done.objects[NODE]["spec"]["taints"] = [{"key": ex12.TAINT, "effect": "NoSchedule"}]
    missing = ex12.check(done)
    assert "esx-02 does not attest again: reset its TPM (step 7)" in missing
    assert any(ex12.TAINT in m for m in missing)


def test_a_web_pod_on_esx_02_means_it_was_placed_before_the_taint(done: FakeLab) -> None:
    done.lists[PODS][0]["spec"]["nodeName"] = "esx-02"
    (missing,) = ex12.check(done)
    assert missing.startswith("a pod of ex12/web runs on esx-02")


def test_reset_resets_the_tpm_only_when_esx_02_fails_and_waits_for_a_pass(done: FakeLab) -> None:
    ex12.reset(done)
    assert ("esx-02", ex12.TPM_RESET) not in done.commands("ssh")
    failing = FakeLab()
    failing.attest_output = "0 of 1 host(s) passed attestation"

    def reset_tpm() -> str:
        failing.attest_output = ex12.PASSED
        return ""

    failing.ssh_answers.append(("esx-02", "nestlab-swtpm", reset_tpm))
    ex12.reset(failing)
    assert ("esx-02", ex12.TPM_RESET) in failing.commands("ssh")
    assert failing.commands("kubectl")[-1][:3] == ("wait", "--for=delete", "namespace/ex12")
