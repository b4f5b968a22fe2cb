"""Maintenance mode's loop (cordon, evict with retries, wait, time out) on a fake API, and the CLI's bad input."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nestlab import maintenance
from nestlab.api import resources as r
from nestlab.api.client import Credentials
from nestlab.api.status import ApiError
from nestlab.cli import cli
from nestlab.errors import UsageError
from nestlab.maintenance import MaintenanceTimeoutError, evacuate

Obj = dict[str, Any]
HOST = "esx-02"
SHORT = "The disruption budget web needs 2 healthy pods and has 2 currently"


def pod(name: str, node: str = HOST, *, controlled: bool = True) -> Obj:
    meta: Obj = {"name": name, "namespace": "demo", "labels": {"app": "web"}}
    if controlled:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-1", "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node}}


class FakeApi:
    """Nodes, pods and budgets in memory; evictions mark pods deleting unless ``refuse`` says no.

    ``agent_delay`` passes of the loop after an eviction, the "agent" confirms the deletion."""

    def __init__(self, pods: list[Obj], refuse: int = 0, agent_delay: int = 1) -> None:
        self.node: Obj = {"metadata": {"name": HOST}, "spec": {}}
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.refuse = refuse
        self.agent_delay = agent_delay
        self.deleting: dict[str, int] = {}
        self.pdbs = [
            {
                "metadata": {"name": "web", "namespace": "demo", "generation": 1},
                "spec": {"selector": {"matchLabels": {"app": "web"}}},
                "status": {"observedGeneration": 1, "desiredHealthy": 2, "currentHealthy": 2},
            }
        ]
        self.patches: list[Obj] = []
        self.evictions: list[str] = []

    async def get(self, resource: r.Resource, namespace: str, name: str) -> Obj:
        if name != HOST:
            raise ApiError(404, "NotFound", f'nodes "{name}" not found')
        return self.node

    async def list(
        self, resource: r.Resource, namespace: str = "", *, labels: str = "", fields: str = ""
    ) -> Obj:
        if resource is r.PDBS:
            return {"items": self.pdbs}
        for name in [n for n, left in self.deleting.items() if left <= 0]:
            del self.pods[name], self.deleting[name]  # the agent confirmed: VM stopped
        self.deleting = {n: left - 1 for n, left in self.deleting.items()}
        node = fields.removeprefix("spec.nodeName=")
        return {"items": [p for p in self.pods.values() if p["spec"]["nodeName"] == node]}

    async def patch(
        self, resource: r.Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        self.patches.append(patch)
        self.node["spec"].update(patch["spec"])
        return self.node

    async def request(self, method: str, path: str, body: Any = None) -> Obj:
        name = body["metadata"]["name"]
        self.evictions.append(name)
        if self.refuse > 0:
            self.refuse -= 1
            raise ApiError(
                429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."
            )
        self.pods[name]["metadata"]["deletionTimestamp"] = "2026-12-05T12:00:30Z"
        self.deleting[name] = self.agent_delay
        return {"kind": "Status", "status": "Success", "code": 201}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def drain(api: FakeApi, timeout: float = 60.0) -> tuple[maintenance.Evacuation, list[str], Clock]:
    lines: list[str] = []
    clock = Clock()
    result = asyncio.run(evacuate(api, HOST, timeout, lines.append, clock=clock, sleep=clock.sleep))
    return result, lines, clock


def test_enter_cordons_evicts_and_waits_for_the_agent() -> None:
    api = FakeApi([pod("web-a"), pod("web-b"), pod("db", node="esx-01")])
    result, lines, _clock = drain(api)
    assert api.patches == [{"spec": {"unschedulable": True}}]
    assert sorted(result.evicted) == ["demo/web-a", "demo/web-b"]
    assert "db" in api.pods  # another host's pod is left alone
    assert lines[0] == "cordoned esx-02: SchedulingDisabled, no new pod is placed there"
    assert "evicting demo/web-a" in lines
    assert "waiting for demo/web-a to stop on esx-02" in lines


def test_a_blocked_eviction_is_retried_and_names_the_budget_once() -> None:
    api = FakeApi([pod("web-a")], refuse=3)
    result, lines, clock = drain(api)
    assert api.evictions == ["web-a"] * 4
    blocked = [line for line in lines if "cannot be evicted yet" in line]
    assert len(blocked) == 1  # upstream's words, then why the budget allows no eviction (issue 15)
    assert blocked[0].startswith(
        f"[yellow]demo/web-a cannot be evicted yet:[/] {SHORT}: it allows 0 disruptions"
    )
    assert blocked[0].endswith("minAvailable/maxUnavailable (retrying every 5s)")
    assert result.evicted == ["demo/web-a"]
    assert clock.now >= 15.0  # three refusals, five seconds apart


def test_timeout_names_the_blocking_budget_and_keeps_the_host_cordoned() -> None:
    api = FakeApi([pod("web-a")], refuse=10_000)
    with pytest.raises(MaintenanceTimeoutError) as caught:
        drain(api, timeout=20.0)
    message = str(caught.value)
    assert message.splitlines()[0] == "esx-02 still holds 1 pod(s) after 20s; it stays cordoned"
    assert f"demo/web-a is blocked: {SHORT}" in message
    assert caught.value.exit_code == 1
    assert api.node["spec"]["unschedulable"] is True


def test_timeout_names_pods_that_do_not_stop() -> None:
    api = FakeApi([pod("web-a")], agent_delay=10_000)
    with pytest.raises(MaintenanceTimeoutError, match="demo/web-a was evicted but has not stopped yet"):
        drain(api, timeout=10.0)


def test_pods_without_a_controller_are_evicted_with_a_warning() -> None:
    api = FakeApi([pod("loose", controlled=False)])
    result, lines, _clock = drain(api)
    assert result.evicted == ["demo/loose"]
    assert "evicting demo/loose (it has no controller: nothing recreates it on another host)" in lines


def test_unregistered_host_is_bad_input() -> None:
    api = FakeApi([])
    lines: list[str] = []
    with pytest.raises(UsageError, match="host esx-09 has no Node in the lab's API"):
        asyncio.run(evacuate(api, "esx-09", 1.0, lines.append))


def test_exit_uncordons_with_a_null_like_kubectl() -> None:
    api = FakeApi([])
    api.node["spec"]["unschedulable"] = True
    assert asyncio.run(maintenance.cordon(api, HOST, False)) is True
    assert api.patches == [{"spec": {"unschedulable": None}}]
    api.node["spec"] = {}
    assert asyncio.run(maintenance.cordon(api, HOST, False)) is False


def make_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, creds: bool = True) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    lab = tmp_path / "labs" / "t1"
    (lab / "pki").mkdir(parents=True)
    (lab / "spec.yaml").write_text("apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t1}\n")
    if creds:
        for name in ("admin.crt", "admin.key", "ca.crt"):
            (lab / "pki" / name).write_text("")


def test_cli_unknown_host_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_lab(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["host", "maintenance", "enter", "cp-1", "--name", "t1"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: 'cp-1' is not a host of lab t1 (hosts: esx-01, esx-02, esx-03)"


def test_cli_without_a_lab_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["host", "maintenance", "exit", "esx-01", "--name", "nolab"])
    assert result.exit_code == 2
    assert "no lab named 'nolab'" in result.output


def test_cli_lab_never_brought_up_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_lab(tmp_path, monkeypatch, creds=False)
    result = CliRunner().invoke(cli, ["host", "maintenance", "enter", "esx-01", "--name", "t1"])
    assert result.exit_code == 2
    assert "lab 't1' has no admin credentials yet" in result.output


def test_cli_lab_down_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_lab(tmp_path, monkeypatch)
    with socket.socket() as sock:  # a port nobody listens on: connection refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(maintenance, "credentials", lambda _name: Credentials(f"http://127.0.0.1:{port}"))
    result = CliRunner().invoke(cli, ["host", "maintenance", "enter", "esx-01", "--name", "t1"])
    assert result.exit_code == 2
    assert f"the API of lab t1 at http://127.0.0.1:{port} does not answer" in result.output
    assert "is the lab up?" in result.output


def test_cli_rejects_a_negative_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_lab(tmp_path, monkeypatch)
    result = CliRunner().invoke(
        cli, ["host", "maintenance", "enter", "esx-01", "--name", "t1", "--timeout", "-1"]
    )
    assert result.exit_code == 2
    assert "--timeout" in result.output


def test_help_documents_the_choice_about_pods_without_controllers() -> None:
    result = CliRunner().invoke(cli, ["host", "maintenance", "enter", "--help"])
    assert result.exit_code == 0
    assert "Unlike `kubectl drain`" in result.output
    assert "NOT recreated elsewhere" in result.output
