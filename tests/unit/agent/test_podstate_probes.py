"""Init containers, readiness, startup and liveness kills in the Pod status the agent reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nestlab.agent import podstate
from nestlab.runtime import control

POD: dict[str, Any] = {
    "metadata": {"namespace": "default", "name": "web", "uid": "u-1"},
    "spec": {
        "restartPolicy": "Always",
        "initContainers": [{"name": "one", "image": "busybox"}, {"name": "two", "image": "busybox"}],
        "containers": [
            {"name": "app", "image": "nginx", "readinessProbe": {"httpGet": {"port": 80}}},
            {"name": "side", "image": "busybox", "startupProbe": {"tcpSocket": {"port": 9}}},
        ],
    },
}


def record(pod: dict[str, Any] = POD) -> podstate.PodRecord:
    return podstate.new_record("u-1", pod, "198.18.0.2", Path("/nonexistent"))


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("message", "")) for c in status["conditions"]}


def waiting(statuses: list[dict[str, Any]]) -> list[str]:
    return [s["state"].get("waiting", {}).get("reason", "") for s in statuses]


def test_while_init_containers_run_the_app_containers_wait_pod_initializing() -> None:
    r = record()
    status = podstate.status(r)
    assert waiting(status["initContainerStatuses"]) == ["PodInitializing", "PodInitializing"]
    assert waiting(status["containerStatuses"]) == ["PodInitializing", "PodInitializing"]
    for c in r.all():  # what the agent writes once an image is pulled
        c.reason = "ContainerCreating"
    assert waiting(podstate.status(r)["initContainerStatuses"]) == ["PodInitializing", "PodInitializing"]
    podstate.apply(r, control.Started("one", 10, 0))
    podstate.apply(r, control.Exited("one", 0, 0, 0))
    podstate.apply(r, control.Started("two", 11, 0))
    status = podstate.status(r)
    one, two = status["initContainerStatuses"]
    assert one["state"]["terminated"]["reason"] == "Completed"
    assert "running" in two["state"]
    assert conditions(status)["Initialized"] == ("False", "containers with incomplete status: [two]")
    assert conditions(status)["Ready"][0] == "False"
    assert status["phase"] == "Pending"  # upstream: Pending until every init container succeeded
    podstate.apply(r, control.Exited("two", 0, 0, 0))
    podstate.apply(r, control.Started("app", 12, 0))
    assert podstate.status(r)["phase"] == "Running"


def test_a_failing_init_container_crash_loops_unless_never() -> None:
    r = record()
    podstate.apply(r, control.Started("one", 10, 0))
    podstate.apply(r, control.Exited("one", 1, 0, 0))
    one = podstate.status(r)["initContainerStatuses"][0]
    assert podstate.status(r)["phase"] == "Pending"
    assert one["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert (one["restartCount"], one["lastState"]["terminated"]["exitCode"]) == (1, 1)

    never = record({**POD, "spec": {**POD["spec"], "restartPolicy": "Never"}})
    podstate.apply(never, control.Started("one", 10, 0))
    podstate.apply(never, control.Exited("one", 2, 0, 0))
    podstate.apply(never, control.PodDone("web", "Failed"))
    status = podstate.status(never, vm_alive=False)
    assert status["phase"] == "Failed"
    terminated = status["initContainerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (2, "Error")
    assert waiting(status["containerStatuses"]) == ["PodInitializing", "PodInitializing"]


def initialized() -> podstate.PodRecord:
    r = record()
    for name in ("one", "two"):
        podstate.apply(r, control.Started(name, 10, 0))
        podstate.apply(r, control.Exited(name, 0, 0, 0))
    podstate.apply(r, control.Started("app", 12, 0))
    podstate.apply(r, control.Started("side", 13, 0))
    return r


def ready_started(status: dict[str, Any]) -> list[tuple[bool, bool]]:
    return [(s["ready"], s["started"]) for s in status["containerStatuses"]]


def test_readiness_and_startup_decide_ready_started_and_the_conditions() -> None:
    r = initialized()
    status = podstate.status(r)
    # app: no startup probe (started), readiness not yet passed; side: startup not yet passed
    assert ready_started(status) == [(False, True), (False, False)]
    assert conditions(status)["Ready"] == ("False", "containers with unready status: [app side]")
    assert conditions(status)["Initialized"] == ("True", "")
    podstate.apply(r, control.ProbeResult("app", "readiness", True, True))
    podstate.apply(r, control.ProbeResult("side", "startup", True, True))
    status = podstate.status(r)
    assert ready_started(status) == [(True, True), (True, True)]  # side has no readiness probe
    assert conditions(status)["Ready"] == ("True", "")
    assert conditions(status)["ContainersReady"] == ("True", "")
    podstate.apply(
        r, control.ProbeResult("app", "readiness", False, False, "HTTP probe failed with statuscode: 500")
    )
    status = podstate.status(r)
    assert ready_started(status)[0] == (False, True)
    assert conditions(status)["Ready"] == ("False", "containers with unready status: [app]")


def test_a_liveness_kill_restarts_even_a_clean_exit_and_resets_readiness() -> None:
    pod = {**POD, "spec": {**POD["spec"], "restartPolicy": "OnFailure"}}
    r = record(pod)
    for name in ("one", "two"):
        podstate.apply(r, control.Started(name, 10, 0))
        podstate.apply(r, control.Exited(name, 0, 0, 0))
    podstate.apply(r, control.Started("app", 12, 0))
    podstate.apply(r, control.ProbeResult("app", "readiness", True, True))
    podstate.apply(r, control.Killing("app", "liveness", True))
    podstate.apply(r, control.Exited("app", 0, 0, 0))  # its TERM handler exited 0
    app = podstate.status(r)["containerStatuses"][0]
    assert app["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert (app["restartCount"], app["ready"]) == (1, False)
    podstate.apply(r, control.Started("app", 14, 1))
    app = podstate.status(r)["containerStatuses"][0]
    assert (app["restartCount"], app["ready"], app["started"]) == (1, False, True)


def test_a_pod_past_its_deadline_fails_with_the_kubelets_reason_and_message() -> None:
    r = initialized()
    podstate.apply(r, control.Exited("app", 143, 15, 0))  # SIGTERM at the deadline: not restarted
    podstate.apply(r, control.PodDone("web", "Failed", "DeadlineExceeded"))
    status = podstate.status(r, vm_alive=False)
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert status["message"] == "Pod was active on the node longer than the specified deadline"
    app = status["containerStatuses"][0]
    assert (app["state"]["terminated"]["exitCode"], app["restartCount"], app["lastState"]) == (143, 0, {})


def test_the_deadline_event_fails_the_pod_at_once_and_later_exits_are_final() -> None:
    r = initialized()  # restartPolicy Always: an exit would otherwise restart the container
    podstate.apply(r, control.DeadlineExceeded("web"))
    status = podstate.status(r)  # the VM still runs: pod-init is killing the containers
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert status["message"] == "Pod was active on the node longer than the specified deadline"
    assert [list(s["state"]) for s in status["containerStatuses"]] == [["running"], ["running"]]
    assert conditions(status)["Ready"][0] == "False"
    assert podstate.reportable_while_vm_runs(r)

    podstate.apply(r, control.Exited("app", 137, 9, 0))  # ignored SIGTERM: SIGKILLed after the grace
    app = podstate.status(r)["containerStatuses"][0]
    assert app["state"]["terminated"]["exitCode"] == 137
    assert (app["state"]["terminated"]["reason"], app["restartCount"], app["lastState"]) == ("Error", 0, {})
    podstate.apply(r, control.Exited("side", 143, 15, 0))
    assert not podstate.reportable_while_vm_runs(r)  # nothing runs: reported once the VM ended
    podstate.apply(r, control.Started("side", 20, 1))  # pod-init starts nothing then; if it did,
    assert r.phase == "Failed"  # a terminal phase would still be final
    podstate.apply(r, control.PodDone("web", "Failed", "DeadlineExceeded"))
    status = podstate.status(r, vm_alive=False)
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137


def test_a_container_backing_off_at_the_deadline_keeps_its_last_exit() -> None:
    r = initialized()
    podstate.apply(r, control.Exited("side", 1, 0, 0))
    assert podstate.status(r)["containerStatuses"][1]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    podstate.apply(r, control.DeadlineExceeded("web"))
    side = podstate.status(r)["containerStatuses"][1]
    assert (side["state"]["terminated"]["exitCode"], side["restartCount"]) == (1, 0)
    assert podstate.reportable_while_vm_runs(r)  # app still runs


def test_records_with_init_containers_survive_save_and_load(tmp_path: Path) -> None:
    r = initialized()
    podstate.apply(r, control.ProbeResult("app", "readiness", True, True))
    r.save(tmp_path / "record.json")
    again = podstate.PodRecord.load(tmp_path / "record.json")
    assert again == r
    assert podstate.status(again)["initContainerStatuses"][1]["state"]["terminated"]["reason"] == "Completed"


def test_recover_restores_init_container_statuses() -> None:
    r = initialized()
    reported = podstate.status(r)
    fresh = record()
    assert podstate.recover(fresh, reported)
    assert [c.state for c in fresh.init_containers] == ["terminated", "terminated"]
    assert fresh.initialized()
