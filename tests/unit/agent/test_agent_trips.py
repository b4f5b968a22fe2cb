"""Agent behaviour a learner tripped over (issue 15), on fakes: no VM boots.

- A pod whose kernel the launch gate refused reports no pod IP: no VM ever configured it.
- A second delete with a shorter grace period ends a stop already in progress at its deadline
  (upstream's pod workers shorten the kill; pod-init only knows the grace it booted with).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from nestlab.agent import podstate
from nestlab.agent.kernelgate import KernelVerificationFailed
from nestlab.agent.network import PodAddress
from nestlab.runtime import control, qemu
from tests.unit.agent.test_agent_reconcile import (
    FakeVm,
    Launches,
    make_agent,
    pod,
    settle,
    short_tmp,  # noqa: F401 - the fixture, used by name
)
from tests.unit.agent.test_kernelgate import Gate

Obj = dict[str, Any]
FAKE_STOP_LIMIT_S = 20.0  # a fake VM that is never ended gives up here, so a failing test ends


class FakeNetwork:
    """Hands out one address per pod, as the pod network does; remembers releases."""

    def __init__(self) -> None:
        self.released: list[str] = []

    def allocate(self, uid: str) -> PodAddress:
        return PodAddress("198.19.100.7", 22, "198.19.100.1", qemu.Tap("nltap0", "02:00:00:00:00:07"))

    def release(self, uid: str) -> None:
        self.released.append(uid)


def test_a_pod_whose_kernel_was_refused_shows_no_pod_ip(short_tmp: Path) -> None:  # noqa: F811
    launches = Launches([])
    agent, client = make_agent(short_tmp, launches)
    network = FakeNetwork()
    agent.network = network  # type: ignore[assignment]
    agent.gate = Gate(KernelVerificationFailed("pod kernel /x/vmlinux.efi is not signed by /y/db.crt"))

    async def scenario() -> None:
        await agent.sync("ADDED", pod())
        await settle(agent)

    asyncio.run(scenario())
    assert launches.launched == []
    final = client.statuses[-1]
    assert final["phase"] == "Failed"
    assert final["reason"] == "KernelVerificationFailed"
    assert "podIP" not in final, final
    assert "podIPs" not in final, final
    assert network.released == ["u-1"]


class SlowStoppingVm(FakeVm):
    """A VM whose graceful stop takes the pod's whole grace period, unless QEMU is ended."""

    def __init__(self) -> None:
        super().__init__([control.Started("main", 7, 0)])
        self.ended = threading.Event()
        self.stop_began = threading.Event()

    def next_event(self, timeout: float) -> control.Event | None:
        if self.ended.is_set():
            return None
        return super().next_event(timeout)

    def alive(self) -> bool:
        return not self.ended.is_set()

    def stop(self) -> None:
        self.stop_began.set()
        self.ended.wait(FAKE_STOP_LIMIT_S)
        self.stopped = True


def deleting(grace: int) -> Obj:
    running = pod(restart="Always")
    running["spec"]["terminationGracePeriodSeconds"] = 30
    running["metadata"]["deletionTimestamp"] = "2026-12-06T06:00:00Z"
    running["metadata"]["deletionGracePeriodSeconds"] = grace
    return running


def test_a_second_delete_with_a_shorter_grace_ends_the_stop_in_progress(short_tmp: Path) -> None:  # noqa: F811
    vm = SlowStoppingVm()
    agent, client = make_agent(short_tmp, Launches([]))
    agent.launcher = lambda *_args: vm  # type: ignore[assignment]
    ended: list[tuple[int, Path]] = []

    def end_vm(pid: int, workdir: Path) -> None:
        ended.append((pid, workdir))
        vm.ended.set()

    agent.end_vm = end_vm
    running = pod(restart="Always")
    running["spec"]["terminationGracePeriodSeconds"] = 30

    async def scenario() -> None:
        await agent.sync("ADDED", running)
        deadline = time.monotonic() + 10
        while not any(s.get("phase") == "Running" for s in client.statuses):
            assert time.monotonic() < deadline, "the pod never ran"
            await asyncio.sleep(0.05)
        await agent.sync("MODIFIED", deleting(30))  # kubectl delete: the pod's own 30 s
        while not vm.stop_began.is_set():
            await asyncio.sleep(0.05)
        assert ended == []  # pod-init's own grace is the delete's: nothing to shorten
        await agent.sync("MODIFIED", deleting(0))  # kubectl delete --grace-period=0 --force
        await asyncio.wait_for(settle(agent), FAKE_STOP_LIMIT_S + 5)

    asyncio.run(scenario())
    assert ended == [(4242, short_tmp / "state" / "pods" / "u-1" / "vm")]
    assert client.deleted == [("ns", "web", 0, "u-1")]  # the deletion is confirmed once the VM is gone
    killing = [e["message"] for e in client.created if e["reason"] == "Killing"]
    assert killing[-1].startswith("The delete's shorter grace period is over")


def test_stop_deadlines_keep_the_shortest_and_honour_the_kubelet_minimum() -> None:
    first = podstate.stop_deadline(None, 100.0, 30)
    assert first == 130.0
    assert podstate.stop_deadline(first, 110.0, 0) == 110.0 + podstate.MIN_GRACE_S
    assert podstate.stop_deadline(first, 110.0, 60) == 130.0  # a longer grace never extends the stop
    assert podstate.forced_end(130.0, 100.0, 30) is None  # pod-init kills at 130 itself
    assert podstate.forced_end(112.0, 100.0, 30) == 112.0
    assert podstate.forced_end(None, 100.0, 30) is None
