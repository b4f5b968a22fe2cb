"""Node processes by PID: is this PID still the node's nspawn, and stop it.

A node started by this Python process is a child: it is stopped through its
:class:`~nestlab.runtime.proc.Process` (which reaps it). A node started by an earlier run (the CLI
exits while the lab runs) is stopped by signalling its PID from the state file, after checking
that the PID still belongs to that node's nspawn.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from nestlab.runtime import proc
from nestlab.substrate.local.errors import LocalSubstrateError
from nestlab.substrate.local.layout import MachineName
from nestlab.substrate.local.nspawn import is_node_process

STOP_GRACE_S = 60.0  # a node's clean poweroff takes seconds; on a loaded machine much longer
POLL_S = 0.2
KILL_WAIT_S = 30.0  # a SIGKILLed nspawn still has to reap its container and clean up after it

_children: dict[int, proc.Process] = {}
"""Nodes this Python process started, kept so they are reaped (no zombies) when stopped."""


def adopt(process: proc.Process) -> int:
    """Remember a node process this Python process spawned; returns its PID."""
    _children[process.pid] = process
    return process.pid


def cmdline(pid: int, proc_root: Path = Path("/proc")) -> list[str]:
    """The command line of ``pid``; empty when it is gone (or a zombie)."""
    try:
        raw = (proc_root / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_running(pid: int | None, machine: MachineName) -> bool:
    """Whether ``pid`` is the live nspawn of ``machine``."""
    if pid is None:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    return is_node_process(cmdline(pid), machine)


def node_pids(nodes_dir: Path, proc_root: Path = Path("/proc")) -> dict[MachineName, int]:
    """Every node nspawn on the machine booting a root under ``nodes_dir`` (one lab's nodes)."""
    prefix = f"--directory={nodes_dir}/"
    found: dict[MachineName, int] = {}
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        argv = cmdline(int(entry.name), proc_root)
        if not any(arg.startswith(prefix) for arg in argv):
            continue
        for arg in argv:
            if arg.startswith("--machine="):
                machine = MachineName(arg.split("=", 1)[1])
                if is_node_process(argv, machine):
                    found[machine] = int(entry.name)
    return found


def children(pid: int, proc_root: Path = Path("/proc")) -> list[int]:
    """The direct children of ``pid`` (empty when it is gone)."""
    found: list[int] = []
    try:
        tasks = list((proc_root / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def pull_power(pid: int, machine: MachineName) -> None:
    """A node failing at once, as when a host loses power: SIGKILL the node's init (the first process of
    its PID namespace, so every process in it dies with it); no service gets to shut down cleanly
    (keepalived sends no last advertisement, etcd no leave). :func:`stop` then reaps the nspawn."""
    if not is_running(pid, machine):
        return
    for child in children(pid):
        os.kill(child, signal.SIGKILL)


def stop(
    pid: int,
    machine: MachineName,
    grace: float = STOP_GRACE_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """SIGTERM the node's nspawn (a clean poweroff), SIGKILL after ``grace``; wait until gone."""
    child = _children.pop(pid, None)
    if child is not None:
        child.stop(grace)
        return
    if not is_running(pid, machine):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        os.kill(pid, sig)
        deadline = clock() + grace
        while is_running(pid, machine) and clock() < deadline:
            time.sleep(POLL_S)
        if not is_running(pid, machine):
            return
    raise LocalSubstrateError(f"node {machine} (pid {pid}) survived SIGKILL; check `ps -p {pid}`")


def stop_all(
    nodes: Mapping[MachineName, int],
    *,
    hard: bool = False,
    grace: float = STOP_GRACE_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Stop every node of ``nodes`` (machine -> nspawn PID) at once: a clean poweroff each (or, with
    ``hard``, their power pulled), SIGKILL after ``grace``; return when all are gone. Stopping them
    together rather than one after another is what keeps ``down`` short: each clean poweroff is
    mostly waiting."""
    live = {machine: pid for machine, pid in nodes.items() if is_running(pid, machine)}
    for machine, pid in live.items():
        if hard:
            pull_power(pid, machine)
        else:
            _signal(pid, signal.SIGTERM)
    for sig, wait in ((signal.SIGKILL, grace), (None, KILL_WAIT_S)):
        deadline = clock() + wait
        while clock() < deadline:
            live = {m: p for m, p in live.items() if is_running(p, m)}
            if not live:
                return
            time.sleep(POLL_S)
        if sig is not None:
            for pid in live.values():
                _signal(pid, sig)
    left = ", ".join(f"{machine} (pid {pid})" for machine, pid in sorted(live.items()))
    raise LocalSubstrateError(f"nodes survived SIGKILL: {left}; check them with `ps -p PID`")


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal a node's nspawn (or, started by this process, its Process) unless it is gone already."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
