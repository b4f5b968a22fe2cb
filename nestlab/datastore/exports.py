"""One ``qemu-storage-daemon`` per attached volume: its command line, its start, its end, its adoption.

Why one daemon per volume: ``max-connections=1`` is a property of the NBD *server*, so a server of
its own per volume is what makes the datastore itself refuse a second client while the attached
node holds the volume (ReadWriteOnce enforced below Kubernetes too), and killing the daemon is a
detach that no client can outlive. The export name is a random token only the attached node is
given; QEMU's file locking (``locking`` is on by default) keeps a second daemon off the same file.

Starting waits for ``--pidfile``: qemu-storage-daemon writes it after creating its NBD server and
exports and before serving, so the file's presence means the port listens. Processes are started
through the one process runner (:func:`nestlab.runtime.proc.spawn`) in their own session, so they
outlive a restart of the service (its unit uses ``KillMode=process``); the restarted service
re-adopts a daemon by the PID in its state when ``/proc/PID/cmdline`` still names qemu-storage-daemon
and the volume's file (a recycled PID is never adopted, as :mod:`nestlab.agent.vms` does for QEMU).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from nestlab.datastore.errors import DatastoreUnavailableError
from nestlab.runtime import proc

PROGRAM = "qemu-storage-daemon"
NODE = "volume"  # the block node's name inside each daemon (one node per daemon)
EXPORT_ID = "export"
START_TIMEOUT_S = 15.0  # a loaded 2-core lab starts a daemon in well under a second; 15 s is a hang
STOP_GRACE_S = 5.0  # SIGTERM lets the daemon flush and close the file; then SIGKILL
_POLL_S = 0.05
_TAIL = 1500  # characters of the daemon's log quoted in an error: enough for QEMU's one-line reason


class Spawn(Protocol):
    """The signature of :func:`nestlab.runtime.proc.spawn` this module uses."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        new_session: bool = True,
    ) -> proc.Process: ...


class PortInUseError(DatastoreUnavailableError):
    """The chosen port is taken by another program: the caller tries the next one."""


def qemu_escape(value: str) -> str:
    """A value inside a QEMU option string (a comma is doubled)."""
    return value.replace(",", ",,")


def export_argv(volume_file: Path, host: str, port: int, export: str, pidfile: Path) -> list[str]:
    """The command line exporting ``volume_file`` as NBD export ``export`` on ``host:port``."""
    return [
        PROGRAM,
        "--blockdev",
        # discard=unmap: a pod's fstrim punches holes back into the sparse file
        f"driver=file,node-name={NODE},filename={qemu_escape(str(volume_file))},discard=unmap",
        "--nbd-server",
        f"addr.type=inet,addr.host={host},addr.port={port},max-connections=1",
        "--export",
        f"type=nbd,id={EXPORT_ID},node-name={NODE},name={qemu_escape(export)},writable=on",
        "--pidfile",
        str(pidfile),
    ]


def runs(pid: int, volume_file: Path) -> bool:
    """Whether ``pid`` is a live qemu-storage-daemon exporting ``volume_file`` (zombies are not)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return PROGRAM.encode() in cmdline and f"filename={qemu_escape(str(volume_file))},".encode() in cmdline


class Exporter:
    """Starts, stops and recognises the daemons of one datastore (``workdir`` keeps logs and pidfiles)."""

    def __init__(
        self,
        workdir: Path,
        host: str,
        *,
        spawn: Spawn = proc.spawn,
        alive: Callable[[int, Path], bool] = runs,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.workdir = workdir
        self.host = host
        self._spawn = spawn
        self._alive = alive
        self._start_timeout = start_timeout
        self._children: dict[int, proc.Process] = {}

    def start(self, volume_id: str, volume_file: Path, port: int, export: str) -> int:
        """Start the daemon and wait until it serves; its PID. PortInUseError when ``port`` is taken,
        DatastoreUnavailableError (with the daemon's own words) for any other failure."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        pidfile = self.workdir / f"{volume_id}.pid"
        log = self.workdir / f"{volume_id}.log"
        pidfile.unlink(missing_ok=True)
        offset = log.stat().st_size if log.exists() else 0
        try:
            child = self._spawn(export_argv(volume_file, self.host, port, export, pidfile), log=log)
        except proc.ProcessError as exc:
            raise DatastoreUnavailableError(f"cannot export {volume_id}: {exc}") from exc
        deadline = time.monotonic() + self._start_timeout
        while not pidfile.exists():
            code = child.poll()
            if code is not None:
                raise self._failure(volume_id, port, code, _tail(log, offset))
            if time.monotonic() > deadline:
                child.stop(STOP_GRACE_S)
                raise DatastoreUnavailableError(
                    f"{PROGRAM} exporting {volume_id} did not start serving within "
                    f"{self._start_timeout:g}s: {_tail(log, offset) or 'no output'} (see {log})"
                )
            time.sleep(_POLL_S)
        self._children[child.pid] = child
        return child.pid

    def _failure(self, volume_id: str, port: int, code: int, output: str) -> DatastoreUnavailableError:
        if "Address already in use" in output:
            return PortInUseError(f"port {self.host}:{port} is in use by another program")
        return DatastoreUnavailableError(
            f"{PROGRAM} exporting {volume_id} on {self.host}:{port} exited {code}: "
            f"{output or 'no output'} (see {self.workdir / (volume_id + '.log')})"
        )

    def running(self, pid: int, volume_file: Path) -> bool:
        """Whether the export with ``pid`` still serves ``volume_file``."""
        return self._alive(pid, volume_file)

    def stop(self, pid: int, volume_file: Path) -> None:
        """End the export (SIGTERM, then SIGKILL); a PID that is no longer its daemon is left alone."""
        child = self._children.pop(pid, None)
        if child is not None:
            child.stop(STOP_GRACE_S)
            return
        # adopted from an earlier service process: not our child, so signal it and watch /proc
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            if not self._alive(pid, volume_file):
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while self._alive(pid, volume_file) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
        if self._alive(pid, volume_file):
            raise DatastoreUnavailableError(f"{PROGRAM} pid {pid} exporting {volume_file} survived SIGKILL")

    def forget(self) -> list[int]:
        """Let go of every daemon (the service stops; exports stay up for the next service process)."""
        pids = list(self._children)
        self._children.clear()
        return pids


def _tail(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as stream:
            stream.seek(offset)
            text = stream.read().decode(errors="replace")
    except OSError:
        return ""
    return " ".join(text.split())[-_TAIL:]
