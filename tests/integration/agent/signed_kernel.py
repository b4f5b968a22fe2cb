"""A signed pod kernel image made the way the nestlab-pod-kernel package ships it, for the gate's tests.

systemd-boot's EFI stub + ``.irdsha`` (the initramfs's sha256) + ``.linux`` (the real pod vmlinux),
added with objcopy and signed with sbsign using throwaway lab keys. Built directly with the tools
rather than through nestlab.trust.peimage.wrap, so the agent's reader is checked against images it
did not write itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from nestlab.runtime import proc
from nestlab.trust import kernelsign, keys

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")  # Debian's systemd-boot-efi


@dataclass(frozen=True)
class SignedPodKernel:
    image: Path
    """vmlinux.efi, signed."""
    initrd: Path
    cert: Path
    keys: keys.LabKeys


def build(vmlinux: Path, initrd: Path, directory: Path) -> SignedPodKernel:
    """Sign ``vmlinux`` (bound to ``initrd``) with fresh lab keys under ``directory``."""
    lab_keys = keys.ensure_lab_keys(directory / "keys", "gate-test")
    irdsha = directory / "irdsha"
    irdsha.write_text(hashlib.sha256(initrd.read_bytes()).hexdigest() + "\n")
    unsigned = directory / "vmlinux.unsigned.efi"
    proc.run(
        [
            *("objcopy", "--add-section", f".irdsha={irdsha}", "--change-section-vma", ".irdsha=0x1ff0000"),
            *("--add-section", f".linux={vmlinux}", "--change-section-vma", ".linux=0x2000000"),
            *(str(STUB), str(unsigned)),
        ],
        timeout=120,
    )
    signed = kernelsign.sign_kernel(lab_keys, unsigned, directory / "vmlinux.efi")
    unsigned.unlink()
    return SignedPodKernel(signed, initrd, lab_keys.kernel_cert, lab_keys)
