"""Facts about the outer machine that the pre-check compares a lab with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nestlab.runtime.accel import Accel, probe
from nestlab.spec.precheck import Capacity


def memory_mib(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Total memory in MiB, from /proc/meminfo."""
    for line in meminfo.read_text(encoding="ascii").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ValueError(f"no MemTotal line in {meminfo}")


def disk_free_mib(path: Path) -> int:
    """Free MiB on the filesystem that holds ``path`` (or its closest existing parent)."""
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free // (1024 * 1024)


def capacity(state_dir: Path, accel: Accel | None = None) -> Capacity:
    """Probe this machine: CPUs usable by this process, memory, disk, accelerator."""
    chosen = accel or probe()
    return Capacity(
        cpus=len(os.sched_getaffinity(0)),
        memory_mib=memory_mib(),
        disk_free_mib=disk_free_mib(state_dir),
        accelerator=chosen.name,
        accelerator_reason=chosen.reason,
    )
