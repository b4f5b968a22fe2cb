"""A pod VM that ends unexpectedly, with fakes: killed while the agent runs (back-off, new VM), gone
when the agent starts (host restarted: status corrected at once, new VM or terminal state), and
deletes of pods that have no VM. The real VMs are in tests/integration/agent/test_agent_restart.py."""

from __future__ import annotations

import asyncio
import queue
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import podstate, vms
from nestlab.agent.agent import Agent, AgentConfig
from nestlab.agent.network import PodAddress, PodNetworkError, mac_of, tap_name
from nestlab.agent.node import NodeInfo, NodeReporter
from nestlab.runtime import control, qemu
from nestlab.runtime.poddesc import DiskSerial, PodDescription
from tests.unit.agent.test_agent_reconcile import FakeClient, FakeImages, pod, settle

Obj = dict[str, Any]
DIES = "dies"  # in a VM script: QEMU ends here (channel closed, process gone)
GONE = "gone"  # in a VM script: the process is gone, what pod-init wrote is still to be read
FAST = podstate.Backoff(0.01, 0.02)


class ScriptedVm:
    """A pod VM playing one script: events, then either staying up until stopped or dying."""

    def __init__(self, pid: int, script: list[control.Event | str]) -> None:
        self.pid = pid
        self.events: queue.Queue[control.Event | str] = queue.Queue()
        for item in script:
            self.events.put(item)
        self.dead = False
        self.gone = False
        self.stopped = False

    def next_event(self, timeout: float) -> control.Event | None:
        if self.dead:
            return None
        try:
            item = self.events.get(timeout=min(timeout, 0.02))
        except queue.Empty:
            raise control.ControlProtocolError("no event") from None
        if item == GONE:
            self.gone = True
            item = self.events.get()
        if item == DIES:
            self.dead = True
            return None
        assert not isinstance(item, str)
        return item

    def alive(self) -> bool:
        return not (self.dead or self.gone or self.stopped)

    def stop(self) -> None:
        self.stopped = True


class Launcher:
    """Each launch plays the next script (the last one repeats)."""

    def __init__(self, *scripts: list[control.Event | str]) -> None:
        self.scripts = scripts
        self.vms: list[ScriptedVm] = []

    def __call__(
        self,
        description: PodDescription,
        disks: Mapping[DiskSerial, Path],
        workdir: Path,
        address: PodAddress | None,
        resources: list[qemu.ContainerResources],
    ) -> vms.PodHandle:
        vm = ScriptedVm(5000 + len(self.vms), self.scripts[min(len(self.vms), len(self.scripts) - 1)])
        self.vms.append(vm)
        return vm

    def any_alive(self) -> bool:
        return any(vm.alive() for vm in self.vms)


class WatchingClient(FakeClient):
    """Records, with every status, whether a pod VM was alive and how many had been launched."""

    def __init__(self, launcher: Launcher) -> None:
        super().__init__()
        self.launcher = launcher
        self.seen: list[tuple[Obj, bool, int]] = []

    async def patch(self, resource: Any, namespace: str, name: str, patch: Obj, subresource: str = "") -> Obj:
        self.seen.append((patch["status"], self.launcher.any_alive(), len(self.launcher.vms)))
        return await super().patch(resource, namespace, name, patch, subresource)


class FakeNetwork:
    def __init__(self, fail: bool = False) -> None:
        self.released: list[str] = []
        self.fail = fail

    def allocate(self, uid: str) -> PodAddress:
        return PodAddress("198.19.0.2", 24, "198.19.0.1", qemu.Tap(tap_name(uid), mac_of(uid)))

    def release(self, uid: str) -> None:
        self.released.append(uid)
        if self.fail:
            raise PodNetworkError("ip link del failed")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nla-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_agent(
    tmp: Path, launcher: Launcher, backoff: podstate.Backoff = FAST, network: FakeNetwork | None = None
) -> tuple[Agent, WatchingClient]:
    client = WatchingClient(launcher)
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    agent = Agent(
        AgentConfig("esx-01", tmp / "state", "depot:5000", 2000, 1024),
        client,  # type: ignore[arg-type]
        reporter,
        FakeImages(tmp),  # type: ignore[arg-type]
        launcher=launcher,
        network=network,  # type: ignore[arg-type]
        vm_backoff=backoff,
    )
    return agent, client


def deleting(obj: Obj) -> Obj:
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return obj


async def until(check: Any, what: str) -> None:
    for _ in range(2000):  # 0.005 s steps: ten seconds for what takes milliseconds
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


def main(status: Obj) -> Obj:
    return dict(status["containerStatuses"][0])


def assert_never_running_without_a_vm(client: WatchingClient) -> None:
    for status, alive, _ in client.seen:
        if status["phase"] == "Running" or any("running" in c["state"] for c in status["containerStatuses"]):
            assert alive, f"reported running without a live VM: {status}"


def leave_record(tmp: Path, launcher: Launcher, obj: Obj, phase: str, pid: int, *started: str) -> None:
    """What an agent stopped mid-run left on disk: the record of a pod whose VM had ``pid``."""
    agent, _ = make_agent(tmp, launcher)
    record = agent._new_record(obj["metadata"]["uid"], obj)
    for name in started:
        podstate.apply(record, control.Started(name, 7, 0))
    record.phase, record.vm_pid = phase, pid
    (tmp / "state" / "pods" / record.uid).mkdir(parents=True)
    record.save(tmp / "state" / "pods" / record.uid / "record.json")


GONE_PID = 999_999_999  # no such process: the VM is gone


# --- a VM that dies while the agent runs ---------------------------------------------------------


def test_a_killed_vm_of_an_always_pod_comes_back_with_restart_count_one(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 7, 0), DIES], [control.Started("main", 8, 0)])
    agent, client = make_agent(short_tmp, launcher)

    async def scenario() -> None:
        await agent.sync("ADDED", pod(restart="Always"))
        await until(
            lambda: len(launcher.vms) == 2 and client.statuses[-1]["phase"] == "Running",
            "a second VM running",
        )
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await settle(agent)

    asyncio.run(scenario())
    backing_off = [s for s in client.statuses if "waiting" in main(s)["state"]]
    assert any(main(s)["state"]["waiting"]["reason"] == "CrashLoopBackOff" for s in backing_off)
    assert all(s["phase"] == "Pending" for s in backing_off), "no VM: not Running"
    last = main(backing_off[-1])["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (137, "Error")
    running = [s for s in client.statuses if s["phase"] == "Running"]
    assert main(running[-1])["restartCount"] == 1
    assert main(running[-1])["lastState"]["terminated"]["exitCode"] == 137
    assert [e["reason"] for e in client.created].count("BackOff") == 1
    assert_never_running_without_a_vm(client)
    assert client.deleted == [("ns", "web", 0, "u-1")]


def test_consecutive_vm_failures_back_off_longer_each_time(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 7, 0), DIES])
    agent, client = make_agent(short_tmp, launcher, podstate.Backoff(0.01, 0.04))

    async def scenario() -> None:
        await agent.sync("ADDED", pod(restart="Always"))
        await until(lambda: len(launcher.vms) >= 5, "five VMs")
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await settle(agent)

    asyncio.run(scenario())
    backoffs = [e["message"] for e in client.created if e["reason"] == "BackOff"]
    assert backoffs[:4] == [
        f"Back-off {s}s restarting the pod VM, which ended unexpectedly"
        for s in ("0.01", "0.02", "0.04", "0.04")
    ]
    restart_counts = [main(s)["restartCount"] for s in client.statuses if s["phase"] == "Running"]
    assert restart_counts == sorted(restart_counts)
    assert restart_counts[-1] >= 3
    assert_never_running_without_a_vm(client)


def test_deleting_a_pod_in_vm_back_off_completes_at_once(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 7, 0), DIES])
    network = FakeNetwork()
    agent, client = make_agent(short_tmp, launcher, podstate.Backoff(3600, 3600), network)

    async def scenario() -> None:
        await agent.sync("ADDED", pod(restart="Always"))
        await until(lambda: any(e["reason"] == "BackOff" for e in client.created), "back-off")
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await asyncio.wait_for(settle(agent), 60)  # not the hour of back-off

    asyncio.run(scenario())
    assert len(launcher.vms) == 1
    assert client.deleted == [("ns", "web", 0, "u-1")]
    assert "u-1" in network.released
    assert not (short_tmp / "state" / "pods" / "u-1").exists()


def test_a_never_pod_whose_vm_dies_fails_with_vm_exited(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 7, 0), DIES])
    agent, client = make_agent(short_tmp, launcher)

    async def scenario() -> None:
        await agent.sync("ADDED", pod(restart="Never"))
        await settle(agent)

    asyncio.run(scenario())
    assert len(launcher.vms) == 1
    final = client.statuses[-1]
    assert (final["phase"], final["reason"]) == ("Failed", "VmExited")
    assert main(final)["state"]["terminated"]["exitCode"] == 137
    assert "VmExited" in [e["reason"] for e in client.created]


def test_a_started_event_from_a_vm_already_gone_is_not_reported_running(short_tmp: Path) -> None:
    launcher = Launcher([GONE, control.Started("main", 7, 0), DIES])
    agent, client = make_agent(short_tmp, launcher, podstate.Backoff(3600, 3600))

    async def scenario() -> None:
        await agent.sync("ADDED", pod(restart="Always"))
        await until(lambda: any(e["reason"] == "BackOff" for e in client.created), "back-off")
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await asyncio.wait_for(settle(agent), 60)

    asyncio.run(scenario())
    assert any(
        main(s)["state"].get("terminated", {}).get("reason") == "ContainerStatusUnknown"
        for s in client.statuses
    )
    assert all(s["phase"] != "Running" for s in client.statuses)
    assert_never_running_without_a_vm(client)


# --- the agent (or its host) restarts ------------------------------------------------------------


def test_an_always_pod_whose_vm_is_gone_is_corrected_at_once_then_started_again(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 8, 0)])
    leave_record(short_tmp, launcher, pod(restart="Always"), "Running", GONE_PID, "main")
    agent, client = make_agent(short_tmp, launcher)

    async def scenario() -> None:
        await agent.adopt({"u-1": pod(restart="Always")})
        assert client.statuses, "the correction is reported by adopt itself, before any task runs"
        await until(lambda: client.statuses and client.statuses[-1]["phase"] == "Running", "running again")
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await settle(agent)

    asyncio.run(scenario())
    first, alive, launched = client.seen[0]
    assert (first["phase"], alive, launched) == ("Pending", False, 0), "corrected before any VM starts"
    assert main(first)["restartCount"] == 1
    lost = main(first)["lastState"]["terminated"]
    assert (lost["exitCode"], lost["reason"]) == (137, "ContainerStatusUnknown")
    running = [s for s in client.statuses if s["phase"] == "Running"]
    assert main(running[-1])["restartCount"] == 1
    assert len(launcher.vms) == 1
    events = [(e["type"], e["reason"]) for e in client.created]
    assert ("Normal", "HostRestarted") in events
    message = next(e["message"] for e in client.created if e["reason"] == "HostRestarted")
    assert "esx-01 restarted" in message
    assert "starting a new pod VM" in message
    assert_never_running_without_a_vm(client)


def test_an_on_failure_pod_whose_containers_had_succeeded_is_succeeded(short_tmp: Path) -> None:
    launcher = Launcher([])
    leave_record(short_tmp, launcher, pod(restart="OnFailure"), "Running", GONE_PID, "main")
    record_file = short_tmp / "state" / "pods" / "u-1" / "record.json"
    record = podstate.PodRecord.load(record_file)
    podstate.apply(record, control.Exited("main", 0, 0, 0))
    record.save(record_file)
    agent, client = make_agent(short_tmp, launcher)

    async def scenario() -> None:
        await agent.adopt({"u-1": pod(restart="OnFailure")})
        await settle(agent)

    asyncio.run(scenario())
    assert launcher.vms == []
    assert client.statuses[-1]["phase"] == "Succeeded"


def test_a_never_pod_whose_vm_is_gone_fails_with_an_event(short_tmp: Path) -> None:
    launcher = Launcher([])
    leave_record(short_tmp, launcher, pod(restart="Never"), "Running", GONE_PID, "main")
    agent, client = make_agent(short_tmp, launcher)

    async def scenario() -> None:
        await agent.adopt({"u-1": pod(restart="Never")})
        await agent.sync("ADDED", pod(restart="Never"))
        await settle(agent)

    asyncio.run(scenario())
    assert launcher.vms == []
    assert (client.statuses[-1]["phase"], client.statuses[-1]["reason"]) == ("Failed", "VmExited")
    assert ("Warning", "HostRestarted") in [(e["type"], e["reason"]) for e in client.created]


def running_status(restarts: int = 0) -> Obj:
    return {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "main",
                "restartCount": restarts,
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    }


def test_a_pod_bound_here_whose_record_was_lost_is_corrected_and_started_again(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 8, 0)])
    agent, client = make_agent(short_tmp, launcher)
    reported = pod(restart="Always")
    reported["status"] = running_status(restarts=2)

    async def scenario() -> None:
        await agent.adopt({"u-1": reported})
        await agent.sync("ADDED", reported)
        await until(lambda: client.statuses and client.statuses[-1]["phase"] == "Running", "running again")
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await settle(agent)

    asyncio.run(scenario())
    first, _, launched = client.seen[0]
    assert (first["phase"], main(first)["restartCount"], launched) == ("Pending", 3, 0)
    assert main(client.statuses[-2])["restartCount"] == 3
    assert len(launcher.vms) == 1


def test_a_never_pod_whose_record_was_lost_is_failed_not_rerun(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 8, 0)])
    agent, client = make_agent(short_tmp, launcher)
    reported = pod(restart="Never")
    reported["status"] = running_status()

    async def scenario() -> None:
        await agent.adopt({"u-1": reported})
        await agent.sync("ADDED", reported)
        await settle(agent)

    asyncio.run(scenario())
    assert launcher.vms == []
    assert client.statuses[-1]["phase"] == "Failed"


def test_a_pod_never_started_anywhere_is_started_fresh(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 8, 0)])
    agent, client = make_agent(short_tmp, launcher)

    async def scenario() -> None:
        await agent.adopt({"u-1": pod(restart="Always")})
        await agent.sync("ADDED", pod(restart="Always"))
        await until(lambda: client.statuses and client.statuses[-1]["phase"] == "Running", "running")
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await settle(agent)

    asyncio.run(scenario())
    assert len(launcher.vms) == 1
    assert all(main(s)["restartCount"] == 0 for s in client.statuses)
    assert "HostRestarted" not in [e["reason"] for e in client.created]


# --- deleting pods that have no VM ---------------------------------------------------------------


def test_a_deleting_pod_whose_vm_is_gone_is_confirmed_at_start_without_a_vm(short_tmp: Path) -> None:
    launcher = Launcher([control.Started("main", 8, 0)])
    leave_record(short_tmp, launcher, pod(restart="Always"), "Running", GONE_PID, "main")
    network = FakeNetwork(fail=True)  # and freeing its tap fails: logged, the delete completes
    agent, client = make_agent(short_tmp, launcher, network=network)
    gone = deleting(pod(restart="Always"))

    async def scenario() -> None:
        await agent.adopt({"u-1": gone})
        await agent.sync("ADDED", gone)  # what the watch loop does after adopt
        await settle(agent)

    asyncio.run(scenario())
    assert launcher.vms == []
    assert client.deleted == [("ns", "web", 0, "u-1")]
    assert network.released == ["u-1"]
    assert not (short_tmp / "state" / "pods" / "u-1").exists()
    assert "u-1" not in agent.records


def test_deleting_a_finished_pod_or_one_never_seen_completes_at_once(short_tmp: Path) -> None:
    launcher = Launcher(
        [control.Started("main", 7, 0), control.Exited("main", 0, 0, 0), control.PodDone("web", "Succeeded")]
    )
    network = FakeNetwork()
    agent, client = make_agent(short_tmp, launcher, network=network)
    stranger = deleting(pod(name="other", uid="u-2"))

    async def scenario() -> None:
        await agent.sync("ADDED", pod())
        await settle(agent)
        await agent.sync("MODIFIED", deleting(pod()))
        await agent.sync("MODIFIED", stranger)
        await agent.sync("DELETED", pod(name="third", uid="u-3"))

    asyncio.run(scenario())
    assert client.deleted == [("ns", "web", 0, "u-1"), ("ns", "other", 0, "u-2")]
    assert network.released.count("u-2") == 1
    assert not (short_tmp / "state" / "pods" / "u-1").exists()


def test_a_state_dir_of_a_pod_no_longer_bound_here_is_freed(short_tmp: Path) -> None:
    launcher = Launcher([])
    leave_record(short_tmp, launcher, pod(restart="Always"), "Running", GONE_PID, "main")
    network = FakeNetwork()
    agent, client = make_agent(short_tmp, launcher, network=network)
    asyncio.run(agent.adopt({}))
    assert network.released == ["u-1"]
    assert list((short_tmp / "state" / "pods").iterdir()) == []
    assert client.statuses == []


def test_an_adopted_live_vm_is_reported_running(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = Launcher([])
    leave_record(short_tmp, launcher, pod(restart="Always"), "Running", 4321, "main")
    live = ScriptedVm(4321, [control.Exited("main", 1, 0, 0), control.Started("main", 9, 1)])
    monkeypatch.setattr(vms, "adopt", lambda pid, workdir, grace: live if pid == 4321 else None)
    agent, client = make_agent(short_tmp, launcher)

    async def scenario() -> None:
        await agent.adopt({"u-1": pod(restart="Always")})
        await until(lambda: client.statuses and main(client.statuses[-1])["restartCount"] == 1, "events")
        await until(
            lambda: (
                client.statuses[-1]["phase"] == "Running" and "running" in main(client.statuses[-1])["state"]
            ),
            "running",
        )
        await agent.sync("MODIFIED", deleting(pod(restart="Always")))
        await settle(agent)

    asyncio.run(scenario())
    assert launcher.vms == []
    assert live.stopped
    assert "HostRestarted" not in [e["reason"] for e in client.created]
    assert client.deleted == [("ns", "web", 0, "u-1")]


def test_stopping_an_adopted_vm_that_is_already_gone_waits_for_nothing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = short_tmp / "vm"
    workdir.mkdir()
    vm = vms.AdoptedVm(GONE_PID, workdir, grace_s=3600)
    asked: list[float] = []
    monkeypatch.setattr(vm.channel, "send_stop", lambda timeout=5.0: asked.append(timeout))
    vm.stop()
    assert asked == [], "no stop sent to a pod-init that is gone (it waits for QEMU to connect)"
    assert not (workdir / "control.sock").exists()
