"""Run a command with /etc, /usr and /var overlaid by scratch directories: a throwaway copy of this
machine for running a host role (apt, dpkg, files in /etc) for real without changing the machine.

Usage (as root, in a private mount namespace):
    unshare --mount --propagation private -- python role_sandbox.py SCRATCH -- COMMAND...
Everything COMMAND writes under /etc, /usr or /var lands in SCRATCH/upper/<dir>; the overlays vanish
with the namespace when COMMAND exits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nestlab.runtime import proc

OVERLAID = ("etc", "usr", "var")


def main(argv: list[str]) -> None:
    scratch, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: role_sandbox.py SCRATCH -- COMMAND...")
    for name in OVERLAID:
        upper, work = Path(scratch) / "upper" / name, Path(scratch) / "work" / name
        upper.mkdir(parents=True, exist_ok=True)  # a second run continues where the first left off
        work.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir=/{name},upperdir={upper},workdir={work}"
        proc.run(["mount", "-t", "overlay", "overlay", "-o", options, f"/{name}"], timeout=30)
    os.execvp(command[0], command)  # noqa: S606 - replaces this helper, argv from the test


if __name__ == "__main__":
    main(sys.argv[1:])
