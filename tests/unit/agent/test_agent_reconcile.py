"""The agent's reconciliation with fakes: API client, image store, network and VMs are substitutes here;
the integration tests run the real ones."""

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
from nestlab.agent.images import Digest, Image, ImageConfig
from nestlab.agent.network import PodAddress
from nestlab.agent.node import NodeInfo, NodeReporter
from nestlab.agent.registry import ImageNotFoundError, ImageRef
from nestlab.api import status as api_status
from nestlab.runtime import control, qemu
from nestlab.runtime.poddesc import DiskSerial, PodDescription, VolumeFile

Obj = dict[str, Any]
DIGEST = Digest("sha256:" + "ab" * 32)


class FakeClient:
    def __init__(self) -> None:
        self.statuses: list[Obj] = []
        self.deleted: list[tuple[str, str, int | None, str | None]] = []
        self.created: list[Obj] = []
        self.objects: dict[tuple[str, str, str], Obj] = {}
        """(plural, namespace, name) -> what get/list answer (ConfigMaps, Secrets, Services)."""

    async def get(self, resource: Any, namespace: str, name: str) -> Obj:
        found = self.objects.get((resource.plural, namespace, name))
        if found is None:
            raise api_status.ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
        return found

    async def list(self, resource: Any, namespace: str = "", **_: str) -> Obj:
        items = [
            o for (plural, ns, _n), o in self.objects.items() if plural == resource.plural and ns == namespace
        ]
        return {"items": items}

    async def patch(self, resource: Any, namespace: str, name: str, patch: Obj, subresource: str = "") -> Obj:
        if resource.plural == "pods" and subresource == "status":
            self.statuses.append(patch["status"])
        return {}

    async def delete(
        self, resource: Any, namespace: str, name: str, grace: int | None = None, *, uid: str | None = None
    ) -> Obj:
        self.deleted.append((namespace, name, grace, uid))
        return {}

    async def create(self, resource: Any, namespace: str, obj: Obj) -> Obj:
        self.created.append(obj)
        return obj


class FakeImages:
    def __init__(self, tmp: Path, missing: tuple[str, ...] = ()) -> None:
        self.disk = tmp / "img.erofs"
        self.disk.write_bytes(b"x")
        self.missing = missing
        self.pulls = 0
        self.policies: list[tuple[str, str]] = []

    def pull(self, ref: ImageRef, *, policy: str = "IfNotPresent", shown: str = "", pod: str = "") -> Image:
        self.pulls += 1
        self.policies.append((policy, shown))
        if ref.repository in self.missing:
            raise ImageNotFoundError(f"image {ref}: not in registry test")
        return Image(str(ref), DIGEST, self.disk, ImageConfig(cmd=("sh",)))


class FakeVm:
    def __init__(self, events: list[control.Event]) -> None:
        self.pid = 4242
        self.events: queue.Queue[control.Event | None] = queue.Queue()
        for event in events:
            self.events.put(event)
        self.stopped = False
        self.updates: list[tuple[str, tuple[VolumeFile, ...]]] = []

    def next_event(self, timeout: float) -> control.Event | None:
        try:
            return self.events.get(timeout=min(timeout, 0.05))
        except queue.Empty:
            raise control.ControlProtocolError("no event") from None

    def alive(self) -> bool:
        return not self.stopped

    def stop(self) -> None:
        self.stopped = True

    def send_update(self, volume: str, files: tuple[VolumeFile, ...]) -> None:
        self.updates.append((volume, files))


class Launches:
    def __init__(self, events: list[control.Event]) -> None:
        self.events = events
        self.launched: list[tuple[PodDescription, FakeVm]] = []

    def __call__(
        self,
        description: PodDescription,
        disks: Mapping[DiskSerial, Path],
        workdir: Path,
        address: PodAddress | None,
        resources: list[qemu.ContainerResources],
    ) -> vms.PodHandle:
        vm = FakeVm(self.events)
        self.launched.append((description, vm))
        return vm


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp dir: pod unix sockets live under the agent's state dir (108-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="nla-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pod(name: str = "web", uid: str = "u-1", restart: str = "Never", **container: Any) -> Obj:
    spec_container = {
        "name": "main",
        "image": "demo/busybox:1",
        "command": ["sh", "-c", "exit 0"],
        **container,
    }
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {"nodeName": "esx-01", "restartPolicy": restart, "containers": [spec_container]},
    }


def make_agent(
    short_tmp: Path, launches: Launches, images: FakeImages | None = None
) -> tuple[Agent, FakeClient]:
    client = FakeClient()
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    config = AgentConfig("esx-01", short_tmp / "state", "depot:5000", 2000, 1024)
    agent = Agent(
        config,
        client,  # type: ignore[arg-type]
        reporter,
        images or FakeImages(short_tmp),  # type: ignore[arg-type]
        launcher=launches,
    )
    return agent, client


async def settle(agent: Agent) -> None:
    while agent.tasks:
        await asyncio.gather(*agent.tasks.values(), return_exceptions=True)


def test_a_job_runs_to_succeeded_with_its_exit_code_and_the_delete_is_confirmed(short_tmp: Path) -> None:
    events: list[control.Event] = [
        control.Init(1),
        control.Started("main", 7, 0),
        control.Exited("main", 0, 0, 0),
        control.PodDone("web", "Succeeded"),
    ]
    launches = Launches(events)
    agent, client = make_agent(short_tmp, launches)

    async def scenario() -> None:
        await agent.sync("ADDED", pod())
        await settle(agent)
        await agent.sync("MODIFIED", pod())  # our own status update comes back: nothing restarts
        assert not agent.tasks
        deleted = pod()
        deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        await agent.sync("MODIFIED", deleted)

    asyncio.run(scenario())
    assert len(launches.launched) == 1
    description, vm = launches.launched[0]
    assert description.containers[0].args == ("sh", "-c", "exit 0")
    assert vm.stopped
    final = client.statuses[-1]
    assert final["phase"] == "Succeeded"
    assert final["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert client.deleted == [("ns", "web", 0, "u-1")]  # the uid precondition spares a new "web"
    assert not (short_tmp / "state" / "pods" / "u-1").exists()


def test_a_crash_looping_container_reports_back_off_restarts_and_an_event(short_tmp: Path) -> None:
    events: list[control.Event] = [control.Started("main", 7, 0), control.Exited("main", 1, 0, 0)]
    launches = Launches(events)
    agent, client = make_agent(short_tmp, launches)

    async def scenario() -> None:
        await agent.sync("ADDED", pod(restart="Always"))
        for _ in range(100):
            if any(s["containerStatuses"][0]["restartCount"] == 1 for s in client.statuses):
                break
            await asyncio.sleep(0.02)
        deleted = pod(restart="Always")
        deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        await agent.sync("MODIFIED", deleted)
        await settle(agent)

    asyncio.run(scenario())
    waiting = [
        s["containerStatuses"][0] for s in client.statuses if "waiting" in s["containerStatuses"][0]["state"]
    ]
    assert any(
        c["state"]["waiting"]["reason"] == "CrashLoopBackOff" and c["restartCount"] == 1 for c in waiting
    )
    assert any(c["lastState"].get("terminated", {}).get("exitCode") == 1 for c in waiting)
    reasons = [e["reason"] for e in client.created]
    assert "BackOff" in reasons
    assert "Killing" in reasons
    assert launches.launched[0][1].stopped
    assert client.deleted == [("ns", "web", 0, "u-1")]  # the uid precondition spares a new "web"


def test_oversize_pod_fails_out_of_memory_without_a_vm(short_tmp: Path) -> None:
    launches = Launches([])
    agent, client = make_agent(short_tmp, launches)

    async def scenario() -> None:
        await agent.sync("ADDED", pod(resources={"requests": {"memory": "8Gi"}}))
        await settle(agent)

    asyncio.run(scenario())
    assert launches.launched == []
    assert client.statuses[-1]["phase"] == "Failed"
    assert client.statuses[-1]["reason"] == "OutOfmemory"
    assert [e["reason"] for e in client.created] == ["OutOfmemory"]


def test_a_missing_image_keeps_the_pod_pending_with_pull_errors_until_deleted(short_tmp: Path) -> None:
    launches = Launches([])
    images = FakeImages(short_tmp, missing=("demo/nosuch",))
    agent, client = make_agent(short_tmp, launches, images)

    async def scenario() -> None:
        await agent.sync("ADDED", pod(image="demo/nosuch:1"))
        for _ in range(100):
            if client.statuses and client.statuses[-1]["containerStatuses"][0]["state"].get("waiting"):
                break
            await asyncio.sleep(0.02)
        gone = pod(image="demo/nosuch:1")
        await agent.sync("DELETED", gone)
        await settle(agent)

    asyncio.run(scenario())
    assert launches.launched == []
    pending = client.statuses[-1]
    assert pending["phase"] == "Pending"
    assert pending["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    assert any("not in registry" in e["message"] for e in client.created)


@pytest.mark.parametrize(
    ("container", "reason"),
    [({"image": "Bad Name"}, "InvalidImageName"), ({"command": None, "args": None}, "CreateContainerError")],
)
def test_bad_input_fails_the_pod_with_a_reason(short_tmp: Path, container: Obj, reason: str) -> None:
    launches = Launches([])
    images = FakeImages(short_tmp)
    agent, client = make_agent(short_tmp, launches, images)
    spec = pod(**container)
    spec["spec"]["containers"][0] = {k: v for k, v in spec["spec"]["containers"][0].items() if v is not None}

    async def scenario() -> None:
        await agent.sync("ADDED", spec)
        await settle(agent)

    if reason == "CreateContainerError":
        images.pull = lambda ref, **_: Image(str(ref), DIGEST, images.disk, ImageConfig())  # type: ignore[method-assign]
    asyncio.run(scenario())
    assert launches.launched == []
    assert client.statuses[-1]["reason"] == reason
    assert reason in [e["reason"] for e in client.created]


def test_a_restarted_agent_finds_finished_pods_records_and_does_not_rerun_them(short_tmp: Path) -> None:
    launches = Launches(
        [
            control.Started("main", 7, 0),
            control.Exited("main", 0, 0, 0),
            control.PodDone("web", "Succeeded"),
        ]
    )
    agent, _ = make_agent(short_tmp, launches)
    asyncio.run(_run_one(agent))
    again, _client = make_agent(short_tmp, launches)

    async def restart() -> None:
        finished = pod()
        finished["status"] = {"phase": "Succeeded"}
        await again.adopt({"u-1": finished})
        await again.sync("ADDED", finished)
        await settle(again)

    asyncio.run(restart())
    assert len(launches.launched) == 1
    assert again.records["u-1"].phase == "Succeeded"


async def _run_one(agent: Agent) -> None:
    await agent.sync("ADDED", pod())
    await settle(agent)


def test_api_errors_while_reporting_do_not_kill_the_pod_task(short_tmp: Path) -> None:
    launches = Launches(
        [
            control.Started("main", 7, 0),
            control.Exited("main", 0, 0, 0),
            control.PodDone("web", "Succeeded"),
        ]
    )
    agent, client = make_agent(short_tmp, launches)

    async def refuse(*args: Any, **kwargs: Any) -> Obj:
        raise api_status.ApiError(503, "ServiceUnavailable", "etcd down")

    client.patch = refuse  # type: ignore[method-assign]
    asyncio.run(_run_one(agent))
    record = podstate.PodRecord.load(short_tmp / "state" / "pods" / "u-1" / "record.json")
    assert record.phase == "Succeeded"


def test_a_refused_status_report_is_sent_again_with_the_current_status(short_tmp: Path) -> None:
    launches = Launches(
        [
            control.Started("main", 7, 0),
            control.Exited("main", 0, 0, 0),
            control.PodDone("web", "Succeeded"),
        ]
    )
    agent, client = make_agent(short_tmp, launches)
    accept = client.patch

    async def refuse(*args: Any, **kwargs: Any) -> Obj:
        raise api_status.ApiError(503, "ServiceUnavailable", "the VIP moved")

    client.patch = refuse  # type: ignore[method-assign]
    asyncio.run(_run_one(agent))
    assert set(agent.unreported) == {"u-1"}
    assert client.statuses == []

    client.patch = accept  # type: ignore[method-assign]
    asyncio.run(agent.report_again())
    assert client.statuses[-1]["phase"] == "Succeeded"
    assert agent.unreported == {}
    asyncio.run(agent.report_again())  # nothing left to send
    assert len(client.statuses) == 1


def test_a_pod_interrupted_before_its_vm_started_is_started_over_after_a_restart(short_tmp: Path) -> None:
    launches = Launches(
        [
            control.Started("main", 7, 0),
            control.Exited("main", 0, 0, 0),
            control.PodDone("web", "Succeeded"),
        ]
    )
    agent, _ = make_agent(short_tmp, launches)
    record = agent._new_record("u-1", pod())
    (short_tmp / "state" / "pods" / "u-1").mkdir(parents=True)
    record.save(short_tmp / "state" / "pods" / "u-1" / "record.json")  # as left by an agent killed mid-pull

    again, client = make_agent(short_tmp, launches)

    async def restart() -> None:
        await again.adopt({"u-1": pod()})
        await settle(again)

    asyncio.run(restart())
    assert len(launches.launched) == 1
    assert client.statuses[-1]["phase"] == "Succeeded"


def test_a_vm_that_died_while_the_agent_was_down_is_reported_failed(short_tmp: Path) -> None:
    launches = Launches([])
    agent, _ = make_agent(short_tmp, launches)
    record = agent._new_record("u-1", pod())
    record.phase, record.vm_pid = "Running", 999_999_999  # no such process
    (short_tmp / "state" / "pods" / "u-1").mkdir(parents=True)
    record.save(short_tmp / "state" / "pods" / "u-1" / "record.json")

    again, client = make_agent(short_tmp, launches)

    async def restart() -> None:
        await again.adopt({"u-1": pod()})
        await settle(again)

    asyncio.run(restart())
    assert launches.launched == []
    assert client.statuses[-1]["phase"] == "Failed"
    assert client.statuses[-1]["reason"] == "VmExited"
