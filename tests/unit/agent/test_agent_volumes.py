"""The agent forms a pod's env and volumes from the API, waits for missing ConfigMaps as the kubelet
does (FailedMount, CreateContainerConfigError), and grows the VM by its tmpfs volumes (fakes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nestlab.agent import agent as agent_module
from nestlab.agent import podsources
from nestlab.agent.agent import Agent, AgentConfig
from nestlab.agent.node import NodeInfo, NodeReporter
from nestlab.runtime import control
from nestlab.runtime.poddesc import Mount, Volume, VolumeFile
from tests.unit.agent.test_agent_reconcile import (
    FakeClient,
    FakeImages,
    FakeVm,
    Launches,
    pod,
    settle,
    short_tmp,
)

__all__ = ["short_tmp"]  # the fixture
DONE: list[control.Event] = [control.Init(1), control.PodDone("web", "Succeeded")]
WAIT_S = 10.0  # a bound on a fake scenario, never reached when the code is right


async def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def test_missing_configmaps_wait_then_the_pod_starts_with_its_env_and_files(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "CONFIG_RETRY_S", (0.01,))
    client, launches = FakeClient(), Launches(DONE)
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    config = AgentConfig("esx-01", short_tmp / "state", "depot:5000", 2000, 1024, resolv_conf=None)
    agent = Agent(config, client, reporter, FakeImages(short_tmp), launcher=launches)  # type: ignore[arg-type]
    obj = pod(
        env=[{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "k"}}}],
        volumeMounts=[{"name": "late", "mountPath": "/etc/late"}, {"name": "fast", "mountPath": "/fast"}],
        command=["sh", "-c", "echo $(K) $$(K)"],
        envFrom=[{"configMapRef": {"name": "late"}, "prefix": "CM_"}],
    )
    obj["spec"]["volumes"] = [
        {"name": "late", "configMap": {"name": "late"}},
        {"name": "fast", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}},
    ]

    def warnings(reason: str) -> list[str]:
        return [e["message"] for e in client.created if e["reason"] == reason]

    def waiting() -> dict[str, object]:
        states = client.statuses[-1]["containerStatuses"] if client.statuses else [{}]
        return dict((states[0].get("state") or {}).get("waiting") or {})

    async def scenario() -> None:
        await agent.sync("ADDED", obj)
        await until(lambda: bool(warnings("FailedMount")))
        assert (
            warnings("FailedMount")[0]
            == 'MountVolume.SetUp failed for volume "late" : configmap "late" not found'
        )
        assert launches.launched == []
        client.objects["configmaps", "ns", "late"] = {"data": {"f": "1", "has space": "x"}}
        await until(lambda: waiting().get("reason") == "CreateContainerConfigError")
        assert waiting()["message"] == 'configmap "later" not found'
        assert client.statuses[-1]["phase"] == "Pending"
        assert warnings("Failed")[-1] == 'Error: configmap "later" not found'
        client.objects["configmaps", "ns", "later"] = {"data": {"k": "v"}}
        await settle(agent)

    asyncio.run(scenario())
    ((description, _),) = launches.launched
    late = (VolumeFile("f", 0o644, b"1"), VolumeFile("has space", 0o644, b"x"))
    assert description.volumes == (Volume("late", "files", files=late), Volume("fast", "tmpfs", 32))
    (container,) = description.containers
    assert (dict(container.env)["K"], dict(container.env)["CM_f"]) == ("v", "1")
    assert warnings("InvalidEnvironmentVariableNames") == [
        "Keys [CM_has space] from the EnvFrom configmap ns/late were skipped since they are considered "
        "invalid environment variable names."
    ]
    assert container.args == ("sh", "-c", "echo v $(K)")
    assert container.mounts == (Mount("late", "/etc/late"), Mount("fast", "/fast"))
    assert client.statuses[-1]["phase"] == "Succeeded"


def test_a_changed_configmap_reaches_the_running_pod_as_a_new_generation(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(podsources, "REFRESH_S", 0.01)
    client, launches = FakeClient(), Launches([control.Init(1), control.Started("main", 7, 0)])
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    config = AgentConfig("esx-01", short_tmp / "state", "depot:5000", 2000, 1024, resolv_conf=None)
    agent = Agent(config, client, reporter, FakeImages(short_tmp), launcher=launches)  # type: ignore[arg-type]
    obj = pod(volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}])
    obj["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "app"}}]
    client.objects["configmaps", "ns", "app"] = {"data": {"color": "blue"}}

    async def scenario() -> FakeVm:
        await agent.sync("ADDED", obj)
        await until(lambda: bool(launches.launched))
        channel = launches.launched[0][1]
        await asyncio.sleep(0.1)
        assert channel.updates == []  # unchanged: nothing sent
        client.objects["configmaps", "ns", "app"] = {"data": {"color": "green"}}
        await until(lambda: bool(channel.updates))
        await agent.sync("DELETED", obj)
        await settle(agent)
        return channel

    channel = asyncio.run(scenario())
    assert channel.updates[0] == ("cfg", (VolumeFile("color", 0o644, b"green"),))


def test_run_as_non_root_keeps_a_root_image_waiting_with_the_kubelets_message(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "CONFIG_RETRY_S", (0.01,))
    client, launches = FakeClient(), Launches(DONE)
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    config = AgentConfig("esx-01", short_tmp / "state", "depot:5000", 2000, 1024, resolv_conf=None)
    agent = Agent(config, client, reporter, FakeImages(short_tmp), launcher=launches)  # type: ignore[arg-type]
    obj = pod()
    obj["spec"]["securityContext"] = {"runAsNonRoot": True}  # the fake image has no User: root

    def waiting() -> dict[str, object]:
        states = client.statuses[-1]["containerStatuses"] if client.statuses else [{}]
        return dict((states[0].get("state") or {}).get("waiting") or {})

    async def scenario() -> None:
        await agent.sync("ADDED", obj)
        await until(lambda: waiting().get("reason") == "CreateContainerConfigError")
        assert str(waiting()["message"]).startswith("container has runAsNonRoot and image will run as root")
        assert launches.launched == []
        await agent.sync("DELETED", obj)
        await settle(agent)

    asyncio.run(scenario())
