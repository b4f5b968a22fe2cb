"""kubectl's STATUS column for pods (the server prints it), as upstream's printPod computes it."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api.kinds import pod as pod_kind


def waiting(reason: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason}}


def terminated(code: int, reason: str = "") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason}}


RUNNING: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}


def pod(
    inits: list[dict[str, Any]], apps: list[dict[str, Any]], phase: str = "Pending", ready: bool = False
) -> dict[str, Any]:
    init_done = all("terminated" in s and s["terminated"]["exitCode"] == 0 for s in inits)
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "initContainers": [{"name": f"i{n}"} for n in range(len(inits))],
            "containers": [{"name": f"c{n}"} for n in range(len(apps))],
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True" if init_done else "False"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
            "initContainerStatuses": [
                {"name": f"i{n}", "state": s, "restartCount": 0} for n, s in enumerate(inits)
            ],
            "containerStatuses": [
                {"name": f"c{n}", "state": s, "ready": "running" in s and ready, "restartCount": 0}
                for n, s in enumerate(apps)
            ],
        },
    }


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        (pod([waiting("PodInitializing")] * 2, [waiting("PodInitializing")]), "Init:0/2"),
        (pod([terminated(0, "Completed"), RUNNING], [waiting("PodInitializing")]), "Init:1/2"),
        (
            pod([terminated(1, "Error"), waiting("PodInitializing")], [waiting("PodInitializing")], "Failed"),
            "Init:Error",
        ),
        (pod([waiting("CrashLoopBackOff")], [waiting("PodInitializing")]), "Init:CrashLoopBackOff"),
        (pod([terminated(2)], [waiting("PodInitializing")]), "Init:ExitCode:2"),
        (pod([terminated(0, "Completed")], [waiting("PodInitializing")]), "PodInitializing"),
        (pod([terminated(0, "Completed")], [RUNNING], "Running", ready=True), "Running"),
        (pod([], [waiting("CrashLoopBackOff")], "Running"), "CrashLoopBackOff"),
    ],
)
def test_status_column(obj: dict[str, Any], status: str) -> None:
    assert pod_kind.row(obj)[2] == status


def test_ready_counts_running_ready_containers_and_terminating_wins() -> None:
    obj = pod([], [RUNNING, RUNNING], "Running", ready=True)
    assert pod_kind.row(obj)[1] == "2/2"
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    assert pod_kind.row(obj)[2] == "Terminating"


def test_a_completed_container_beside_a_running_one_shows_running_or_not_ready() -> None:
    obj = pod([], [terminated(0, "Completed"), RUNNING], "Running", ready=True)
    assert pod_kind.row(obj)[2] == "Running"
    obj["status"]["conditions"][1]["status"] = "False"
    assert pod_kind.row(obj)[2] == "NotReady"
