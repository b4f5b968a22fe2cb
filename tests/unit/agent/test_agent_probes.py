"""The agent with init containers and probes (fakes for the API, images and VMs): init images are
pulled and run first, probe reports become ready/started, restart counts and the kubelet's Events."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nestlab.runtime import control
from tests.unit.agent.test_agent_reconcile import FakeImages, Launches, make_agent, pod, settle


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp dir: pod unix sockets live under the agent's state dir (108-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="nla-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def probed_pod() -> dict[str, Any]:
    p = pod(
        restart="Always",
        readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}},
        livenessProbe={"tcpSocket": {"port": 80}},
    )
    p["spec"]["initContainers"] = [{"name": "prep", "image": "demo/busybox:1", "command": ["true"]}]
    return p


def test_init_first_then_probes_flip_ready_and_a_liveness_failure_restarts_with_events(
    short_tmp: Path,
) -> None:
    events: list[control.Event] = [
        control.Started("prep", 5, 0),
        control.Exited("prep", 0, 0, 0),
        control.Started("main", 7, 0),
        control.ProbeResult("main", "readiness", True, True),
        control.ProbeResult(
            "main", "liveness", False, False, "dial tcp 10.0.0.5:80: connect: connection refused"
        ),
        control.Killing("main", "liveness", True),
        control.Exited("main", 143, 15, 0),
        control.Started("main", 8, 1),
    ]
    launches = Launches(events)
    images = FakeImages(short_tmp)
    agent, client = make_agent(short_tmp, launches, images)

    async def scenario() -> None:
        await agent.sync("ADDED", probed_pod())
        for _ in range(200):
            if any(
                s["containerStatuses"][0].get("restartCount") == 1
                and "running" in s["containerStatuses"][0]["state"]
                for s in client.statuses
            ):
                break
            await asyncio.sleep(0.02)
        deleted = probed_pod()
        deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        await agent.sync("MODIFIED", deleted)
        await settle(agent)

    asyncio.run(scenario())
    description, _ = launches.launched[0]
    assert [(c.name, c.init) for c in description.containers] == [("prep", True), ("main", False)]
    assert [p.kind for p in description.containers[1].probes] == ["liveness", "readiness"]
    assert images.pulls == 2
    first = client.statuses[0]
    assert first["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert first["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert any(s["containerStatuses"][0]["ready"] for s in client.statuses)
    assert any(
        {"type": "Ready", "status": "True"}.items() <= c.items()
        for s in client.statuses
        for c in s["conditions"]
    )
    created = [(e["type"], e["reason"], e["message"]) for e in client.created]
    assert (
        "Warning",
        "Unhealthy",
        "Liveness probe failed: dial tcp 10.0.0.5:80: connect: connection refused",
    ) in created
    assert ("Normal", "Killing", "Container main failed liveness probe, will be restarted") in created
    restarted = [s for s in client.statuses if s["containerStatuses"][0]["restartCount"] == 1]
    assert restarted
    assert restarted[0]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 143


def test_a_deadline_reports_failed_at_once_while_the_container_is_still_being_killed(
    short_tmp: Path,
) -> None:
    """pod-init's deadline event: the pod is reported Failed (DeadlineExceeded) before the container's
    kill ends, the Event is recorded once, and the SIGKILLed container is final, never backing off."""
    launches = Launches([control.Started("main", 7, 0), control.DeadlineExceeded("web")])
    agent, client = make_agent(short_tmp, launches)
    spec = pod(restart="Always", command=["sleep", "600"])  # sleep ignores SIGTERM as a pid-1
    counted: list[tuple[int, int]] = []
    reported_before_stop: list[int] = []

    async def scenario() -> None:
        await agent.sync("ADDED", spec)
        for _ in range(200):
            if any(s["phase"] == "Failed" for s in client.statuses):
                break
            await asyncio.sleep(0.02)
        counted.append(agent._free())  # its containers are still being killed: it still counts
        vm = launches.launched[0][1]
        stop = vm.stop

        def stop_noting_reports() -> None:
            reported_before_stop.append(len(client.statuses))
            stop()

        vm.stop = stop_noting_reports  # type: ignore[method-assign]
        for event in (
            control.Exited("main", 137, 9, 0),
            control.PodDone("web", "Failed", "DeadlineExceeded"),
        ):
            vm.events.put(event)
        await settle(agent)

    asyncio.run(scenario())
    phases = [s["phase"] for s in client.statuses]
    first = phases.index("Failed")
    at_deadline = client.statuses[first]
    assert (at_deadline["reason"], at_deadline["message"]) == (
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline",
    )
    assert "running" in at_deadline["containerStatuses"][0]["state"]
    # the exit's status waits for the VM's end (the attacher keeps the volumes of a pod shown running)
    assert reported_before_stop == [first + 1]
    final = client.statuses[-1]["containerStatuses"][0]
    assert final["state"]["terminated"]["exitCode"] == 137
    assert (final["state"]["terminated"]["reason"], final["restartCount"]) == ("Error", 0)
    assert not any(
        s["containerStatuses"][0]["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
        for s in client.statuses
    )
    reasons = [e["reason"] for e in client.created]
    assert reasons.count("DeadlineExceeded") == 1
    assert "BackOff" not in reasons
    assert counted[0][1] < 1024  # its VM's memory is still taken from the node's 1024 MiB
    assert launches.launched[0][1].stopped
