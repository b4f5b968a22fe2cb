"""A real swtpm for the duration of a fixture: started in a directory of its own, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nestlab.trust import swtpm


@contextmanager
def running_swtpm(root: Path) -> Iterator[swtpm.Swtpm]:
    """A TPM 2.0 swtpm keeping its state and log under ``root``; stopped on exit, also on failure."""
    instance = swtpm.start_swtpm(root / "state", log=root / "swtpm.log")
    try:
        yield instance
    finally:
        instance.stop()
