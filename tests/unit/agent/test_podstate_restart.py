"""Pure pod-state logic for a pod VM that ended unexpectedly: restart counts, last state, terminal
state, the back-off schedule, and never reporting Running without a live VM."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.agent import podstate
from nestlab.runtime import control

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def record(policy: str = "Always", *names: str) -> podstate.PodRecord:
    return podstate.PodRecord(
        uid="u-1",
        namespace="ns",
        name="web",
        restart_policy=policy,
        containers=[podstate.ContainerState(name=n, image="demo/busybox:1") for n in names or ("main",)],
    )


def running(policy: str = "Always", *names: str) -> podstate.PodRecord:
    rec = record(policy, *names)
    for c in rec.containers:
        podstate.apply(rec, control.Started(c.name, 7, 0), when=T0)
    return rec


def test_a_restart_counts_one_per_started_container_and_keeps_the_lost_run_as_last_state() -> None:
    rec = running("Always", "main", "side")
    podstate.vm_ended(rec, restart=True, lost="ContainerStatusUnknown", message="host restarted", when=T1)

    assert rec.phase == "Pending"
    out = podstate.status(rec)
    assert out["phase"] == "Pending"
    for c in out["containerStatuses"]:
        assert c["restartCount"] == 1
        assert c["state"] == {"waiting": {"reason": "ContainerCreating", "message": "host restarted"}}
        assert c["lastState"]["terminated"] == {
            "exitCode": 137,
            "signal": 0,
            "reason": "ContainerStatusUnknown",
            "message": "host restarted",
            "startedAt": T0,
            "finishedAt": T1,
        }
        assert not c["ready"]


def test_pod_init_counting_from_zero_in_the_new_vm_continues_the_pods_restart_count() -> None:
    rec = running()
    podstate.vm_ended(rec, restart=True, lost="Error", message="killed")
    podstate.apply(rec, control.Started("main", 9, 0))
    assert rec.container("main").restarts == 1
    podstate.apply(rec, control.Exited("main", 1, 0, 0))  # a crash inside the new VM
    assert rec.container("main").restarts == 2
    podstate.apply(rec, control.Started("main", 10, 1))
    assert rec.container("main").restarts == 2
    assert rec.phase == "Running"


def test_a_container_already_in_crash_loop_back_off_is_not_counted_twice() -> None:
    rec = running()
    podstate.apply(rec, control.Exited("main", 3, 0, 0), when=T1)
    assert rec.container("main").restarts == 1
    podstate.vm_ended(rec, restart=True, lost="Error", message="killed")
    c = rec.container("main")
    assert c.restarts == 1
    assert c.last is not None
    assert c.last["exitCode"] == 3  # the real exit, not the lost VM
    podstate.apply(rec, control.Started("main", 9, 0))
    assert rec.container("main").restarts == 1


def test_a_container_that_never_started_counts_no_restart() -> None:
    rec = record()
    podstate.vm_ended(rec, restart=True, lost="Error", message="killed", waiting="CrashLoopBackOff")
    c = podstate.status(rec)["containerStatuses"][0]
    assert c["restartCount"] == 0
    assert c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert c["lastState"] == {}


@pytest.mark.parametrize(
    ("policy", "exited", "restarts"),
    [
        ("Always", None, True),
        ("Always", 0, True),
        ("OnFailure", None, True),
        ("OnFailure", 1, True),
        ("OnFailure", 0, False),
        ("Never", None, False),
    ],
)
def test_restart_policy_decides_whether_a_lost_vm_is_started_again(
    policy: str, exited: int | None, restarts: bool
) -> None:
    rec = running(policy)
    if exited is not None:
        podstate.apply(rec, control.Exited("main", exited, 0, 0))
    assert podstate.restarts_vm(rec) is restarts


def test_never_gets_failed_with_the_running_container_terminated_137() -> None:
    rec = running("Never")
    podstate.vm_ended(rec, restart=False, lost="ContainerStatusUnknown", message="VM gone", when=T1)
    out = podstate.status(rec)
    assert (out["phase"], out["reason"], out["message"]) == ("Failed", "VmExited", "VM gone")
    terminated = out["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "ContainerStatusUnknown")


def test_a_pod_whose_containers_all_succeeded_is_succeeded_even_without_pod_init_saying_so() -> None:
    rec = running("OnFailure")
    podstate.apply(rec, control.Exited("main", 0, 0, 0))
    podstate.vm_ended(rec, restart=podstate.restarts_vm(rec), lost="Error", message="VM gone")
    assert rec.phase == "Succeeded"
    assert podstate.status(rec)["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_running_is_never_reported_without_a_live_vm() -> None:
    rec = running()
    assert podstate.status(rec, vm_alive=True)["phase"] == "Running"
    out = podstate.status(rec, vm_alive=False)
    assert out["phase"] == "Pending"
    c = out["containerStatuses"][0]
    assert "running" not in c["state"]
    assert c["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert not c["ready"]
    assert {x["type"]: x["status"] for x in out["conditions"]}["Ready"] == "False"
    assert rec.phase == "Running", "the record itself is not changed"


def test_recover_rebuilds_restart_counts_from_the_last_reported_status() -> None:
    rec = record("Always", "main", "side")
    reported = {
        "phase": "Running",
        "startTime": T0,
        "containerStatuses": [
            {"name": "main", "restartCount": 2, "state": {"running": {"startedAt": T0}}, "lastState": {}},
            {"name": "side", "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
        ],
    }
    assert podstate.recover(rec, reported)
    podstate.vm_ended(rec, restart=True, lost="ContainerStatusUnknown", message="lost")
    assert [c.restarts for c in rec.containers] == [3, 0]
    assert rec.start_time == T0
    assert not podstate.recover(record(), {"phase": "Pending"})


def test_back_off_doubles_from_ten_seconds_to_five_minutes_and_resets_after_ten() -> None:
    backoff = podstate.KUBELET_BACKOFF
    assert [backoff.delay(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.resets_after(600)
    assert not backoff.resets_after(599)
    assert podstate.Backoff(0.01, 0.04).delay(9) == 0.04


def test_old_records_without_a_base_still_load(tmp_path: Path) -> None:
    rec = running()
    rec.save(tmp_path / "record.json")
    text = (tmp_path / "record.json").read_text().replace('"base": 0,', "")
    (tmp_path / "record.json").write_text(text)
    assert podstate.PodRecord.load(tmp_path / "record.json").container("main").base == 0
