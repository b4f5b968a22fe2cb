"""The pod initramfs: pod-init built static with musl, packed as ``/init`` in a newc cpio archive.

The archive is written here rather than by cpio(1) so that it is reproducible (fixed mtimes and
inode numbers: same pod-init, same bytes, same measurement) and so that ``/dev/console`` can be
created without root. Both pod-init and the archive are cached by content hash under
``cache_dir()/podinit/<key>/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.runtime import proc

SOURCE_DIR = Path(__file__).resolve().parent / "podinit"
SOURCE = SOURCE_DIR / "podinit.c"
"""The one translation unit; it ``#include``s the other ``*.c``/``*.h`` files of :data:`SOURCE_DIR`."""
CC = "musl-gcc"
CFLAGS = ("-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-std=gnu11")
COMPILE_TIMEOUT_S = 300.0  # seconds; a few on an idle machine
_NEWC_MAGIC = "070701"
_TRAILER = "TRAILER!!!"
_CONSOLE = (5, 1)  # /dev/console: char major 5, minor 1


@dataclass(frozen=True)
class Entry:
    """One member of a cpio archive."""

    name: str
    """Path inside the archive, without a leading slash."""
    mode: int
    """Full st_mode: file type bits and permissions."""
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)
    """(major, minor) for device nodes."""


@dataclass(frozen=True)
class PodInitramfs:
    """A cached initramfs and the pod-init inside it."""

    key: str
    podinit: Path
    initramfs: Path


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def newc(entries: Iterable[Entry]) -> bytes:
    """A newc ("070701") cpio archive of ``entries``, with a trailer; deterministic."""
    out = bytearray()
    members = [*entries, Entry(_TRAILER, 0)]
    for ino, entry in enumerate(members, start=1):
        name = entry.name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        fields = (
            ino if entry.name != _TRAILER else 0,
            entry.mode,
            0,  # uid: root
            0,  # gid: root
            nlink if entry.name != _TRAILER else 1,
            0,  # mtime: fixed, for reproducible bytes
            len(entry.data),
            0,
            0,
            entry.rdev[0],
            entry.rdev[1],
            len(name),
            0,  # check: unused in newc
        )
        header = _NEWC_MAGIC + "".join(f"{field:08X}" for field in fields)
        out += header.encode() + name
        out += _pad(len(header) + len(name))
        out += entry.data + _pad(len(entry.data))
    return bytes(out)


def pod_entries(podinit: bytes) -> list[Entry]:
    """The members of the pod initramfs: the mount points pod-init uses and ``/init``."""
    dirs = [Entry(name, stat.S_IFDIR | 0o755) for name in ("dev", "proc", "sys", "run", "eph")]
    console = Entry("dev/console", stat.S_IFCHR | 0o600, rdev=_CONSOLE)
    return [*dirs, console, Entry("init", stat.S_IFREG | 0o755, podinit)]


def build_key(source: bytes) -> str:
    """Changes when the pod-init source, the compiler flags or this module change."""
    digest = hashlib.sha256()
    digest.update(source)
    digest.update(" ".join((CC, *CFLAGS)).encode())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def sources(directory: Path = SOURCE_DIR) -> bytes:
    """Every pod-init source file, named and in name order: what the build key hashes (an
    included file that changes must change the key as much as podinit.c itself)."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".c", ".h") and p.is_file())
    return b"".join(p.name.encode() + b"\0" + p.read_bytes() + b"\0" for p in files)


def build(*, root: Path | None = None, run: proc.Runner = proc.run) -> PodInitramfs:
    """Compile pod-init and pack the initramfs, or return the cached ones."""
    root = root or paths.cache_dir() / "podinit"
    source = sources()
    key = build_key(source)
    final = root / key
    result = PodInitramfs(key, final / "pod-init", final / "initramfs.cpio")
    if result.initramfs.exists():
        return result
    staging = root / f"{key}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        run([CC, *CFLAGS, "-o", str(staging / "pod-init"), str(SOURCE)], timeout=COMPILE_TIMEOUT_S)
        binary = (staging / "pod-init").read_bytes()
        (staging / "initramfs.cpio").write_bytes(newc(pod_entries(binary)))
        try:
            os.replace(staging, final)
        except OSError:
            if not result.initramfs.exists():  # another process won the race with the same bytes
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
