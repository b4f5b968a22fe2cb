"""Per-node overlays: the shared read-only image below, the node's own writable layer above.

Mounts are found by reading /proc/self/mountinfo rather than trusted from the state file, so
cleanup after a crash unmounts exactly what is really there.
"""

from __future__ import annotations

from pathlib import Path

from nestlab.runtime import proc

TIMEOUT_S = 60.0  # unmounting a busy overlay waits for writeback; more than this means it is stuck
MOUNTINFO = Path("/proc/self/mountinfo")


def overlay_argv(lower: Path, upper: Path, work: Path, target: Path) -> list[str]:
    """mount(8) arguments for an overlay of ``upper`` on ``lower`` at ``target``."""
    return [
        "mount", "-t", "overlay", "overlay",
        "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
        str(target),
    ]  # fmt: skip


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_points(mountinfo: str) -> list[Path]:
    """Every mount point listed in a mountinfo text."""
    return [Path(_unescape(line.split()[4])) for line in mountinfo.splitlines() if line.strip()]


def mounts_under(directory: Path, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Mount points at or below ``directory``, deepest first (the order to unmount them)."""
    base = directory.resolve()
    found = [
        point
        for point in mount_points(mountinfo.read_text(encoding="utf-8"))
        if point == base or base in point.parents
    ]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def is_mounted(target: Path, mountinfo: Path = MOUNTINFO) -> bool:
    """Whether something is mounted exactly at ``target``."""
    return target.resolve() in mount_points(mountinfo.read_text(encoding="utf-8"))


def mount_overlay(run: proc.Runner, lower: Path, upper: Path, work: Path, target: Path) -> None:
    """Mount the node's overlay at ``target`` unless it already is."""
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    if not is_mounted(target):
        run(overlay_argv(lower, upper, work, target), timeout=TIMEOUT_S)


def unmount_all(run: proc.Runner, directory: Path) -> None:
    """Unmount everything at or below ``directory``, deepest first."""
    for point in mounts_under(directory):
        run(["umount", str(point)], timeout=TIMEOUT_S)
