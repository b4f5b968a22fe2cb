"""The launch gate: a pod boots only a kernel signed by the lab, with the initramfs the signature binds.

The pod kernel package ships ``vmlinux.efi``: a PE image signed with the lab's db key whose
``.linux`` section is the vmlinux QEMU boots and whose ``.irdsha`` section is the sha256 of the
initramfs. Before every launch the agent copies the signed image's bytes once into the pod's
private work dir and checks *that copy* (so a file swapped on disk after the check cannot be
booted), extracts ``.linux`` from the same bytes, copies the initramfs and compares its sha256
with ``.irdsha``. Only then are the three launch facts measured into PCR 11 and QEMU started from
the work-dir copies. Any failure raises :class:`KernelVerificationFailed` (a pod admission
verdict: the agent fails the pod with that reason and starts no VM).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nestlab.agent.podspec import PodRejected
from nestlab.errors import NestlabError
from nestlab.runtime import proc, qemu
from nestlab.runtime.accel import Accel
from nestlab.runtime.pod import BootFiles
from nestlab.trust import kernelsign, peimage
from nestlab.trust.errors import SignatureError
from nestlab.trust.eventlog import Event
from nestlab.trust.measure import Measurer, PodLaunch

REASON: Final = "KernelVerificationFailed"
SIGNED_NAME: Final = "vmlinux.efi"
KERNEL_NAME: Final = "vmlinux"
INITRD_NAME: Final = "initramfs.cpio"
WORK_COPIES: Final = (SIGNED_NAME, KERNEL_NAME, INITRD_NAME)
_CHUNK: Final = 1 << 20  # bytes per read while copying and hashing the initramfs

#: signed PE bytes -> (.linux bytes, .irdsha hex); raises a NestlabError (PeImageError) when malformed
Extractor = Callable[[bytes], tuple[bytes, str]]


class KernelVerificationFailed(PodRejected):
    """The pod kernel or initramfs failed verification: the pod must not boot."""

    def __init__(self, message: str) -> None:
        super().__init__(REASON, message)


@dataclass(frozen=True)
class SignedKernel:
    """What the pod kernel package installed, and the certificate it must be signed with."""

    image: Path
    """The signed PE image (``/usr/lib/nestlab/pod-kernel/vmlinux.efi``)."""
    initrd: Path
    """The initramfs whose sha256 the image's ``.irdsha`` names."""
    cert: Path
    """The lab kernel-signing (db) certificate."""


@dataclass(frozen=True)
class VerifiedBoot:
    """Work-dir copies that passed verification: boot ``boot``, measure ``signed_image``."""

    signed_image: Path
    boot: BootFiles


def verify_into(
    signed: SignedKernel,
    workdir: Path,
    runner: proc.Runner = proc.run,
    extract: Extractor = peimage.linux_and_initrd_digest,
) -> VerifiedBoot:
    """Copy, verify and unpack the pod kernel into ``workdir``; KernelVerificationFailed on any problem."""
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / SIGNED_NAME
    try:
        data = signed.image.read_bytes()
    except OSError as exc:
        raise KernelVerificationFailed(f"cannot read the pod kernel {signed.image}: {exc}") from exc
    copy.write_bytes(data)
    try:
        kernelsign.require_signed(signed.cert, copy, runner)
    except SignatureError as exc:
        raise KernelVerificationFailed(
            f"pod kernel {signed.image} is not signed by {signed.cert}: {exc}"  # exc says: reinstall it
        ) from exc
    try:
        linux, initrd_sha256 = extract(data)
    except (NestlabError, ValueError) as exc:
        raise KernelVerificationFailed(
            f"pod kernel {signed.image} is not a valid kernel image: {exc}"
        ) from exc
    kernel = workdir / KERNEL_NAME
    kernel.write_bytes(linux)
    initrd = workdir / INITRD_NAME
    try:
        actual = _copy_hashing(signed.initrd, initrd)
    except OSError as exc:
        raise KernelVerificationFailed(f"cannot read the pod initramfs {signed.initrd}: {exc}") from exc
    if not hmac.compare_digest(actual, initrd_sha256):
        raise KernelVerificationFailed(
            f"pod initramfs {signed.initrd} has sha256 {actual}, but the signed kernel {signed.image} "
            f"binds {initrd_sha256}: the initramfs was changed; reinstall nestlab-pod-kernel"
        )
    return VerifiedBoot(copy, BootFiles(kernel, initrd))


def work_boot(workdir: Path) -> BootFiles:
    """The verified copies :func:`verify_into` leaves in ``workdir``: what the gated launcher boots."""
    return BootFiles(workdir / KERNEL_NAME, workdir / INITRD_NAME)


class LaunchGate:
    """Verify, then measure, a pod's boot files; the agent calls it before every launch."""

    def __init__(
        self,
        signed: SignedKernel,
        measurer: Measurer,
        accel: Accel,
        runner: proc.Runner = proc.run,
        extract: Extractor = peimage.linux_and_initrd_digest,
    ) -> None:
        self.signed = signed
        self.measurer = measurer
        self.accel = accel
        self._runner = runner
        self._extract = extract

    def __call__(self, pod: str, workdir: Path, extra_cmdline: Sequence[str]) -> tuple[Event, Event, Event]:
        """KernelVerificationFailed, or the three PCR 11 events of ``pod`` (``namespace/name``)."""
        verified = verify_into(self.signed, workdir, self._runner, self._extract)
        return measure_launch(self.measurer, pod, verified, kernel_cmdline(self.accel, extra_cmdline))


def kernel_cmdline(accel: Accel, extra: Sequence[str]) -> str:
    """The command line QEMU passes the pod kernel (see nestlab.runtime.qemu.argv): what gets measured."""
    khz = qemu.default_tsc_khz(accel)
    tsc = (f"tsc_early_khz={khz}", "tsc=reliable") if khz else ()
    return " ".join((*qemu.BASE_CMDLINE, *tsc, *extra))


def measure_launch(
    measurer: Measurer, pod: str, verified: VerifiedBoot, cmdline: str
) -> tuple[Event, Event, Event]:
    """Extend PCR 11 with the pod's signed kernel, its initramfs and its command line."""
    return measurer.measure_pod_launch(PodLaunch(pod, verified.signed_image, verified.boot.initrd, cmdline))


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()
