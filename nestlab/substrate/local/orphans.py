"""Node containers that outlived their nspawn, and how to end them without leaving a veth behind.

When nspawn dies by SIGKILL its container keeps running, re-parented, still holding the node's
address, overlay and veth. Starting the node again would then put a second container on the same
address. Such an orphan is found by its environment (``container=systemd-nspawn``), being PID 1 of
its own PID namespace, a parent that is not nspawn, and a root mount whose overlay upper layer
lies in the lab directory. Ending it: delete its veth (both ends go at once; waiting for the kernel
to reap the namespace would race a restart), then SIGKILL its init, which ends its PID namespace.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from nestlab.runtime import proc
from nestlab.substrate.local.errors import LocalSubstrateError
from nestlab.substrate.local.nspawn import NSPAWN
from nestlab.substrate.local.pids import POLL_S, STOP_GRACE_S, cmdline

TIMEOUT_S = 30.0  # nsenter + ip answer at once
PROC = Path("/proc")


def _status_field(pid: int, field: str, proc_root: Path) -> str:
    try:
        for line in (proc_root / str(pid) / "status").read_text(encoding="utf-8").splitlines():
            if line.startswith(f"{field}:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def root_upperdir(mountinfo: str) -> Path | None:
    """The overlay upper directory of the root mount in a process's mountinfo, if it is one."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/" and " - overlay " in line:
            for option in line.split(" - ", 1)[1].split()[-1].split(","):
                if option.startswith("upperdir="):
                    return Path(option.split("=", 1)[1])
    return None


def find(nodes_dir: Path, proc_root: Path = PROC) -> dict[Path, int]:
    """Orphaned node containers under ``nodes_dir``: their init PID by overlay upper directory."""
    found: dict[Path, int] = {}
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"container=systemd-nspawn" not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            mountinfo = (entry / "mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        pid = int(entry.name)
        if _status_field(pid, "NSpid", proc_root).split()[-1:] != ["1"]:
            continue
        parent = _status_field(pid, "PPid", proc_root)
        if parent.isdigit() and Path((cmdline(int(parent), proc_root) or [""])[0]).name == NSPAWN:
            continue  # its nspawn is alive: stopping that stops the container
        upper = root_upperdir(mountinfo)
        if upper is not None and nodes_dir in upper.parents:
            found[upper] = pid
    return found


def peer_ifindexes(ip_json: str) -> list[int]:
    """Outer-side interface indexes of a namespace's veths, from ``ip -j link show`` run inside it."""
    return [int(link["link_index"]) for link in json.loads(ip_json or "[]") if "link_index" in link]


def host_ifname(ip_json: str, ifindex: int) -> str | None:
    """The outer machine's name for interface ``ifindex``."""
    for link in json.loads(ip_json or "[]"):
        if int(link["ifindex"]) == ifindex:
            return str(link["ifname"])
    return None


def end(
    run: proc.Runner, pid: int, grace: float = STOP_GRACE_S, clock: Callable[[], float] = time.monotonic
) -> None:
    """Delete the orphan's veth, SIGKILL its init and wait until it is gone."""
    inside = run(
        ["nsenter", "-t", str(pid), "-n", "ip", "-j", "link", "show"], timeout=TIMEOUT_S, check=False
    )
    if inside.returncode == 0:
        outside = run(["ip", "-j", "link", "show"], timeout=TIMEOUT_S).stdout
        for index in peer_ifindexes(inside.stdout):
            name = host_ifname(outside, index)
            if name is not None:
                run(["ip", "link", "del", "dev", name], timeout=TIMEOUT_S, check=False)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = clock() + grace
    while cmdline(pid) and clock() < deadline:
        time.sleep(POLL_S)
    if cmdline(pid):
        raise LocalSubstrateError(
            f"orphaned node container (pid {pid}) survived SIGKILL; check `ps -p {pid}`"
        )
