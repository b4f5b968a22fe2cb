"""Launch a pod microVM with QEMU ``-M microvm``: the vSphere Pod's CRX, built from open source.

:func:`argv` is pure: the same :class:`VmConfig` always gives the same command line, so unit
tests read it and a user can paste it. The machine has no BIOS disk boot, no PCI, no ACPI and no
default devices: the kernel is loaded directly (PVH), devices are virtio-mmio (announced on the
kernel command line by QEMU), the serial console goes to a log file, pod-init's control port (and
its stream port for exec/attach/port-forward) is a virtio-serial port connected to a unix socket
the host listens on, QMP is a unix socket. Disks are raw files, except a PersistentVolume's, which
QEMU's own NBD client reads from the lab datastore's export (:func:`volume_disks`). A hostPath volume
(only ``/var/log/pods``, the vSphere rule) is a read-only virtio-9p export of the node's directory
(:func:`shares`), added only for pods that ask for one. QEMU runs
under seccomp (``-sandbox on``) and, when started as root, drops to an unprivileged uid once the
files are open. :class:`QemuVmm` implements the :class:`Vmm` interface through ``proc.spawn``.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nestlab.runtime import proc
from nestlab.runtime.accel import QEMU, Accel
from nestlab.runtime.poddesc import DiskSerial, PodDescription
from nestlab.runtime.qmp import Qmp, QmpError

POD_UID = 64900  # QEMU drops to this uid:gid when started as root; no passwd entry is needed
POD_OVERHEAD_MIB = 32  # kernel + pod-init + page tables: measured under 20 MiB, rounded up
DEFAULT_CONTAINER_MIB = 128  # memory for a container with neither request nor limit
MIN_GUEST_MIB = 64
BASE_CMDLINE = (
    "console=ttyS0",  # the ISA serial port microvm keeps
    "quiet",  # fewer console lines: each costs guest and host time under TCG
    "reboot=t",  # pod-init powers off by resetting (no ACPI); a triple fault needs no device
    "panic=-1",  # a crashed pod reboots at once, and -no-reboot turns that into QEMU exiting
)
CONTROL_PORT = "nestlab.control"  # the virtio-serial port name pod-init looks for
STREAM_PORT = "nestlab.stream"  # exec/attach/port-forward sessions (nestlab.runtime.streams)
_NBD_URL = re.compile(r"^nbd://[^,\s/]+(/[^,\s]*)?$")
_STABLE_TSC = {"constant_tsc", "nonstop_tsc"}  # the host TSC ticks at one rate, always


class VmError(proc.ProcessError):
    """A pod VM could not be started, inspected or stopped."""


@dataclass(frozen=True)
class Share:
    """A host directory exported read-only to the guest over virtio-9p."""

    tag: str
    """The 9p mount tag pod-init mounts (``nestlab.hp<N>``, :func:`poddesc.share_tag`)."""
    path: Path
    """The host directory (``/var/log/pods``, or what the node agent was configured with)."""


def shares(description: PodDescription, host_dirs: Mapping[str, Path]) -> tuple[Share, ...]:
    """The pod's hostPath exports: each volume's spec path mapped to the node's directory.

    ``host_dirs`` is the allow list (spec path -> host directory); a path it lacks is refused here
    too, so nothing but what the node chose to export can reach a pod VM.
    """
    out = []
    for tag, source in description.share_sources().items():
        if source not in host_dirs:
            raise VmError(f"pod {description.name}: hostPath {source!r} is not a directory this node exports")
        out.append(Share(tag, host_dirs[source]))
    return tuple(out)


def _fsdev(share: Share, index: int) -> str:
    """The ``-fsdev`` value: QEMU's local backend, read-only; ``security_model=none``: files are
    read with QEMU's own (unprivileged, after ``-runas``) credentials, so the host's permissions hold."""
    if "," in str(share.path) or not share.path.is_absolute():
        raise VmError(f"hostPath export {share.path}: must be an absolute path without commas")
    return f"local,id=fs{index},path={share.path},security_model=none,readonly=on"


@dataclass(frozen=True)
class Disk:
    """A virtio-blk disk, found in the guest by its serial."""

    path: Path | str
    """A file (a Path), or the URL of a network disk QEMU's own client opens (``nbd://host:port/export``:
    a PersistentVolume's datastore export; no host kernel module, nothing mounted on the host)."""
    serial: DiskSerial
    read_only: bool = True


def volume_disks(description: PodDescription) -> tuple[Disk, ...]:
    """The pod's PersistentVolume disks, one per serial, writable: pod-init mounts one read-only
    itself when asked (a read-only device would also forbid ext4 its journal recovery)."""
    return tuple(Disk(url, serial, read_only=False) for serial, url in description.block_sources().items())


def _drive(disk: Disk, index: int) -> str:
    """The ``-drive`` value of one disk: a raw file, or an NBD export read without host caching
    (``cache=none``: every guest flush reaches the datastore, so a write the pod synced survives
    the host)."""
    readonly = ",readonly=on" if disk.read_only else ""
    if isinstance(disk.path, Path):
        return f"file={disk.path},if=none,id=disk{index},format=raw{readonly}"
    if not _NBD_URL.match(disk.path):
        raise VmError(
            f"disk {disk.serial}: {disk.path!r} is not an nbd://host:port/export URL "
            "(without commas or spaces, which QEMU's option syntax would split)"
        )
    return f"file={disk.path},format=raw,if=none,id=disk{index},cache=none{readonly}"


@dataclass(frozen=True)
class Tap:
    """A host tap device for the pod's eth0 (created and bridged by the caller)."""

    ifname: str
    mac: str


@dataclass(frozen=True)
class VmConfig:
    """Everything that defines one pod VM."""

    name: str
    kernel: Path
    initrd: Path
    vcpus: int
    memory_mib: int
    disks: tuple[Disk, ...]
    console_log: Path
    control_socket: Path | None
    """Unix socket the host already listens on (:class:`nestlab.runtime.control.Channel`); None: no port."""
    qmp_socket: Path
    accel: Accel
    cmdline: tuple[str, ...] = ()
    """Extra kernel parameters, e.g. ``nestlab.ip=198.18.4.10/24``."""
    tap: Tap | None = None
    runas: str | None = None
    """``uid:gid`` QEMU switches to after opening its files; None keeps the caller's."""
    acpi: bool = False
    """Only for kernels that find virtio-mmio devices through ACPI (e.g. Debian's, for comparison)."""
    tsc_khz: int | None = None
    """Under TCG the guest reads the host's TSC, but cannot calibrate it (no HPET or PM timer in a
    microvm): given its rate, the guest keeps time with the TSC instead of 10 ms jiffies."""
    stream_socket: Path | None = None
    """Unix socket the host already listens on for exec/attach/port-forward
    (:class:`nestlab.runtime.streams.PodStreams`); None: no stream port."""
    shares: tuple[Share, ...] = ()
    """Read-only virtio-9p exports (hostPath /var/log/pods); none for most pods."""


@dataclass(frozen=True)
class ContainerResources:
    """Requests and limits of one container (None = not given)."""

    cpu_request_m: int | None = None
    cpu_limit_m: int | None = None
    memory_request_mib: int | None = None
    memory_limit_mib: int | None = None


def size(containers: Sequence[ContainerResources]) -> tuple[int, int]:
    """(vCPUs, guest MiB) for a pod: sum of limits (else requests) plus the pod overhead.

    As on vSphere, the VM is sized by limits, since the guest kernel cannot borrow memory back.
    """
    millis = sum(c.cpu_limit_m or c.cpu_request_m or 0 for c in containers)
    mib = sum(c.memory_limit_mib or c.memory_request_mib or DEFAULT_CONTAINER_MIB for c in containers)
    return max(1, math.ceil(millis / 1000)), max(MIN_GUEST_MIB, mib + POD_OVERHEAD_MIB)


def host_tsc_khz(cpuinfo: str, cpufreq_present: bool) -> int | None:
    """The host TSC rate in kHz, when /proc/cpuinfo states it reliably, else None.

    ``cpu MHz`` is the kernel's ``cpu_khz`` (its TSC-based CPU rate) only when no cpufreq driver
    reports a current frequency instead, and it is a TSC rate only with a constant, non-stop TSC.
    """
    flags: set[str] = set()
    mhz = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "cpu MHz" and mhz is None:
            mhz = float(value)
    if cpufreq_present or mhz is None or not _STABLE_TSC.issubset(flags):
        return None
    return round(mhz * 1000)


def default_tsc_khz(accel: Accel) -> int | None:
    """:func:`host_tsc_khz` of this machine for TCG guests; None under KVM (kvm-clock does it)."""
    if accel.name != "tcg":
        return None
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    return host_tsc_khz(cpuinfo, Path("/sys/devices/system/cpu/cpu0/cpufreq").exists())


def default_runas() -> str | None:
    """``POD_UID:POD_UID`` when running as root, else None (QEMU already runs unprivileged)."""
    return f"{POD_UID}:{POD_UID}" if os.geteuid() == 0 else None


def argv(config: VmConfig) -> list[str]:
    """The QEMU command line for ``config``."""
    cpu = "host" if config.accel.name == "kvm" else "max"
    # tsc=reliable: the clocksource watchdog would judge the TSC against jiffies, which lose ticks
    # when the host is loaded, and fall back to those very jiffies.
    tsc = (f"tsc_early_khz={config.tsc_khz}", "tsc=reliable") if config.tsc_khz else ()
    args = [
        QEMU, "-name", config.name,
        "-M", f"microvm,acpi={'on' if config.acpi else 'off'}", "-cpu", cpu, *config.accel.qemu_args(),
        "-smp", str(config.vcpus), "-m", f"{config.memory_mib}M",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(config.kernel), "-initrd", str(config.initrd),
        "-append", " ".join((*BASE_CMDLINE, *tsc, *config.cmdline)),
        "-chardev", f"file,id=console,path={config.console_log}", "-serial", "chardev:console",
        "-qmp", f"unix:{config.qmp_socket},server=on,wait=off",
        # elevateprivileges=deny would also forbid the setuid of -runas (QEMU dies of SIGSYS);
        # once -runas has dropped root, the process has nothing left to elevate to.
        "-sandbox", "on,obsolete=deny,spawn=deny,resourcecontrol=deny",
    ]  # fmt: skip
    named = (("control", CONTROL_PORT, config.control_socket), ("stream", STREAM_PORT, config.stream_socket))
    ports = [(chardev, name, path) for chardev, name, path in named if path is not None]
    if ports:
        # port 0 is the console's, reserved even when unused: one more than the named ports
        args += ["-device", f"virtio-serial-device,max_ports={len(ports) + 1}"]
    for chardev, name, path in ports:
        # reconnect: a restarted node agent listens on the same path again and QEMU comes back to
        # it; meanwhile the guest's writes block (the port is closed), so no event is lost.
        args += ["-chardev", f"socket,id={chardev},path={path},reconnect=1"]
        args += ["-device", f"virtserialport,chardev={chardev},name={name}"]
    for index, disk in enumerate(config.disks):
        args += ["-drive", _drive(disk, index)]
        args += ["-device", f"virtio-blk-device,drive=disk{index},serial={disk.serial}"]
    for index, share in enumerate(config.shares):
        # virtio-9p-device: the virtio-mmio form (microvm has no PCI for virtio-9p-pci)
        args += ["-fsdev", _fsdev(share, index)]
        args += ["-device", f"virtio-9p-device,fsdev=fs{index},mount_tag={share.tag}"]
    if config.tap is not None:
        args += ["-netdev", f"tap,id=net0,ifname={config.tap.ifname},script=no,downscript=no"]
        args += ["-device", f"virtio-net-device,netdev=net0,mac={config.tap.mac}"]
    if config.runas is not None:
        args += ["-runas", config.runas]
    return args


class RunningVm(Protocol):
    """A started pod VM, whatever the VMM."""

    config: VmConfig
    pid: int

    def wait(self, timeout: float) -> int:
        """Wait for the VM to end by itself; its exit status."""
        ...

    def stop(self, grace: float = 5.0) -> int:
        """Stop it, gracefully first; its exit status."""
        ...


class Vmm(Protocol):
    """A virtual machine monitor that can run pod VMs (only QEMU is implemented)."""

    name: str

    def launch(self, config: VmConfig) -> RunningVm:
        """Start the VM described by ``config``."""
        ...


class QemuVm:
    """A running QEMU, with its QMP connection opened on demand."""

    def __init__(self, config: VmConfig, process: proc.Process) -> None:
        self.config = config
        self.process = process
        self.pid = process.pid
        self._qmp: Qmp | None = None

    def qmp(self) -> Qmp:
        """The QMP connection (connected on first use)."""
        if self._qmp is None:
            self._qmp = Qmp.connect(self.config.qmp_socket)
        return self._qmp

    def wait(self, timeout: float) -> int:
        """Wait for QEMU to exit (pod-init powered off); VmError when it is still running."""
        try:
            return self.process.wait(timeout)
        except proc.ProcessError as exc:
            raise VmError(f"pod VM {self.config.name} still running after {timeout:g}s") from exc
        finally:
            self._close_qmp()

    def rss_kib(self) -> int:
        """QEMU's resident set size, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise VmError(f"no VmRSS for QEMU pid {self.pid}")

    def stop(self, grace: float = 5.0) -> int:
        """QMP system_powerdown, then QMP quit, then SIGTERM/SIGKILL; QEMU's exit status.

        Without ACPI the guest ignores the power button, so pods are stopped gracefully through
        the control channel first; this is the VMM-level fallback that always ends the process.
        """
        for command, wait in (("system_powerdown", grace), ("quit", grace)):
            if self.process.poll() is not None:
                break
            try:
                self.qmp().execute(command)
            except QmpError:
                break  # QMP gone: QEMU is exiting or wedged; the signals below settle it
            deadline = time.monotonic() + wait
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        self._close_qmp()
        return self.process.stop(grace)

    def _close_qmp(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None


Spawner = Callable[..., proc.Process]


class QemuVmm:
    """Pod VMs as ``qemu-system-x86_64 -M microvm`` processes."""

    name = "qemu"

    def __init__(self, spawn: Spawner = proc.spawn) -> None:
        self._spawn = spawn

    def launch(self, config: VmConfig) -> QemuVm:
        """Start QEMU; its own messages go to ``<console_log>.qemu``."""
        log = config.console_log.with_suffix(".qemu.log")
        return QemuVm(config, self._spawn(argv(config), log=log))
