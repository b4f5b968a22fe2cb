"""A cgroup of its own for every node, so the nodes' systemds stop tearing down each other's units.

With ``--keep-unit`` (this machine has no systemd as PID 1 to ask for a scope), systemd-nspawn puts
its container in ``<nspawn's own cgroup>/payload``. Every nspawn was started from the same cgroup
(the root), so every node of every lab shared ``/payload``: all the nodes' systemds created and
removed the same ``/payload/system.slice/<unit>`` directories. Two nodes starting one unit at the
same moment collided: one node's systemd removed the cgroup the other was about to enter, whose
unit then failed with ``status=219/CGROUP`` ("Failed to attach to cgroup ... No such file or
directory"). Seen as HAProxy failing to start on one of the two load balancers during ``up`` (the
pair starts it together), and as ``systemd-tmpfiles-setup`` failing at boot (``/run/haproxy`` then
missing).

Now each node's nspawn starts in ``<hierarchy>/nestlab/<lab>-<digest>/<node>`` of every hierarchy
systemd tracks processes in (the ``name=systemd`` v1 hierarchy and the cgroup2 one), so its payload,
and everything the node's systemd makes below it, is the node's alone. The digest is of the lab's
directory: two lab directories may hold labs of one name, and taking one down must never touch the
other's cgroups. ``down`` and a node's stop remove those directories again.

The pure half reads the mount table and builds the command line; the side effects (mkdir, rmdir)
are the three functions at the end.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from nestlab.spec import NodeName
from nestlab.substrate.local.errors import LocalSubstrateError

MOUNTS = Path("/proc/self/mounts")
ROOT = "nestlab"
"""The directory, in each hierarchy, holding one directory per lab."""
RMDIR_WAIT_S = 10.0
"""How long a removal waits for a stopped node's last processes to leave its cgroups."""


def hierarchies(mounts: str) -> list[Path]:
    """Where the hierarchies systemd tracks processes in are mounted, from a mounts text: the v1
    ``name=systemd`` one and the cgroup2 one (either may be missing), sorted."""
    found: set[Path] = set()
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        kind, options = fields[2], fields[3].split(",")
        if kind == "cgroup2" or (kind == "cgroup" and "name=systemd" in options):
            found.add(Path(fields[1]))
    return sorted(found)


def lab_key(name: str, root: Path) -> str:
    """The lab's directory name in each hierarchy: its name, and a digest of its lab directory."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"{name}-{digest}"


def lab_dirs(mounted: Sequence[Path], lab: str) -> list[Path]:
    """The lab's directory in each hierarchy (``lab``: its :func:`lab_key`; its nodes' cgroups below)."""
    return [base / ROOT / lab for base in mounted]


def node_dirs(mounted: Sequence[Path], lab: str, node: NodeName) -> list[Path]:
    """The node's own cgroup in each hierarchy (``lab``: its :func:`lab_key`)."""
    return [directory / node for directory in lab_dirs(mounted, lab)]


def enter_argv(dirs: Sequence[Path], argv: Sequence[str]) -> list[str]:
    """``argv`` run by a shell that first moves itself into each of ``dirs`` (``exec`` keeps the
    PID, so the process started is the one whose PID is recorded)."""
    moves = " && ".join(f'echo $$ > "${i + 1}/cgroup.procs"' for i in range(len(dirs)))
    script = f'{moves} && shift {len(dirs)} && exec "$@"' if dirs else 'exec "$@"'
    return ["sh", "-c", script, "sh", *map(str, dirs), *argv]


# -- side effects -----------------------------------------------------------------------------
def mounted(mounts: Path = MOUNTS) -> list[Path]:
    """This machine's hierarchies (:func:`hierarchies` of its mount table)."""
    return hierarchies(mounts.read_text(encoding="utf-8"))


def create(dirs: Sequence[Path]) -> None:
    """Make the node's cgroups (idempotent); LocalSubstrateError saying why not."""
    for directory in dirs:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalSubstrateError(
                f"cannot create the node's cgroup {directory}: {exc.strerror}; nodes need a cgroup "
                "each (run nestlab as root, with the cgroup hierarchies mounted read-write)"
            ) from exc


def remove(dirs: Sequence[Path], wait: float = RMDIR_WAIT_S) -> list[Path]:
    """Remove ``dirs`` and every cgroup below them, deepest first; the ones still busy after
    ``wait`` seconds (a process in them) are returned, the rest is gone."""
    deadline = time.monotonic() + wait
    left: list[Path] = []
    for top in dirs:
        while True:
            busy = _remove_tree(top)
            if not busy or time.monotonic() >= deadline:
                left += busy
                break
            time.sleep(0.2)
    return left


def _remove_tree(top: Path) -> list[Path]:
    """rmdir every cgroup at and below ``top``, deepest first; the busy ones."""
    if not top.is_dir():
        return []
    busy: list[Path] = []
    for where, _subdirs, _files in os.walk(top, topdown=False):
        try:
            os.rmdir(where)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise LocalSubstrateError(f"cannot remove the cgroup {where}: {exc.strerror}") from exc
            busy.append(Path(where))
    return busy
