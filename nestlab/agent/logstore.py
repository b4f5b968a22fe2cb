"""Per-container log files on the host, fed from the pod's console: the kubelet's /var/log/pods.

pod-init prints every container line to the VM's serial console as ``[container] line``; QEMU
writes that console to ``vm/console.log`` (renamed ``console.previous.log`` when the pod gets a
new VM). The :class:`Collector` reads what is new in it, stamps each line with the time it read
it, and appends it in the CRI format to ``logs/<container>/<instance>.log`` in the pod's state
directory, ``instance`` being the container's restart count, so ``--previous`` and ``--timestamps``
work as upstream. Storage is bounded as the kubelet's: a file over 10 MiB is rotated to
``<instance>.log.1`` (only the current file is served, as the kubelet serves only the current
one), and only the current and previous instance of each container are kept. Where the collector
stopped reading is saved in ``logs/cursor.json``, so an agent restart resumes there (lines written
while the agent was down are stamped with the time it read them).

The same lines are also written in the kubelet's own layout,
``/var/log/pods/<namespace>_<pod>_<uid>/<container>/<instance>.log`` (:class:`Mirror`, when the agent
is given that directory): the one host directory a vSphere Pod may mount (hostPath, read-only), so
a log shipper in a pod finds the node's container logs where it looks for them upstream. A pod's
directory there goes when its state directory goes (the pod was deleted), as the kubelet removes it.

Which instance a line belongs to is decided from the agent's record when the line is read: a
running container writes its current instance; one waiting after a termination (back-off, a new
VM) is still flushing the one that ended. pod-init reports a start before the new instance can
write, so the only misattribution possible is a line read in the few milliseconds between a
restart and the agent seeing its ``started`` event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from nestlab.agent import podstate
from nestlab.api.logfilter import cri_line

log = logging.getLogger(__name__)
MAX_FILE_BYTES = 10 * 1024 * 1024  # the kubelet's containerLogMaxSize default (10Mi)
MAX_READ_BYTES = 1024 * 1024  # console bytes taken per pass: a flood cannot stall the agent's event loop
COLLECT_INTERVAL_S = 0.25  # how stale a stored log (and a line's timestamp) can be
LOG_PODS_DIR = Path("/var/log/pods")  # the kubelet's; the agent's --log-pods-dir may move it
_LINE = re.compile(r"\[([a-z0-9]([-a-z0-9]*[a-z0-9])?)\] (.*)")


class LogUnavailableError(Exception):
    """The log asked for does not exist (yet); the message is the kubelet's."""


@dataclass(frozen=True)
class ContainerView:
    """What the log endpoint needs to know about one container, from the agent's record."""

    name: str
    state: str
    """``running``, ``waiting`` or ``terminated``."""
    reason: str
    restarts: int
    has_last: bool
    """Whether a previous instance terminated (``lastState.terminated``)."""

    @property
    def writing(self) -> int:
        """The instance whose lines the console carries now."""
        return (
            self.restarts - 1
            if self.state == "waiting" and self.has_last and self.restarts > 0
            else self.restarts
        )


@dataclass(frozen=True)
class PodLogs:
    """One pod's console files, its stored logs and its containers."""

    namespace: str
    name: str
    directory: Path
    """The pod's state directory (``<state>/pods/<uid>``)."""
    containers: dict[str, ContainerView]

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    @property
    def uid(self) -> str:
        """The pod's uid: its state directory is named after it."""
        return self.directory.name

    def log_file(self, container: str, instance: int) -> Path:
        return self.logs / container / f"{instance}.log"


def pod_logs(record: podstate.PodRecord) -> PodLogs:
    """The log view of a pod the agent runs (or ran)."""
    views = {
        c.name: ContainerView(c.name, c.state, c.reason, c.restarts, c.last is not None)
        for c in record.all()  # init containers too: ``kubectl logs -c <init container>``
    }
    return PodLogs(record.namespace, record.name, Path(record.workdir), views)


def instance_to_read(view: ContainerView, pod: str, previous: bool) -> int:
    """Which instance ``kubectl logs [--previous]`` shows; LogUnavailableError in the kubelet's words."""
    if previous:
        if not view.has_last or view.restarts < 1:
            raise LogUnavailableError(f'previous terminated container "{view.name}" in pod "{pod}" not found')
        return view.restarts - 1
    if view.state in ("running", "terminated"):
        return view.restarts
    if view.has_last and view.restarts > 0:
        return view.restarts - 1  # back-off: the kubelet shows the last terminated instance
    reason = {
        "ErrImagePull": "image can't be pulled",
        "ImagePullBackOff": "trying and failing to pull image",
    }.get(view.reason, view.reason or "no logs yet")
    raise LogUnavailableError(f'container "{view.name}" in pod "{pod}" is waiting to start: {reason}')


def still_writing(pod: PodLogs | None, container: str, instance: int) -> bool:
    """Whether ``instance`` of ``container`` is running (a followed log goes on)."""
    view = None if pod is None else pod.containers.get(container)
    return view is not None and view.state == "running" and view.restarts == instance


def split_console(data: bytes, final: bool) -> tuple[list[tuple[str, str]], int]:
    """(container, text) for each complete ``[container] text`` line in ``data``, and the bytes used.

    A partial last line is left for the next pass unless ``final`` (the file will not grow) or
    it fills the whole read (a line longer than a pass: taken as it is).
    """
    end = len(data) if final else data.rfind(b"\n") + 1
    if end == 0 and len(data) >= MAX_READ_BYTES:
        end = len(data)
    out = []
    for raw in data[:end].split(b"\n"):
        match = _LINE.fullmatch(raw.decode("utf-8", "replace").rstrip("\r"))
        if match:
            out.append((match.group(1), match.group(3)))
    return out, end


@dataclass(frozen=True)
class Mirror:
    """The kubelet's ``/var/log/pods`` layout, kept beside the agent's own files."""

    root: Path
    """``/var/log/pods`` (or the directory the agent was given)."""
    pods_root: Path
    """The agent's ``<state>/pods``: a pod's directory under ``root`` lives as long as its own there."""

    def pod_dir(self, pod: PodLogs) -> Path:
        return self.root / f"{pod.namespace}_{pod.name}_{pod.uid}"

    def log_file(self, pod: PodLogs, container: str, instance: int) -> Path:
        return self.pod_dir(pod) / container / f"{instance}.log"

    def collect_garbage(self) -> None:
        """Remove the directories of pods whose state directory is gone (deleted pods)."""
        for entry in self.root.iterdir() if self.root.is_dir() else ():
            uid = entry.name.rsplit("_", 1)[-1]
            if entry.name.count("_") >= 2 and entry.is_dir() and not (self.pods_root / uid).exists():
                shutil.rmtree(entry, ignore_errors=True)


def ensure_log_pods_dir(root: Path) -> Path:
    """Create the node's ``/var/log/pods`` at agent start (0755: QEMU reads it as its own user when
    it exports it to a pod, and the kubelet's is world-readable too)."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    return root


class Store:
    """Appends lines to a pod's per-instance files: rotation and clean-up of old instances."""

    def __init__(self, pod: PodLogs, mirror: Mirror | None = None) -> None:
        self.pod = pod
        self.mirror = mirror

    def append(self, container: str, instance: int, lines: list[str]) -> None:
        self._append(self.pod.log_file(container, instance), instance, lines)
        if self.mirror is not None:
            self._append(self.mirror.log_file(self.pod, container, instance), instance, lines)

    def _append(self, path: Path, instance: int, lines: list[str]) -> None:
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
        if not path.exists():
            self._forget_older(path.parent, instance)
        elif path.stat().st_size >= MAX_FILE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
        with path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)

    @staticmethod
    def _forget_older(directory: Path, instance: int) -> None:
        """Keep the previous instance (``--previous``); older ones go, as the kubelet's GC does."""
        for old in directory.glob("*.log*"):
            number = old.name.split(".", 1)[0]
            if number.isdigit() and int(number) < instance - 1:
                old.unlink(missing_ok=True)


class Collector:
    """Moves new console lines of every pod into its stored logs (see the module docstring)."""

    def __init__(
        self,
        pods: Callable[[], Iterable[PodLogs]],
        clock_ns: Callable[[], int] = time.time_ns,
        mirror: Mirror | None = None,
    ) -> None:
        self.pods = pods
        self.clock_ns = clock_ns
        self.mirror = mirror
        """Where the lines are also written in the kubelet's layout; None: nowhere."""
        self._cursors: dict[Path, tuple[int | None, int]] = {}
        """(console inode, offset) per pod directory: read from ``cursor.json`` once, then kept here."""

    def ingest_all(self) -> None:
        for pod in list(self.pods()):
            try:
                self.ingest(pod)
            except OSError as exc:  # one pod's disk trouble must not stop the others' logs
                log.warning("pod %s/%s: its console could not be collected: %s", pod.namespace, pod.name, exc)
        if self.mirror is not None:
            self.mirror.collect_garbage()

    def ingest(self, pod: PodLogs) -> None:
        """Take what is new in ``pod``'s console(s) into its stored logs."""
        if not pod.directory.is_dir():
            self._cursors.pop(pod.directory, None)
            return  # deleted: nothing may recreate its directory
        pod.logs.mkdir(exist_ok=True)
        cursor_file = pod.logs / "cursor.json"
        if pod.directory not in self._cursors:
            self._cursors[pod.directory] = self._cursor(cursor_file)
        inode, offset = self._cursors[pod.directory]
        vm = pod.directory / "vm"
        current, previous = vm / "console.log", vm / "console.previous.log"
        now_inode = _inode(current)
        start = (inode, offset)
        if inode is not None and now_inode != inode:
            if _inode(previous) == inode:  # the pod got a new VM: finish the old console first
                self._take(pod, previous, offset, final=True)
            inode, offset = now_inode, 0
        if now_inode is not None:
            if inode == now_inode and offset > current.stat().st_size:
                offset = 0  # the same file was truncated (a console opened again with O_TRUNC)
            inode = now_inode
            offset += self._take(pod, current, offset, final=False)
        if (inode, offset) != start:
            self._cursors[pod.directory] = (inode, offset)
            tmp = cursor_file.with_name("cursor.json.tmp")
            tmp.write_text(json.dumps({"inode": inode, "offset": offset}))
            os.replace(tmp, cursor_file)

    @staticmethod
    def _cursor(path: Path) -> tuple[int | None, int]:
        try:
            data = json.loads(path.read_text())
            return int(data["inode"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, 0

    def _take(self, pod: PodLogs, console: Path, offset: int, *, final: bool) -> int:
        with console.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(MAX_READ_BYTES)
        lines, used = split_console(data, final)
        stamp = self.clock_ns()
        batches: dict[tuple[str, int], list[str]] = {}
        for container, text in lines:
            view = pod.containers.get(container)
            if view is not None:
                batches.setdefault((container, view.writing), []).append(cri_line(stamp, text))
        store = Store(pod, self.mirror)
        for (container, instance), batch in batches.items():
            store.append(container, instance, batch)
        return used

    async def run(self, interval: float = COLLECT_INTERVAL_S) -> None:
        """Collect every ``interval`` seconds until cancelled."""
        while True:
            try:
                self.ingest_all()
            except Exception:  # a bug here must not end log collection for the agent's lifetime
                log.exception("collecting pod consoles failed; trying again")
            await asyncio.sleep(interval)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def read_from(path: Path, position: int, inode: int | None) -> tuple[list[str], int, int | None]:
    """Complete lines of a stored log from ``position``; a rotated file (new inode) is read from 0.

    Returns the lines, the new position and the file's inode (None while it does not exist).
    """
    try:
        with path.open("rb") as handle:
            now_inode = os.fstat(handle.fileno()).st_ino
            if inode is not None and now_inode != inode:
                position = 0
            handle.seek(position)
            data = handle.read()
    except FileNotFoundError:
        return [], position, inode
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", "replace")
    return text.splitlines(keepends=True), position + end, now_inode
