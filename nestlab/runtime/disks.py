"""Disk images for pod VMs: read-only container images (erofs) and the ephemeral ext4 disk.

A vSphere Pod gets its container images as disks and writes to an ephemeral VMDK; here the image
is an erofs file system made from an unpacked root directory, and the ephemeral disk is a sparse
ext4 file. Both are made with the Debian tools (erofs-utils, e2fsprogs) through ``proc.run``.
"""

from __future__ import annotations

import os
from pathlib import Path

from nestlab.runtime import proc

MKFS_TIMEOUT_S = 300.0  # seconds; a few hundred MB of image takes well under a minute
EPHEMERAL_DEFAULT_MIB = 256  # sparse: costs only what the containers write
_FIXED_TIME = "0"  # erofs timestamps pinned, so the same tree gives the same image bytes


def make_image(root: Path, image: Path, run: proc.Runner = proc.run) -> Path:
    """An erofs image of the directory tree ``root`` (owners and modes preserved)."""
    if not root.is_dir():
        raise proc.ProcessError(f"container root {root} is not a directory")
    tmp = image.with_name(image.name + ".tmp")
    run(["mkfs.erofs", "--quiet", f"-T{_FIXED_TIME}", str(tmp), str(root)], timeout=MKFS_TIMEOUT_S)
    os.replace(tmp, image)
    return image


def make_ephemeral(image: Path, size_mib: int = EPHEMERAL_DEFAULT_MIB, run: proc.Runner = proc.run) -> Path:
    """A sparse ext4 disk of ``size_mib`` for the containers' writable layers."""
    with image.open("wb") as handle:
        handle.truncate(size_mib * 1024 * 1024)
    run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "nestlab-eph",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            str(image),
        ],
        timeout=MKFS_TIMEOUT_S,
    )
    return image


def busybox_root(root: Path, busybox: Path = Path("/bin/busybox"), applets: tuple[str, ...] = ()) -> Path:
    """A minimal container root: Debian's static busybox as /bin/busybox with applet links."""
    if not busybox.exists():
        raise proc.ProcessError(f"{busybox} is missing: install busybox-static (scripts/bootstrap.sh)")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("tmp", "proc", "sys", "dev", "etc"):
        (root / name).mkdir(exist_ok=True)
    target = root / "bin" / "busybox"
    target.write_bytes(busybox.read_bytes())
    target.chmod(0o755)
    for applet in applets or ("sh", "echo", "cat", "sleep", "ls", "id", "hostname", "ip", "true", "false"):
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    return root
