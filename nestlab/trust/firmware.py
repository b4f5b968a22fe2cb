"""The firmware's own event log: parse the TCG crypto-agile binary log and replay its sha256 bank.

On a host with a real (or virtual) TPM that UEFI firmware measured into, the kernel exposes the
firmware's log at :data:`SYSFS_LOG`. It explains PCRs 0-7 (firmware code and configuration, option
ROMs, the boot loader, Secure Boot variables); the verifier replays it and compares the result with
the quoted values, exactly as it does with nestlab's own log for PCRs 8, 9 and 11.

Format (TCG PC Client Platform Firmware Profile, section 10): the log starts with one
``TCG_PCR_EVENT`` in the old SHA-1 layout whose event data is the "Spec ID Event03" structure listing
the digest algorithms and their sizes; every later record is a ``TCG_PCR_EVENT2`` carrying one digest
per algorithm. All integers are little-endian. ``EV_NO_ACTION`` records are informational and never
extended, except that a "StartupLocality" one sets PCR 0's initial value. Pure: bytes in, values out.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nestlab.trust import eventlog, pcrs
from nestlab.trust.errors import TrustError

SYSFS_LOG: Final = "/sys/kernel/security/tpm0/binary_bios_measurements"
TPM_ALG_SHA1: Final = 0x0004
TPM_ALG_SHA256: Final = 0x000B
EV_NO_ACTION: Final = 0x00000003
_SPEC_ID: Final = b"Spec ID Event03\x00"
_STARTUP_LOCALITY: Final = b"StartupLocality\x00"
_SHA1_SIZE: Final = 20
_MAX_ALGORITHMS: Final = 16  # a TPM has a handful of banks; more means the header is garbage

#: TCG event type -> name (PC Client PFP, table 9); the rest are shown in hex
EVENT_TYPES: Final[dict[int, str]] = {
    0x00: "EV_PREBOOT_CERT", 0x01: "EV_POST_CODE", 0x03: "EV_NO_ACTION", 0x04: "EV_SEPARATOR",
    0x05: "EV_ACTION", 0x06: "EV_EVENT_TAG", 0x07: "EV_S_CRTM_CONTENTS", 0x08: "EV_S_CRTM_VERSION",
    0x09: "EV_CPU_MICROCODE", 0x0A: "EV_PLATFORM_CONFIG_FLAGS", 0x0B: "EV_TABLE_OF_DEVICES",
    0x0C: "EV_COMPACT_HASH", 0x0D: "EV_IPL", 0x0E: "EV_IPL_PARTITION_DATA", 0x0F: "EV_NONHOST_CODE",
    0x10: "EV_NONHOST_CONFIG", 0x11: "EV_NONHOST_INFO", 0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG", 0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION", 0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER", 0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION", 0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES", 0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2", 0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT", 0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB", 0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}  # fmt: skip


def log_path_for(tcti: str) -> Path | None:
    """Where the firmware log of the TPM behind ``tcti`` is, or None when it has none.

    Only a TPM device the kernel found (``device:/dev/tpm*``) is the one the firmware measured into;
    a swtpm (a lab node's own, in a container) never saw firmware, whatever the kernel exposes.
    """
    return Path(SYSFS_LOG) if tcti.startswith("device:") else None


class FirmwareLogError(TrustError):
    """The firmware event log is not a well-formed TCG crypto-agile log."""


@dataclass(frozen=True)
class FirmwareEvent:
    """One record of the firmware log (sha256 bank only)."""

    offset: int
    """Byte offset of the record in the log: what a reader needs to find it with a hex dump."""
    pcr: int
    type: int
    sha256: bytes
    """The sha256 digest extended (meaningless for EV_NO_ACTION, which is not extended)."""
    data: bytes

    @property
    def type_name(self) -> str:
        return EVENT_TYPES.get(self.type, f"{self.type:#010x}")


@dataclass(frozen=True)
class FirmwareLog:
    """The parsed log: the digest sizes its header declared, and its events in order."""

    digest_sizes: Mapping[int, int]
    """TPM algorithm id -> digest size in bytes, from the Spec ID event."""
    events: tuple[FirmwareEvent, ...]

    def summary(self) -> dict[str, dict[str, int]]:
        """PCR (as text) -> event type name -> count: what a verdict shows instead of every record."""
        counts: dict[str, Counter[str]] = {}
        for event in self.events:
            counts.setdefault(str(event.pcr), Counter())[event.type_name] += 1
        return {pcr: dict(sorted(kinds.items())) for pcr, kinds in sorted(counts.items(), key=_by_int)}


def _by_int(item: tuple[str, object]) -> int:
    return int(item[0])


class _Reader:
    """A cursor over the log that names the offset of whatever it cannot read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise FirmwareLogError(
                f"firmware event log truncated at offset {self.pos}: {what} needs {size} bytes, "
                f"{len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self, what: str) -> int:
        return int(self.take(1, what)[0])

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])


def parse(data: bytes) -> FirmwareLog:
    """Parse a binary crypto-agile firmware log; FirmwareLogError names the offset of what is wrong."""
    reader = _Reader(data)
    sizes = _spec_id(reader)
    events: list[FirmwareEvent] = []
    while reader.pos < len(data):
        offset = reader.pos
        pcr = reader.u32("the PCR index")
        if pcr > pcrs.MAX_PCR:
            raise FirmwareLogError(
                f"firmware event at offset {offset} names PCR {pcr}, beyond {pcrs.MAX_PCR}"
            )
        event_type = reader.u32("the event type")
        count = reader.u32("the digest count")
        if count != len(sizes):
            raise FirmwareLogError(
                f"firmware event at offset {offset} carries {count} digests, the log header declared "
                f"{len(sizes)} algorithms"
            )
        sha256 = b""
        for _ in range(count):
            at = reader.pos
            algorithm = reader.u16("a digest algorithm")
            if algorithm not in sizes:
                raise FirmwareLogError(
                    f"firmware event digest at offset {at} uses algorithm {algorithm:#06x}, "
                    "which the log header does not declare"
                )
            digest = reader.take(sizes[algorithm], "a digest")
            if algorithm == TPM_ALG_SHA256:
                sha256 = digest
        size = reader.u32("the event size")
        events.append(FirmwareEvent(offset, pcr, event_type, sha256, reader.take(size, "the event data")))
    return FirmwareLog(sizes, tuple(events))


def _spec_id(reader: _Reader) -> dict[int, int]:
    """Read the leading SHA-1-format record and return the algorithm -> digest size table."""
    pcr, event_type = reader.u32("the first PCR index"), reader.u32("the first event type")
    reader.take(_SHA1_SIZE, "the first event's SHA-1 digest")
    body = _Reader(reader.take(reader.u32("the first event size"), "the Spec ID event"))
    if pcr != 0 or event_type != EV_NO_ACTION or body.take(len(_SPEC_ID), "signature") != _SPEC_ID:
        raise FirmwareLogError(
            "firmware event log at offset 0 does not start with a 'Spec ID Event03' record: "
            "not a TCG crypto-agile (TPM 2.0) log"
        )
    body.take(4 + 4, "platform class, version, errata and uintn size")
    count = body.u32("the algorithm count")
    if not 1 <= count <= _MAX_ALGORITHMS:
        raise FirmwareLogError(f"firmware event log header at offset 0 declares {count} digest algorithms")
    sizes = {body.u16("an algorithm id"): body.u16("a digest size") for _ in range(count)}
    if sizes.get(TPM_ALG_SHA256) != pcrs.DIGEST_SIZE:
        raise FirmwareLogError("firmware event log header at offset 0 declares no 32-byte sha256 bank")
    return sizes


def replay(events: Iterable[FirmwareEvent], indexes: Iterable[int] = pcrs.FIRMWARE) -> dict[int, bytes]:
    """The sha256 PCR values the events produce from a TPM reset, for ``indexes``."""
    values = dict.fromkeys(indexes, pcrs.ZERO)
    for event in events:
        if event.type == EV_NO_ACTION:
            if event.pcr == 0 and event.data.startswith(_STARTUP_LOCALITY) and 0 in values:
                # the locality the firmware started from is PCR 0's initial value (PFP 10.4.5.3)
                values[0] = bytes(pcrs.DIGEST_SIZE - 1) + event.data[len(_STARTUP_LOCALITY) :][:1]
            continue
        if event.pcr in values:
            values[event.pcr] = eventlog.extend(values[event.pcr], event.sha256)
    return values
