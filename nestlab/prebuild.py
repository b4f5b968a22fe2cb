"""Build ahead, side by side, what a fresh machine otherwise builds in the middle of the work.

Four artifacts are cached by content and take minutes to build the first time: the pod kernel (a
compile that keeps both cores busy, about 8 minutes), the node image (debootstrap and a few hundred
packages: mostly downloads and dpkg, about 1.5 minutes), the VM disk made from it (about 2 minutes)
and the pod initramfs (seconds). On a fresh machine (CI is always one) the suite used to build each
where a test first needed it (the kernel in the first agent test, the images in the libvirt boot
test), each while nothing else ran.

``make test`` starts ``python -m nestlab.prebuild`` in the background (scripts/test.sh) while lint
and the unit tests keep one core busy. The image builds beside the kernel, since the two need
different resources. Each build holds its cache entry's lock, so a test that needs an artifact
still being built waits for that build instead of starting a second one. On a machine where
everything is cached, this finds each artifact and exits at once. A failed build is reported here
and is not fatal: the test that needs the artifact builds it again and fails with its own error.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from nestlab.runtime import initramfs, kernel
from nestlab.substrate.libvirt.image import ensure_vm_image

Build = tuple[str, Callable[[], object]]

BUILDS: list[Build] = [
    ("node image and VM disk", ensure_vm_image),  # the disk is made from the node tree, after it
    ("pod kernel", kernel.build),
    ("pod initramfs", initramfs.build),
]
"""What to build, each on its own thread (the images first: their downloads come first)."""


def _run(name: str, build: Callable[[], object], failures: list[str]) -> None:
    started = time.monotonic()
    try:
        build()
    except Exception as exc:  # reported, not fatal: the test that needs it builds it again
        failures.append(name)
        print(f"prebuild: {name} failed after {time.monotonic() - started:.0f} s: {exc}", flush=True)
        return
    print(f"prebuild: {name} ready after {time.monotonic() - started:.0f} s", flush=True)


def prebuild(builds: Sequence[Build] = BUILDS) -> list[str]:
    """Run every build at once and wait for all of them; the names of those that failed."""
    failures: list[str] = []
    threads = [
        threading.Thread(target=_run, args=(name, build, failures), name=f"prebuild {name}", daemon=True)
        for name, build in builds
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def main() -> int:
    """Entry point: exit 1 when a build failed (scripts/test.sh only reports it).

    scripts/test.sh ends a prebuild still running with SIGTERM to its whole process group: the
    build tools die with it, and each build then cleans up after itself (its temporary tree or
    work directory) before this process exits, instead of leaving them in the cache."""

    def stopping(_signum: int, _frame: object) -> None:
        print("prebuild: stopped; cleaning up the builds in progress", flush=True)

    signal.signal(signal.SIGTERM, stopping)
    return 1 if prebuild() else 0


if __name__ == "__main__":
    sys.exit(main())
