"""Apply OCI image layers (tar, tar+gzip) to a root directory, whiteouts included.

Layers come from a registry, so they are untrusted input: every path is resolved *inside* the
root, the way a chroot would resolve it (an absolute symlink such as ``/lib -> /usr/lib`` points
into the root, ``..`` stops at the root), so no member can write, link or delete outside it.
Whiteouts (``.wh.name`` deletes ``name``, ``.wh..wh..opq`` empties its directory) apply to the
lower layers only, as the OCI image spec says, so each layer is read in two passes: whiteouts
first, then content. Owners, modes and mtimes are kept (mkfs.erofs copies them into the image).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath

from nestlab.errors import NestlabError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_MAX_LINKS = 40  # symlink hops before giving up, as Linux's ELOOP does


class LayerError(NestlabError):
    """A layer is corrupt, in an unsupported format, or tries to escape the root."""

    reason = "ErrImagePull"


def _parts(name: str) -> list[str]:
    return [p for p in PurePosixPath("/" + name).parts[1:] if p not in ("", ".")]


def resolve(root: Path, name: str, *, follow_last: bool = False) -> Path:
    """The host path of ``name`` inside ``root``, following symlinks as if ``root`` were ``/``."""
    todo = _parts(name)
    current: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = root.joinpath(*current, part)
        if candidate.is_symlink() and (todo or follow_last):
            hops += 1
            if hops > _MAX_LINKS:
                raise LayerError(f"too many symlinks resolving {name!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []  # absolute links point into the root, never to the host
            todo = _parts(target) + todo
            continue
        current.append(part)
    return root.joinpath(*current)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _whiteouts(tar: tarfile.TarFile, root: Path) -> None:
    for member in tar:
        parent, _, base = member.name.rstrip("/").rpartition("/")
        if base == OPAQUE:
            directory = resolve(root, parent, follow_last=True)
            if directory.is_dir():
                for child in directory.iterdir():
                    _remove(child)
        elif base.startswith(WHITEOUT):
            target = base[len(WHITEOUT) :]
            if target in ("", ".", ".."):
                raise LayerError(f"layer has a bad whiteout {member.name!r}")
            _remove(resolve(root, parent, follow_last=True) / target)


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, owners: bool) -> None:
    base = member.name.rstrip("/").rpartition("/")[2]
    if base.startswith(WHITEOUT) or not _parts(member.name):
        return
    dest = resolve(root, member.name)
    if not dest.parent.is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
    if member.isdir():
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            _remove(dest)
        dest.mkdir(exist_ok=True)
    elif not _create(tar, member, root, dest):
        return
    if owners:
        with contextlib.suppress(OSError):
            os.lchown(dest, member.uid, member.gid)
    if not member.issym():
        os.chmod(dest, stat.S_IMODE(member.mode))
        os.utime(dest, (member.mtime, member.mtime))


def _create(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, dest: Path) -> bool:
    """Create a non-directory member at ``dest``; False for what is skipped (device nodes)."""
    _remove(dest)
    if member.isreg():
        source = tar.extractfile(member)
        if source is None:
            raise LayerError(f"layer member {member.name!r} has no data")
        with source, dest.open("wb") as out:
            shutil.copyfileobj(source, out)
    elif member.issym():
        os.symlink(member.linkname, dest)
    elif member.islnk():
        target = resolve(root, member.linkname)
        if target.is_symlink() or not target.is_file():
            raise LayerError(f"layer hard link {member.name!r} -> {member.linkname!r}: no such file")
        os.link(target, dest)
    elif member.isfifo():
        os.mkfifo(dest)
    else:
        return False  # device nodes: a pod gets its own devtmpfs; images need none
    return True


def apply(layer: Path, root: Path) -> None:
    """Apply one layer file (tar or tar+gzip, detected by content) to ``root``."""
    owners = os.geteuid() == 0
    try:
        with tarfile.open(layer, "r:*") as tar:
            _whiteouts(tar, root)
            for member in tar:
                _write(tar, member, root, owners)
    except tarfile.TarError as exc:
        raise LayerError(f"layer {layer.name}: not a tar or tar+gzip archive ({exc})") from exc
    except OSError as exc:
        raise LayerError(f"layer {layer.name}: could not unpack: {exc}") from exc
