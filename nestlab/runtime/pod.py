"""One pod microVM end to end: description disk, ephemeral disk, control channel, VM, events.

This is what the node agent calls for a vSphere Pod: it lays the pod's files out in a work
directory, listens on the control socket and the stream socket (exec/attach/port-forward,
:mod:`nestlab.runtime.streams`), launches the VM through a :class:`~qemu.Vmm`, and then
reads pod-init's events until the pod is done. Stopping asks pod-init first (SIGTERM to the
containers, their grace period, power off) and falls back to the VMM's stop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nestlab.runtime import control, disks, poddesc, qemu
from nestlab.runtime.accel import Accel
from nestlab.runtime.poddesc import DiskSerial, PodDescription
from nestlab.runtime.streams import PodStreams

STREAM_SOCKET = "stream.sock"  # in the VM's work dir, beside control.sock
STOP_SETTLE_S = 30.0  # after the grace period: pod-init unmounts, syncs and resets the VM
HOST_DIRS: Mapping[str, Path] = {poddesc.LOG_PODS: Path(poddesc.LOG_PODS)}
"""hostPath spec path -> the node's directory exported for it (the agent may point it elsewhere)."""


@dataclass(frozen=True)
class BootFiles:
    """The kernel and initramfs every pod boots (built by kernel.py and initramfs.py)."""

    kernel: Path
    initrd: Path


@dataclass
class PodVm:
    """A launched pod: its VM, its control channel and the events seen so far."""

    description: PodDescription
    vm: qemu.QemuVm
    channel: control.Channel
    events: list[control.Event] = field(default_factory=list)
    streams: PodStreams | None = None
    """The pod's stream port (exec, attach, port-forward sessions); closed by :meth:`stop`."""

    @property
    def console_log(self) -> Path:
        """The serial console log: kernel messages and ``[container] line`` output."""
        return self.vm.config.console_log

    def next_event(self, timeout: float) -> control.Event | None:
        """The next event from pod-init (None once the VM closed the channel)."""
        event = self.channel.next_event(timeout)
        if event is not None:
            self.events.append(event)
        return event

    def wait_done(self, timeout: float) -> control.PodDone:
        """Read events until pod-init reports the pod done; then QEMU must exit by itself."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(deadline - time.monotonic(), 0.001))
            if isinstance(event, control.PodDone):
                self.vm.wait(max(deadline - time.monotonic(), 1.0))
                return event
            if event is None:
                raise qemu.VmError(f"pod {self.description.name}: VM closed the control channel early")

    def stop(self) -> int:
        """Graceful stop through pod-init, then the VMM's stop; QEMU's exit status."""
        if self.vm.process.poll() is None:
            with contextlib.suppress(control.ControlProtocolError, OSError):
                self.channel.send_stop()
                self.wait_done(self.description.grace_s + STOP_SETTLE_S)
        status = self.vm.stop()
        self.channel.close()
        if self.streams is not None:
            self.streams.close()
        return status


def launch(
    description: PodDescription,
    images: Mapping[DiskSerial, Path],
    workdir: Path,
    boot: BootFiles,
    accel: Accel,
    *,
    resources: Sequence[qemu.ContainerResources] = (),
    ephemeral_mib: int = disks.EPHEMERAL_DEFAULT_MIB,
    cmdline: Sequence[str] = (),
    tap: qemu.Tap | None = None,
    vmm: qemu.QemuVmm | None = None,
    host_dirs: Mapping[str, Path] = HOST_DIRS,
) -> PodVm:
    """Prepare ``workdir`` and start the pod VM; the caller must ``stop()`` it."""
    missing = [serial for serial in description.image_serials() if serial not in images]
    if missing:
        raise poddesc.PodDescriptionError(f"pod {description.name}: no image disk for {', '.join(missing)}")
    workdir.mkdir(parents=True, exist_ok=True)
    desc_disk = poddesc.write_disk(description, workdir / "pod.desc")
    eph_disk = disks.make_ephemeral(workdir / "ephemeral.ext4", ephemeral_mib)
    vcpus, memory = qemu.size(resources or [qemu.ContainerResources()] * len(description.containers))
    control_socket = workdir / "control.sock"
    stream_socket = workdir / STREAM_SOCKET
    runas = qemu.default_runas()
    config = qemu.VmConfig(
        name=description.name,
        kernel=boot.kernel,
        initrd=boot.initrd,
        vcpus=vcpus,
        memory_mib=memory,
        disks=(
            qemu.Disk(desc_disk, poddesc.DESCRIPTION_SERIAL),
            qemu.Disk(eph_disk, poddesc.EPHEMERAL_SERIAL, read_only=False),
            *(qemu.Disk(images[s], s) for s in description.image_serials()),
            *qemu.volume_disks(description),
        ),
        console_log=workdir / "console.log",
        control_socket=control_socket,
        stream_socket=stream_socket,
        qmp_socket=workdir / "qmp.sock",
        accel=accel,
        cmdline=tuple(cmdline),
        tap=tap,
        runas=runas,
        tsc_khz=qemu.default_tsc_khz(accel),
        shares=qemu.shares(description, host_dirs),
    )
    control_socket.unlink(missing_ok=True)
    channel = control.Channel(control_socket)
    owner = runas_ids(runas)
    try:
        if owner is not None:
            channel.chown(*owner)
        pod_streams = PodStreams.listen(stream_socket, owner=owner)
    except BaseException:
        channel.close()
        raise
    try:
        vm = (vmm or qemu.QemuVmm()).launch(config)
    except BaseException:
        channel.close()
        pod_streams.close()
        raise
    return PodVm(description, vm, channel, streams=pod_streams)


def runas_ids(runas: str | None) -> tuple[int, int] | None:
    """(uid, gid) of a ``uid:gid`` runas: the owner the control and stream sockets need so that
    QEMU, once it dropped root, can connect again (``reconnect=1``: the socket of a restarted
    agent, or after its own first attempt lost the race with ``-runas``); None: no switch."""
    if runas is None:
        return None
    uid, _, gid = runas.partition(":")
    return int(uid), int(gid or uid)
