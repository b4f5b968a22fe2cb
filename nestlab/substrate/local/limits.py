"""Kernel limits of the outer machine that a lab of nspawn nodes outgrows, raised before nodes boot.

Every node runs its own systemd, and each systemd (plus journald, udev-less services, sshd) takes
inotify instances from the one per-user pool of the outer kernel. Debian's default of 128
instances runs out with a lab or two up: nodes then hang at boot with "Failed to create inotify
object: Too many open files" and never answer SSH. Limits are only ever raised, never lowered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nestlab.substrate.local.errors import LocalSubstrateError

SYSCTL = Path("/proc/sys")


@dataclass(frozen=True)
class Limit:
    """A sysctl and the least value a lab needs."""

    key: str
    least: int
    why: str


LIMITS = (
    # ~10 instances per node; 1024 leaves room for several nine-node labs side by side
    Limit("fs/inotify/max_user_instances", 1024, "systemd in every node watches files"),
    Limit("fs/inotify/max_user_watches", 524288, "systemd and journald in every node"),
)


def raise_limits(root: Path = SYSCTL, limits: tuple[Limit, ...] = LIMITS) -> list[str]:
    """Raise every limit below its least value; returns what was changed, as ``key: old -> new``."""
    changed = []
    for limit in limits:
        path = root / limit.key
        try:
            current = int(path.read_text().strip())
            if current < limit.least:
                path.write_text(f"{limit.least}\n")
                changed.append(f"{limit.key.replace('/', '.')}: {current} -> {limit.least}")
        except (OSError, ValueError) as exc:
            raise LocalSubstrateError(
                f"cannot raise {limit.key.replace('/', '.')} to {limit.least} ({limit.why}): {exc}; "
                f"run `sysctl -w {limit.key.replace('/', '.')}={limit.least}` as root"
            ) from exc
    return changed
