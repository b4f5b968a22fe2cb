"""Directory trees the depot publishes, packed into one reproducible tar archive each.

Ansible's ``copy`` of a directory costs a module round trip per file: publishing the forty-odd
wheels of the wheelhouse and the pod-kernel apt repository to the depot took close to two minutes
of a warm ``up`` on a loaded two-core machine. One archive, unpacked by ``unarchive``, is one
transfer. The archive is a function of the files' names and bytes only (sorted entries, owner
root, directories 0755 and files 0644, time 0), so an unchanged tree gives the same archive and
the provisioning digest (:mod:`nestlab.provision.playdigest`) does not see a change that is not one.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

DIR_MODE = 0o755
FILE_MODE = 0o644
CHUNK = 1 << 20


def _entry(name: str, *, directory: bool, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = DIR_MODE if directory else FILE_MODE
    info.size, info.mtime = size, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def pack_tree(source: Path, archive: Path) -> bool:
    """Pack every directory and regular file under ``source`` (not ``source`` itself) into
    ``archive``, rewriting it only when its bytes would differ; True when it changed."""
    scratch = archive.with_name(archive.name + ".partial")
    with tarfile.open(scratch, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(source.rglob("*")):
            name = path.relative_to(source).as_posix()
            if path.is_dir() and not path.is_symlink():
                tar.addfile(_entry(name, directory=True))
            elif path.is_file():
                with path.open("rb") as data:
                    tar.addfile(_entry(name, directory=False, size=path.stat().st_size), data)
    if archive.exists() and same_bytes(scratch, archive):
        scratch.unlink()
        return False
    scratch.replace(archive)
    return True


def same_bytes(one: Path, two: Path) -> bool:
    """Whether two files hold the same bytes."""
    if one.stat().st_size != two.stat().st_size:
        return False
    with one.open("rb") as a, two.open("rb") as b:
        while True:
            chunk = a.read(CHUNK)
            if chunk != b.read(CHUNK):
                return False
            if not chunk:
                return True
