"""Pod VMs as the agent holds them: launched by this agent, or adopted after the agent restarted.

The agent must survive its own restart without losing or duplicating pods. QEMU runs in its own
session (and the service uses ``KillMode=process``), so it outlives the agent; its control port
reconnects (``reconnect=1``) to the socket a new agent listens on at the same path, and pod-init's
writes wait meanwhile, so no event is lost. The stream port (exec, attach, port-forward) is
listened on again the same way; sessions of the old agent died with it, and pod-init ends them
when the port's host end closes. :func:`adopt` recognises a live QEMU by the PID saved
in the pod's record *and* its command line naming the pod's work directory (a recycled PID is not
adopted). Both kinds of VM answer the same :class:`PodHandle` interface.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Protocol

from nestlab.runtime import control, pod, poddesc, qemu
from nestlab.runtime.qmp import Qmp, QmpError
from nestlab.runtime.streams import PodStreams

STOP_SETTLE_S = pod.STOP_SETTLE_S


class PodHandle(Protocol):
    """What the agent needs from a running pod VM."""

    pid: int
    streams: PodStreams | None
    """The pod's stream port (exec, attach, port-forward); None: this VM has none."""

    def next_event(self, timeout: float) -> control.Event | None:
        """The next pod-init event; None once the VM closed the channel; ControlProtocolError on timeout."""
        ...

    def alive(self) -> bool:
        """QEMU still runs."""
        ...

    def stop(self) -> None:
        """Graceful stop through pod-init (its grace period), then end QEMU for sure."""
        ...

    def send_update(self, volume: str, files: tuple[poddesc.VolumeFile, ...]) -> None:
        """Send pod-init a new generation of a file volume (a ConfigMap/Secret that changed)."""
        ...


class LaunchedVm:
    """A pod VM this agent started (through :func:`nestlab.runtime.pod.launch`)."""

    def __init__(self, vm: pod.PodVm) -> None:
        self.vm = vm
        self.pid = vm.vm.pid
        self.streams = vm.streams

    def next_event(self, timeout: float) -> control.Event | None:
        return self.vm.next_event(timeout)

    def send_update(self, volume: str, files: tuple[poddesc.VolumeFile, ...]) -> None:
        self.vm.channel.send_update(volume, files)

    def alive(self) -> bool:
        return self.vm.vm.process.poll() is None

    def stop(self) -> None:
        finished = self.vm.channel.closed or any(isinstance(e, control.PodDone) for e in self.vm.events)
        if not finished:
            try:
                self.vm.stop()
            except qemu.VmError:
                pass  # pod-init finished while we asked it to stop: end QEMU below
            else:
                return
        with contextlib.suppress(qemu.VmError):
            self.vm.vm.wait(STOP_SETTLE_S)  # pod-init resets the VM right after its last event
        self.vm.vm.stop()
        self.vm.channel.close()
        if self.streams is not None:
            self.streams.close()


def pid_runs_in(pid: int, workdir: Path) -> bool:
    """Whether ``pid`` is a live QEMU whose command line names ``workdir``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(workdir).encode() in cmdline and b"qemu-system" in cmdline


class AdoptedVm:
    """A pod VM started by an earlier agent process: control and stream sockets re-listened, stopped
    by QMP/PID."""

    def __init__(self, pid: int, workdir: Path, grace_s: int) -> None:
        self.pid = pid
        self.workdir = workdir
        self.grace_s = grace_s
        socket_path = workdir / "control.sock"
        socket_path.unlink(missing_ok=True)  # the old agent's listener died with it
        self.channel = control.Channel(socket_path)
        owner = pod.runas_ids(qemu.default_runas())
        try:  # QEMU runs as the pod uid by now: it must be allowed to connect to the new sockets
            if owner is not None:
                self.channel.chown(*owner)
            self.streams: PodStreams | None = PodStreams.listen(workdir / pod.STREAM_SOCKET, owner=owner)
        except BaseException:
            self.channel.close()
            raise

    def next_event(self, timeout: float) -> control.Event | None:
        if self.channel.closed or not self.alive():
            # QEMU gone: drain what it sent, then report the channel closed
            with contextlib.suppress(control.ControlProtocolError):
                return self.channel.next_event(0.2)
            return None
        return self.channel.next_event(timeout)

    def send_update(self, volume: str, files: tuple[poddesc.VolumeFile, ...]) -> None:
        self.channel.send_update(volume, files)

    def alive(self) -> bool:
        return pid_runs_in(self.pid, self.workdir)

    def stop(self) -> None:
        if not self.alive():  # already gone: nothing to ask pod-init, no connection to wait for
            self._close()
            return
        deadline = time.monotonic() + self.grace_s + STOP_SETTLE_S
        with contextlib.suppress(control.ControlProtocolError, OSError):
            self.channel.send_stop()
            while self.alive() and time.monotonic() < deadline:
                if isinstance(
                    self.channel.next_event(max(deadline - time.monotonic(), 0.01)), control.PodDone
                ):
                    break
        self._end()
        self._close()

    def _close(self) -> None:
        self.channel.close()
        if self.streams is not None:
            self.streams.close()

    def _end(self) -> None:
        if self._wait_gone(5.0):  # pod-init resets the VM right after its last event
            return
        with contextlib.suppress(QmpError, OSError):
            qmp = Qmp.connect(self.workdir / "qmp.sock")
            qmp.execute("quit")
            qmp.close()
        if self._wait_gone(5.0):
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            if self._wait_gone(wait):
                return
        raise qemu.VmError(f"QEMU pid {self.pid} of {self.workdir} survived SIGKILL")

    def _wait_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def adopt(pid: int, workdir: Path, grace_s: int) -> AdoptedVm | None:
    """An :class:`AdoptedVm` for ``pid`` if it is still this pod's QEMU, else None."""
    if pid <= 0 or not pid_runs_in(pid, workdir):
        return None
    return AdoptedVm(pid, workdir, grace_s)
