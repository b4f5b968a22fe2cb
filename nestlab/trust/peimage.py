"""Read and build the PE image that carries the pod kernel, so the kernel can be sbsign'ed.

QEMU microvm boots an uncompressed ELF ``vmlinux``, but Authenticode signatures (sbsign/sbverify,
what UEFI Secure Boot checks) exist only for PE/COFF images. So the pod kernel ships like a Unified
Kernel Image: systemd-boot's EFI stub with two added sections, ``.linux`` (the vmlinux bytes) and
``.irdsha`` (the initramfs's sha256, binding it to the signature). The agent verifies the signed
image, then extracts ``.linux`` with :func:`linux_and_initrd_digest` and boots exactly those bytes.

The reader is pure Python on purpose: the host must take the kernel out of the very bytes it
verified, without a second tool that might parse them differently. It is strict: a malformed image
or a section name that appears twice (which could make two readers disagree) is refused.
"""

from __future__ import annotations

import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from nestlab.runtime import proc
from nestlab.trust.errors import TrustError

LINUX: Final = ".linux"
IRDSHA: Final = ".irdsha"
_TIMEOUT: Final = 120.0  # seconds: objcopy rewrites a ~17 MB image in well under one
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SECTION_ENTRY: Final = 40  # bytes of one IMAGE_SECTION_HEADER
_COFF_HEADER: Final = 20  # bytes of IMAGE_FILE_HEADER after the "PE\0\0" signature
_PLACEMENT_ALIGN: Final = 0x1000  # new sections start on a page, as ukify places them
_MAX_ZERO_FILL: Final = 1 << 30  # a section claiming more than 1 GiB of zero fill is not a kernel image


class PeImageError(TrustError):
    """A PE image is malformed or lacks the sections a pod kernel image must have."""


@dataclass(frozen=True)
class Section:
    """One entry of a PE section table."""

    name: str
    virtual_size: int
    """The section's true size in memory (what a loader maps); raw data may be padded beyond it."""
    virtual_address: int
    raw_size: int
    raw_offset: int


@dataclass(frozen=True)
class Layout:
    """What :func:`wrap` needs from a PE image's headers."""

    image_base: int
    section_alignment: int
    sections: tuple[Section, ...]


def _unpack(fmt: str, data: bytes, offset: int, what: str) -> tuple[Any, ...]:
    if offset < 0 or offset + struct.calcsize(fmt) > len(data):
        raise PeImageError(
            f"PE image is truncated: {what} at offset {offset} lies beyond its {len(data)} bytes"
        )
    return struct.unpack_from(fmt, data, offset)


def read_layout(data: bytes) -> Layout:
    """Parse the DOS, COFF and optional headers and the section table; PeImageError when malformed."""
    if data[:2] != b"MZ":
        raise PeImageError("not a PE image: it does not start with the DOS 'MZ' signature")
    (pe_offset,) = _unpack("<I", data, 0x3C, "e_lfanew")
    if data[pe_offset : pe_offset + 4] != b"PE\0\0":
        raise PeImageError(f"not a PE image: no 'PE' signature at offset {pe_offset}")
    coff = pe_offset + 4
    _machine, count, _time, _symbols, _nsymbols, optional_size, _flags = _unpack(
        "<HHIIIHH", data, coff, "COFF header"
    )
    optional = coff + _COFF_HEADER
    (magic,) = _unpack("<H", data, optional, "optional header")
    if magic == 0x20B:  # PE32+
        (image_base,) = _unpack("<Q", data, optional + 24, "ImageBase")
    elif magic == 0x10B:  # PE32
        (image_base,) = _unpack("<I", data, optional + 28, "ImageBase")
    else:
        raise PeImageError(f"PE optional header has unknown magic {magic:#x}")
    (alignment,) = _unpack("<I", data, optional + 32, "SectionAlignment")
    table = optional + optional_size
    sections = []
    for index in range(count):
        entry = table + index * _SECTION_ENTRY
        raw_name, vsize, vaddr, raw_size, raw_offset = _unpack(
            "<8sIIII", data, entry, f"section header {index}"
        )
        name = raw_name.rstrip(b"\0").decode("ascii", errors="replace")
        sections.append(Section(name, vsize, vaddr, raw_size, raw_offset))
    return Layout(image_base, alignment, tuple(sections))


def read_sections(data: bytes) -> dict[str, bytes]:
    """Section name -> its content, exactly ``VirtualSize`` bytes (raw data past it is file padding)."""
    result: dict[str, bytes] = {}
    for section in read_layout(data).sections:
        if section.name in result:
            raise PeImageError(
                f"PE image has two sections named {section.name!r}; refusing an ambiguous image"
            )
        end = section.raw_offset + section.raw_size
        if section.raw_size and end > len(data):
            raise PeImageError(
                f"PE section {section.name!r} claims bytes {section.raw_offset}..{end} of a "
                f"{len(data)}-byte file; the image is truncated"
            )
        raw = data[section.raw_offset : end] if section.raw_size else b""
        missing = section.virtual_size - len(raw)
        if missing > _MAX_ZERO_FILL:
            raise PeImageError(f"PE section {section.name!r} claims {section.virtual_size} bytes; malformed")
        result[section.name] = raw[: section.virtual_size] + bytes(max(missing, 0))
    return result


def linux_and_initrd_digest(data: bytes) -> tuple[bytes, str]:
    """The kernel (``.linux``) and the initramfs sha256 it is bound to (``.irdsha``) of a pod kernel image."""
    sections = read_sections(data)
    missing = [name for name in (LINUX, IRDSHA) if name not in sections]
    if missing:
        raise PeImageError(
            f"PE image has no {' or '.join(missing)} section; it is not a nestlab pod kernel image "
            "(build it with nestlab.provision.podkernel)"
        )
    linux = sections[LINUX]
    if not linux:
        raise PeImageError(f"the {LINUX} section of the pod kernel image is empty")
    text = sections[IRDSHA].decode("ascii", errors="replace")
    digest = text.removesuffix("\n")
    if not text.endswith("\n") or not _HEX64.match(digest):
        raise PeImageError(
            f"the {IRDSHA} section must hold a sha256 as 64 lowercase hex characters and a newline, "
            f"found {text[:80]!r}"
        )
    return linux, digest


def _placement(stub: Layout) -> int:
    """The first page-aligned address after every section of the stub: where added sections go."""
    end = max((s.virtual_address + max(s.virtual_size, s.raw_size) for s in stub.sections), default=0)
    align = max(stub.section_alignment, _PLACEMENT_ALIGN)
    return -(-end // align) * align


def wrap(stub: Path, vmlinux: Path, initrd_sha256: str, output: Path, runner: proc.Runner = proc.run) -> Path:
    """Write ``stub`` + ``.irdsha`` + ``.linux`` (unsigned) to ``output`` atomically; return ``output``."""
    if not _HEX64.match(initrd_sha256):
        raise PeImageError(
            f"initramfs digest {initrd_sha256!r} is not a sha256 (64 lowercase hex characters)"
        )
    try:
        layout = read_layout(stub.read_bytes())
    except OSError as exc:
        raise PeImageError(f"cannot read the EFI stub {stub} (install systemd-boot-efi): {exc}") from exc
    try:
        size = vmlinux.stat().st_size
    except OSError as exc:
        raise PeImageError(f"cannot read the kernel {vmlinux}: {exc}") from exc
    irdsha_at = _placement(layout)
    linux_at = irdsha_at + _PLACEMENT_ALIGN  # .irdsha holds 65 bytes: one page is plenty
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wrap-", dir=output.parent) as tmp:
        digest_file = Path(tmp) / "irdsha"
        digest_file.write_text(initrd_sha256 + "\n", encoding="ascii")
        built = Path(tmp) / output.name
        argv = ["objcopy"]
        for name, source, rva in ((IRDSHA, digest_file, irdsha_at), (LINUX, vmlinux, linux_at)):
            argv += [
                *("--add-section", f"{name}={source}"),
                *("--change-section-vma", f"{name}={layout.image_base + rva:#x}"),
                *("--set-section-flags", f"{name}=data,readonly"),
            ]
        try:
            runner([*argv, str(stub), str(built)], timeout=_TIMEOUT)
        except proc.ProcessError as exc:
            raise PeImageError(f"objcopy could not add the kernel ({size} bytes) to {stub}: {exc}") from exc
        built.replace(output)
    return output
