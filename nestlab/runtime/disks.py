"""Disk images for pod VMs: read-only container images (erofs) and the ephemeral ext4 disk.

A vSphere Pod gets its container images as disks and writes to an ephemeral VMDK; here the image
is an erofs file system made from an unpacked root directory, and the ephemeral disk is a sparse
ext4 file. Both are made with the Debian tools (erofs-utils, e2fsprogs) through ``proc.run``.
Image roots start from Debian's static busybox; a tool busybox lacks (curl, for TLS) comes from the
outer machine's Debian with the shared libraries ``ldd`` names and the dynamic loader.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from nestlab.runtime import proc

MKFS_TIMEOUT_S = 300.0  # seconds; a few hundred MB of image takes well under a minute
EPHEMERAL_DEFAULT_MIB = 256  # sparse: costs only what the containers write
_FIXED_TIME = "0"  # erofs timestamps pinned, so the same tree gives the same image bytes
LDD_TIMEOUT_S = 30.0  # ldd resolves a few dozen libraries in well under a second


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


def parse_ldd(output: str) -> tuple[PurePosixPath, ...]:
    """The files ``ldd`` says a binary loads: each library's path and the dynamic loader's, in order.

    The vDSO (no file) is skipped; a static binary needs nothing. A library ldd could not find is
    an error naming it, since the copied binary would not start without it.
    """
    found: list[PurePosixPath] = []
    for line in output.splitlines():
        # "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
        # (the loader), "linux-vdso.so.1 (0x...)" (the kernel's: no file), "libx.so.1 => not found"
        text = line.strip()
        if not text or text in ("statically linked", "not a dynamic executable"):
            continue
        name, arrow, where = text.partition("=>")
        if where.strip().startswith("not found"):
            raise proc.ProcessError(f"ldd cannot find {name.strip()}: install the package that ships it")
        words = (where if arrow else text).split()
        if words and words[0].startswith("/"):
            found.append(PurePosixPath(words[0]))
        elif not (words and words[-1].startswith("(0x") and len(words) <= 2):  # the vDSO
            raise proc.ProcessError(f"unexpected ldd output line: {text!r}")
    return tuple(dict.fromkeys(found))


def copy_dynamic(binary: Path, root: Path, run: proc.Runner = proc.run) -> tuple[PurePosixPath, ...]:
    """Copy the dynamically linked ``binary`` into the image root ``root`` with its library closure.

    Each file lands at the path the loader looks for it (the binary at its own path, the loader at
    its ``PT_INTERP`` path, each library where ``ldd`` found it), as a regular file: the outer
    machine's symlinks (``/lib -> usr/lib``, ``libz.so.1 -> libz.so.1.2.13``) are followed, so the
    root needs no ld.so.cache. ``ldd`` may run the binary's loader on it: use it only on binaries
    from the machine's own packages. The paths copied (binary first) are returned.
    """
    if not binary.is_absolute() or not binary.is_file():
        raise proc.ProcessError(
            f"{binary} is missing: install the package that ships it (scripts/apt-packages.txt)"
        )
    needed = parse_ldd(run(["ldd", str(binary)], timeout=LDD_TIMEOUT_S).stdout)
    copied = (PurePosixPath(binary), *needed)
    for source in copied:
        target = root / source.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)  # contents and mode bits of the file a symlink names
    return copied
