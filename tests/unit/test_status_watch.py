"""`nestlab status --watch` off a terminal: the status is printed again only when it changed, and
Ctrl-C ends the watch quietly (exit 0)."""

from __future__ import annotations

import time
from ipaddress import IPv4Address

import pytest
from click.testing import CliRunner

from nestlab import cli, lifecycle
from nestlab.spec.model import Role
from nestlab.substrate.local.lifecycle import NodeStatus
from nestlab.tenancy import namespaceapi


def node(state: str) -> NodeStatus:
    return NodeStatus("esx-01", Role.HOST, "esx-01", IPv4Address("198.18.100.31"), state, state == "running")  # type: ignore[arg-type]


def test_watch_prints_each_change_once_until_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    states = iter(["running", "running", "stopped", "stopped", "running"])
    sleeps: list[float] = []

    def status(name: str) -> list[NodeStatus]:
        assert name == "lab1"
        try:
            return [node(next(states))]
        except StopIteration:
            raise KeyboardInterrupt from None

    monkeypatch.setattr(lifecycle, "status", status)
    monkeypatch.setattr(lifecycle, "attestation_summary", lambda _name: {"esx-01": "passed"})
    monkeypatch.setattr(namespaceapi, "summary", lambda _name: [])
    monkeypatch.setattr(time, "sleep", sleeps.append)  # the watch looks it up when it starts
    result = CliRunner().invoke(cli.cli, ["status", "--name", "lab1", "--watch", "--interval", "1.5"])
    assert result.exit_code == 0, result.output
    frames = result.output.split("--- ")[1:]
    assert len(frames) == 3  # running, stopped, running: the repeats are not printed
    assert "running" in frames[0]
    assert "stopped" in frames[1]
    assert "running" in frames[2]
    assert sleeps == [1.5] * 5


def test_interval_below_half_a_second_is_refused() -> None:
    result = CliRunner().invoke(cli.cli, ["status", "--watch", "--interval", "0.1"])
    assert result.exit_code == 2
    assert "0.1" in result.output
