"""Follow the pod-kernel compile: kbuild's lines become an object count, all of them go to a log.

The compile is the longest quiet step of a first ``nestlab up`` (minutes on two shared cores). kbuild
prints one ``  CC      path/file.o`` line per object it compiles (its default, non-``-s`` output),
so counting those lines is an honest measure of progress. The total is only an estimate: the count of
the previous complete build, kept next to the kernel cache (``objects.count``); on a machine that never
built the kernel there is none, and the step shows a plain count instead of a made-up percentage.

The compile runs through :func:`nestlab.runtime.proc.run_streamed` (output lines to the log file and
to a callback as they arrive; the error names the log).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from nestlab.progress import Report, as_progress
from nestlab.runtime.proc import run_streamed

# kbuild's quiet_cmd_cc_o_c / quiet_cmd_as_o_S lines: "  CC      kernel/fork.o", "  AS      arch/x86/...o"
OBJECT_LINE = re.compile(r"^\s+(?:CC|AS)\s+(?:\[M\]\s+)?(\S+\.o)\s*$")
ESTIMATE_FILE = "objects.count"


def compiled_object(line: str) -> str | None:
    """The object a kbuild output line says it compiles, else None."""
    match = OBJECT_LINE.match(line)
    return match.group(1) if match else None


def read_estimate(path: Path) -> int | None:
    """The object count of the previous complete build, if one was recorded."""
    try:
        value = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


def write_estimate(path: Path, count: int) -> None:
    """Record a complete build's object count for the next build's total."""
    if count > 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{count}\n", encoding="ascii")


def _is_object_line(line: str) -> bool:
    return compiled_object(line) is not None


def compile_counting(
    argv: Sequence[str], *, timeout: float, log: Path, estimate: Path, progress: Report, title: str
) -> int:
    """Run a kbuild compile as a progress step counting objects; returns the count (and records it)."""
    step = as_progress(progress).step(title, total=read_estimate(estimate), unit="objects")
    count = 0

    def on_line(line: str) -> None:
        nonlocal count
        compiled = compiled_object(line)
        if compiled is not None:
            count += 1
            step.advance(detail=compiled)

    try:
        run_streamed(argv, timeout=timeout, log=log, on_line=on_line, noise=_is_object_line)
    except BaseException:
        step.failed(f"after {count:,} objects; see {log}")
        raise
    write_estimate(estimate, count)
    step.done(f"{count:,} objects compiled")
    return count
