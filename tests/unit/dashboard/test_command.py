"""``nestlab dashboard`` on bad input: one clear line and exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.api.client import Credentials
from nestlab.commands import dashboard as command
from nestlab.dashboard.lab import LabAccess
from nestlab.dashboard.labfacts import Endpoints, LabWatcher


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_a_lab_that_is_not_up_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(command.dashboard, ["--name", "nolab"])
    assert result.exit_code == 2, result.output
    lines = _errors(result.output)
    assert len(lines) == 1
    assert lines[0].startswith("error: lab 'nolab' ")


def test_a_port_in_use_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_lab(name: str) -> LabAccess:
        watcher = LabWatcher(name, Endpoints("https://127.0.0.1:9", None), list, None)
        return LabAccess(name, "https://127.0.0.1:9", Credentials("https://127.0.0.1:9"), watcher)

    monkeypatch.setattr(command, "for_lab", fake_lab)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(command.dashboard, ["--name", "x", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == [
        f"error: port {port} on 127.0.0.1 is in use: choose another with --port"
    ]
