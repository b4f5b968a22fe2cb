"""Choose how pod microVMs run: KVM only when a real guest boots under it, otherwise TCG.

``/dev/kvm`` existing proves little: on these build machines it is a paravirtual nested host on
which ordinary guests hang. So the probe checks the CPU flags, opens the device, and then boots a
16-byte firmware under ``-accel kvm`` that writes one byte to the serial port and exits QEMU
through ``isa-debug-exit``; only that exact exit status counts as KVM being usable.

That real-mode probe still runs on a paravirtual KVM host where a real kernel hangs (measured:
stuck on its first XSAVE, or QEMU aborting on an MSR with ``-cpu host``). So when the caller
passes the pod kernel and its initramfs, a second stage boots them under KVM: pod-init, finding
no pod description, says so on the console and resets the VM; only that counts.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nestlab.runtime import proc

QEMU = "qemu-system-x86_64"
TCG_TB_SIZE_MIB = 64  # the default translation cache adds ~800 MB RSS per VM (measured)
PROBE_TIMEOUT_S = 20.0  # a usable KVM answers in well under a second; a hanging one never does
KERNEL_PROBE_TIMEOUT_S = 30.0  # the pod kernel reaches pod-init in ~1 s under TCG, far less under KVM
KERNEL_PROBE_MARK = "pod-init: "  # every pod-init console line starts with it
_EXIT_PORT = 0xF4
_MARK = 0x4B  # 'K', written to the serial port and then to the exit port
PROBE_EXIT_STATUS = (_MARK << 1) | 1  # isa-debug-exit turns value v into exit status (v << 1) | 1

# Real-mode code at the reset vector (F000:FFF0): mov al,'K'; mov dx,0x3f8; out dx,al;
# out 0xf4,al; then spin. Padded to the 64 KiB a PC firmware image must be a multiple of.
_RESET_CODE = bytes([0xB0, _MARK, 0xBA, 0xF8, 0x03, 0xEE, 0xE6, _EXIT_PORT, 0xF4, 0xEB, 0xFE])
_FIRMWARE_SIZE = 64 * 1024


@dataclass(frozen=True)
class Accel:
    """The accelerator chosen and why."""

    name: Literal["kvm", "tcg"]
    reason: str

    def qemu_args(self) -> list[str]:
        """The ``-accel`` arguments for QEMU."""
        if self.name == "kvm":
            return ["-accel", "kvm"]
        return ["-accel", f"tcg,tb-size={TCG_TB_SIZE_MIB}"]


def probe_firmware() -> bytes:
    """The probe firmware image: zeros, with the probe code at the reset vector."""
    code = _RESET_CODE.ljust(16, b"\x90")
    return bytes(_FIRMWARE_SIZE - 16) + code


def probe_argv(accel: str, firmware: Path) -> list[str]:
    """QEMU arguments that boot the probe firmware under ``accel`` (``kvm`` or ``tcg``)."""
    return [
        QEMU, "-M", "pc", "-accel", accel, "-bios", str(firmware),
        "-nodefaults", "-display", "none", "-vga", "none", "-m", "16",
        "-serial", "stdio", "-device", f"isa-debug-exit,iobase={_EXIT_PORT:#x},iosize=1",
        "-no-reboot",
    ]  # fmt: skip


def boot_probe(accel: str, run: proc.Runner = proc.run) -> tuple[bool, str]:
    """Boot the probe firmware under ``accel``; (True, detail) when the guest really ran."""
    with tempfile.TemporaryDirectory(prefix="nestlab-accel-") as tmp:
        firmware = Path(tmp) / "probe.bin"
        firmware.write_bytes(probe_firmware())
        try:
            result = run(probe_argv(accel, firmware), timeout=PROBE_TIMEOUT_S, check=False)
        except proc.ProcessError as exc:
            return False, str(exc)
    if result.returncode == PROBE_EXIT_STATUS and "K" in result.stdout:
        return True, f"probe guest ran under {accel}"
    detail = (result.stderr.strip() or result.stdout.strip())[-200:]
    return False, f"probe guest under {accel} exited {result.returncode}: {detail}"


def kernel_probe_argv(accel: str, kernel: Path, initrd: Path) -> list[str]:
    """QEMU arguments that boot the pod kernel and pod-init under ``accel`` with no pod to run."""
    cpu = "host" if accel == "kvm" else "max"
    return [
        QEMU, "-M", "microvm,acpi=off", "-cpu", cpu, "-accel", accel, "-m", "64M",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 quiet reboot=t panic=-1", "-serial", "stdio",
    ]  # fmt: skip


def kernel_probe(
    accel: str,
    kernel: Path,
    initrd: Path,
    run: proc.Runner = proc.run,
    timeout: float = KERNEL_PROBE_TIMEOUT_S,
) -> tuple[bool, str]:
    """Boot the real pod kernel under ``accel``; (True, detail) when pod-init ran and the VM reset."""
    try:
        result = run(kernel_probe_argv(accel, kernel, initrd), timeout=timeout, check=False)
    except proc.ProcessError as exc:
        return False, f"pod kernel under {accel}: {exc}"
    if result.returncode == 0 and KERNEL_PROBE_MARK in result.stdout:
        return True, f"pod kernel booted to pod-init under {accel}"
    detail = (result.stderr.strip() or result.stdout.strip())[-200:]
    return False, f"pod kernel under {accel} exited {result.returncode}: {detail}"


def probe(
    run: proc.Runner = proc.run,
    cpuinfo: Path = Path("/proc/cpuinfo"),
    device: Path = Path("/dev/kvm"),
    pod_kernel: tuple[Path, Path] | None = None,
) -> Accel:
    """Pick KVM when the CPU has vmx/svm, /dev/kvm opens, and a probe guest boots under it.

    With ``pod_kernel`` (vmlinux, initramfs), KVM must also boot that kernel to pod-init.
    """
    if os.environ.get("NESTLAB_ACCEL") == "tcg":
        return Accel("tcg", "NESTLAB_ACCEL=tcg")
    flags = set()
    for line in cpuinfo.read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    if not flags & {"vmx", "svm"}:
        return Accel("tcg", "the CPU shows no vmx/svm flag")
    try:
        os.close(os.open(device, os.O_RDWR))
    except OSError as exc:
        return Accel("tcg", f"{device} cannot be opened: {exc.strerror}")
    ok, detail = boot_probe("kvm", run)
    if ok and pod_kernel is not None:
        ok, detail = kernel_probe("kvm", *pod_kernel, run=run)
    if ok:
        return Accel("kvm", detail)
    return Accel("tcg", f"KVM present but unusable: {detail}")
