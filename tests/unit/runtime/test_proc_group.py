"""``Process.stop_group``: a command that started others leaves none of them behind.

Real processes (sh, sleep), no mocks: the point is what the kernel does with the group.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nestlab.runtime import proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return " Z " not in stat  # a zombie waiting for its reaper is gone for this purpose


def _wait_for(path: Path) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never written")


def test_stop_group_ends_the_children_that_plain_stop_leaves(tmp_path: Path) -> None:
    for method, child_survives in (("stop", True), ("stop_group", False)):
        pidfile = tmp_path / f"{method}.pid"
        # The child ignores nothing; the parent traps TERM and exits, as `nestlab up` does.
        script = f"sleep 60 & echo $! > {pidfile}; trap 'exit 1' TERM; wait"
        process = proc.spawn(["sh", "-c", script])
        child = int(_wait_for(pidfile))
        code = getattr(process, method)(grace=5)
        assert code != 0
        try:
            deadline = time.monotonic() + 5
            while _alive(child) and not child_survives and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _alive(child) is child_survives, method
        finally:
            if _alive(child):
                os.kill(child, 9)


def test_stop_group_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    process = proc.spawn(["sh", "-c", f"trap '' TERM; echo yes > {ready}; sleep 60"])
    _wait_for(ready)
    started = time.monotonic()
    assert process.stop_group(grace=0.5) == -9
    assert time.monotonic() - started < 30  # bounded by the grace, not by the sleep
