"""The agent keeps a pod with a claim ContainerCreating (FailedMount Events, as the kubelet's) until
the claim is bound and its volume attached to this node, then launches it with the block volume
(fakes for the API and the VM)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import agent as agent_module
from nestlab.agent import pvattach
from nestlab.agent.agent import Agent, AgentConfig
from nestlab.agent.node import NodeInfo, NodeReporter
from nestlab.runtime import poddesc
from nestlab.runtime.poddesc import Mount, Volume
from tests.unit.agent.test_agent_reconcile import FakeClient, FakeImages, Launches, pod, settle, short_tmp
from tests.unit.agent.test_agent_volumes import DONE, until
from tests.unit.agent.test_pvattach import URL, pv, pvc, va

__all__ = ["short_tmp"]  # the fixture
Obj = dict[str, Any]


def test_a_pod_waits_for_its_claim_and_its_attachment_then_gets_the_disk(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "CONFIG_RETRY_S", (60.0,))  # a claim wait uses its own, short delay
    monkeypatch.setattr(pvattach, "RETRY_S", 0.01)
    client, launches = FakeClient(), Launches(DONE)
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    config = AgentConfig("esx-01", short_tmp / "state", "depot:5000", 2000, 1024, resolv_conf=None)
    agent = Agent(config, client, reporter, FakeImages(short_tmp), launcher=launches)  # type: ignore[arg-type]
    obj = pod(volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "ro", "mountPath": "/ro"}])
    obj["spec"]["volumes"] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
        {"name": "ro", "persistentVolumeClaim": {"claimName": "data-web-0", "readOnly": True}},
    ]

    def warnings(reason: str) -> list[str]:
        return [e["message"] for e in client.created if e["reason"] == reason]

    listed: list[str] = []
    real_list = client.list

    async def listing(resource: Any, namespace: str = "", **kw: str) -> Obj:
        listed.append(resource.plural)
        return await real_list(resource, namespace, **kw)

    client.list = listing  # type: ignore[method-assign]

    async def scenario() -> None:
        await agent.sync("ADDED", obj)
        await until(lambda: bool(warnings("FailedMount")))
        assert 'persistentvolumeclaims "data-web-0" not found' in warnings("FailedMount")[0]
        client.objects["persistentvolumeclaims", "ns", "data-web-0"] = pvc()
        client.objects["persistentvolumes", "", "pvc-1"] = pv()
        failed = va(attached=False, status={"attachError": {"message": "no datastore"}})
        name = pvattach.attachment_of(pv(), "esx-01")  # the agent GETs it by name, never lists them
        client.objects["volumeattachments", "", name] = failed
        await until(lambda: warnings("FailedMount")[-1].endswith("no datastore"))
        assert warnings("FailedMount")[-1].endswith(
            'unattached volumes=[data ro]: AttachVolume.Attach failed for volume "pvc-1" : no datastore'
        )
        assert not warnings("FailedAttachVolume")  # the attacher's Event, not the agent's
        assert launches.launched == []
        assert client.statuses[-1]["phase"] == "Pending"
        client.objects["volumeattachments", "", name] = va()
        await settle(agent)

    asyncio.run(scenario())
    assert "volumeattachments" not in listed  # the Node authorizer would refuse it
    ((description, _),) = launches.launched
    serial = pvattach.serial_of(pv())
    assert description.volumes == (
        Volume("data", "block", serial=serial, fs_type="ext4", source=URL),
        Volume("ro", "block", serial=serial, fs_type="ext4", source=URL),
    )
    assert description.containers[0].mounts == (Mount("data", "/data"), Mount("ro", "/ro", read_only=True))
    assert description.block_sources() == {serial: URL}
    assert URL not in poddesc.encode(description)  # the export token never reaches the pod
    assert f"volume data block {serial} ext4 rw" in poddesc.encode(description).splitlines()
    assert client.statuses[-1]["phase"] == "Succeeded"


def test_a_pod_without_claims_reads_no_storage_objects(short_tmp: Path) -> None:
    client, launches = FakeClient(), Launches(DONE)
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    config = AgentConfig("esx-01", short_tmp / "state", "depot:5000", 2000, 1024, resolv_conf=None)
    agent = Agent(config, client, reporter, FakeImages(short_tmp), launcher=launches)  # type: ignore[arg-type]
    read: list[str] = []
    real_get, real_list = client.get, client.list

    async def get(resource: object, namespace: str, name: str) -> dict[str, object]:
        read.append(getattr(resource, "plural", ""))
        return await real_get(resource, namespace, name)

    async def listed(resource: object, namespace: str = "", **kw: str) -> dict[str, object]:
        read.append(getattr(resource, "plural", ""))
        return await real_list(resource, namespace, **kw)

    client.get, client.list = get, listed  # type: ignore[method-assign]

    async def scenario() -> None:
        await agent.sync("ADDED", pod())
        await settle(agent)

    asyncio.run(scenario())
    assert launches.launched
    assert not {"persistentvolumeclaims", "persistentvolumes", "volumeattachments"} & set(read)


def test_a_finished_pod_is_reported_terminal_only_once_its_vm_has_ended(short_tmp: Path) -> None:
    """The attacher detaches a terminal pod's volumes at once: pod-init's last sync must be done."""
    client, launches = FakeClient(), Launches(DONE)
    reporter = NodeReporter(client, NodeInfo("esx-01", "198.18.100.11", 2000, 1024, 10, 10250))  # type: ignore[arg-type]
    config = AgentConfig("esx-01", short_tmp / "state", "depot:5000", 2000, 1024, resolv_conf=None)
    agent = Agent(config, client, reporter, FakeImages(short_tmp), launcher=launches)  # type: ignore[arg-type]
    seen: list[tuple[str, bool]] = []
    real_patch = client.patch

    async def patch(resource: object, namespace: str, name: str, body: Obj, subresource: str = "") -> Obj:
        vm = launches.launched[0][1] if launches.launched else None
        seen.append((str(body["status"].get("phase")), vm is not None and vm.stopped))
        return await real_patch(resource, namespace, name, body, subresource)

    client.patch = patch  # type: ignore[method-assign]

    async def scenario() -> None:
        await agent.sync("ADDED", pod())
        await settle(agent)

    asyncio.run(scenario())
    terminal = [stopped for phase, stopped in seen if phase == "Succeeded"]
    assert terminal
    assert all(terminal)
