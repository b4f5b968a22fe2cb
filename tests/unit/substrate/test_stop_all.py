"""Stopping every node at once (what `nestlab down` does): real processes that look like a node's
nspawn (a shell named systemd-nspawn whose child stands in for the container's init)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nestlab.runtime import proc
from nestlab.substrate.local import pids
from nestlab.substrate.local.errors import LocalSubstrateError
from nestlab.substrate.local.layout import MachineName

# the "init" is a background sleep: killing it (pulling the power) ends the shell as the
# container's init ending ends nspawn; a clean stop is the shell's own SIGTERM handling
OBEYS = "trap 'kill $init; exit 0' TERM; sleep 600 & init=$!; wait $init"
IGNORES_TERM = "trap '' TERM; sleep 600 & init=$!; while kill -0 $init 2>/dev/null; do wait $init; done"


Starter = Callable[[str, str], tuple[MachineName, int]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    """Start a fake node; every one left running when the test ends is stopped."""
    fake = tmp_path / "systemd-nspawn"
    shutil.copy("/bin/sh", fake)
    started: list[proc.Process] = []

    def starter(machine: str, script: str) -> tuple[MachineName, int]:
        process = proc.spawn([str(fake), "-c", script, f"--machine={machine}"])
        started.append(process)
        pid = pids.adopt(process)
        deadline = time.monotonic() + 30
        while not pids.children(pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # the shell has not started its "init" yet
        return MachineName(machine), pid

    yield starter
    for process in started:
        for child in pids.children(process.pid):
            os.kill(child, signal.SIGKILL)
        process.stop(0.1)


def test_every_node_is_stopped_cleanly_at_once(start: Starter) -> None:
    nodes = dict(start(f"lab-n{i}", OBEYS) for i in range(3))
    assert all(pids.is_running(pid, machine) for machine, pid in nodes.items())
    pids.stop_all(nodes, grace=30)
    assert not any(pids.is_running(pid, machine) for machine, pid in nodes.items())


def test_pulling_the_power_stops_nodes_that_ignore_a_clean_stop(start: Starter) -> None:
    nodes = dict(start(f"lab-h{i}", IGNORES_TERM) for i in range(3))
    pids.stop_all(nodes, hard=True, grace=30)
    assert not any(pids.is_running(pid, machine) for machine, pid in nodes.items())


def test_a_node_ignoring_sigterm_is_killed_after_the_grace(start: Starter) -> None:
    nodes = dict([start("lab-stubborn", IGNORES_TERM)])
    pids.stop_all(nodes, grace=0.2)
    assert not any(pids.is_running(pid, machine) for machine, pid in nodes.items())


def test_gone_or_foreign_pids_are_left_alone() -> None:
    pids.stop_all({MachineName("lab-gone"): 2**22 + 7}, grace=0.1)  # no such process: nothing to do


def test_a_survivor_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pids, "is_running", lambda pid, machine: True)
    monkeypatch.setattr(pids, "_signal", lambda pid, sig: None)
    monkeypatch.setattr(pids, "KILL_WAIT_S", 0.05)
    with pytest.raises(LocalSubstrateError, match=r"lab-x \(pid 1234\)"):
        pids.stop_all({MachineName("lab-x"): 1234}, grace=0.05)
