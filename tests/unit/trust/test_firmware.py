"""The firmware log parser and replay, on a log recorded from OVMF + swtpm in the libvirt test's VM.

fixtures/vm/ holds what that VM produced (tests/integration/libvirt/test_vm_boot.py records the same
things): the binary log from /sys/kernel/security/tpm0/binary_bios_measurements and the PCR values
its vTPM quoted. Variants below are truncated or garbled copies of the real bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from nestlab.trust import firmware, pcrs
from nestlab.trust.firmware import EV_NO_ACTION, FirmwareLogError

from .helpers import FIXTURES

VM = FIXTURES / "vm"
SPEC_ID_SIZE = 4 + 4 + 20 + 4  # pcr, type, sha1 digest, event size of the leading TCG_PCR_EVENT


def real_log() -> bytes:
    return (VM / "firmware.log").read_bytes()


def quoted() -> dict[int, bytes]:
    values = json.loads((VM / "pcrs.json").read_text())
    return {int(index): bytes.fromhex(value) for index, value in values.items()}


def header_size(data: bytes) -> int:
    return SPEC_ID_SIZE + struct.unpack_from("<I", data, SPEC_ID_SIZE - 4)[0]


def record(pcr: int, type_: int, digest: bytes, data: bytes) -> bytes:
    """One TCG_PCR_EVENT2 with a single sha256 digest (the recorded log's only bank)."""
    return (
        struct.pack("<IIIH", pcr, type_, 1, firmware.TPM_ALG_SHA256)
        + digest
        + struct.pack("<I", len(data))
        + data
    )


def test_the_recorded_ovmf_log_parses() -> None:
    log = firmware.parse(real_log())
    assert log.digest_sizes == {firmware.TPM_ALG_SHA256: 32}
    assert len(log.events) == 30  # tpm2_eventlog shows 31 records: the Spec ID one plus these
    assert log.events[0].offset == header_size(real_log())
    assert log.events[0].type_name == "EV_S_CRTM_VERSION"
    summary = log.summary()
    assert summary["4"]["EV_EFI_BOOT_SERVICES_APPLICATION"] == 2  # shim/grub or the kernel's stub
    assert summary["7"]["EV_EFI_VARIABLE_DRIVER_CONFIG"] == 5  # SecureBoot, PK, KEK, db, dbx
    assert all(kinds.get("EV_SEPARATOR") == 1 for pcr, kinds in summary.items() if int(pcr) < 8)
    assert list(summary) == sorted(summary, key=int)


def test_replay_gives_the_pcrs_the_vtpm_quoted() -> None:
    values = quoted()
    replayed = firmware.replay(firmware.parse(real_log()).events, pcrs.QUOTED)
    assert replayed == {index: values[index] for index in pcrs.QUOTED}
    assert replayed[0] != pcrs.ZERO
    assert replayed[9] != pcrs.ZERO  # Linux's EFI stub measured the initrd into PCR 9
    assert replayed[8] == replayed[11] == pcrs.ZERO


def test_replay_without_events_is_all_zero() -> None:
    assert firmware.replay(()) == dict.fromkeys(pcrs.FIRMWARE, pcrs.ZERO)


def test_no_action_events_are_not_extended() -> None:
    data = real_log()
    noise = record(4, EV_NO_ACTION, hashlib.sha256(b"noise").digest(), b"vendor info")
    extended = record(4, 0x80000007, hashlib.sha256(b"action").digest(), b"action")
    base = firmware.replay(firmware.parse(data).events)
    assert firmware.replay(firmware.parse(data + noise).events) == base
    assert firmware.replay(firmware.parse(data + extended).events)[4] != base[4]


def test_startup_locality_sets_pcr0_initial_value() -> None:
    data = real_log()
    cut = header_size(data)
    locality = record(0, EV_NO_ACTION, bytes(32), b"StartupLocality\x00\x03")
    replayed = firmware.replay(firmware.parse(data[:cut] + locality + data[cut:]).events)
    value = bytes(31) + b"\x03"  # the H-CRTM started from locality 3
    for event in firmware.parse(data).events:
        if event.pcr == 0 and event.type != EV_NO_ACTION:
            value = hashlib.sha256(value + event.sha256).digest()
    assert replayed[0] == value != quoted()[0]
    assert firmware.replay(firmware.parse(data[:cut] + locality).events)[0] == bytes(31) + b"\x03"


@pytest.mark.parametrize("keep", [0, 10, SPEC_ID_SIZE + 20, -1, -37])
def test_a_truncated_log_names_the_offset(keep: int) -> None:
    data = real_log()
    with pytest.raises(FirmwareLogError, match=r"(truncated|at offset) \d*") as raised:
        firmware.parse(data[:keep] if keep else b"\x00")
    assert "offset" in str(raised.value)


def test_a_log_cut_on_a_record_boundary_is_a_shorter_log() -> None:
    data = real_log()
    events = firmware.parse(data).events
    assert len(firmware.parse(data[: events[5].offset]).events) == 5


def test_a_log_without_the_spec_id_event_is_refused() -> None:
    data = bytearray(real_log())
    data[SPEC_ID_SIZE : SPEC_ID_SIZE + 4] = b"XXXX"
    with pytest.raises(FirmwareLogError, match="offset 0 does not start with a 'Spec ID Event03'"):
        firmware.parse(bytes(data))


def test_a_garbled_digest_count_names_the_event_offset() -> None:
    data = bytearray(real_log())
    third = firmware.parse(bytes(data)).events[2]
    struct.pack_into("<I", data, third.offset + 8, 7)
    with pytest.raises(FirmwareLogError, match=f"event at offset {third.offset} carries 7 digests"):
        firmware.parse(bytes(data))


def test_an_undeclared_algorithm_names_the_digest_offset() -> None:
    data = bytearray(real_log())
    third = firmware.parse(bytes(data)).events[2]
    struct.pack_into("<H", data, third.offset + 12, 0x0004)  # sha1, which this log did not declare
    with pytest.raises(FirmwareLogError, match=f"offset {third.offset + 12} uses algorithm 0x0004"):
        firmware.parse(bytes(data))


def test_an_impossible_pcr_index_is_refused() -> None:
    data = bytearray(real_log())
    last = firmware.parse(bytes(data)).events[-1]
    struct.pack_into("<I", data, last.offset, 4096)
    with pytest.raises(FirmwareLogError, match=f"offset {last.offset} names PCR 4096"):
        firmware.parse(bytes(data))


def test_a_flipped_digest_byte_changes_the_replay() -> None:
    data = bytearray(real_log())
    event = firmware.parse(bytes(data)).events[0]
    data[event.offset + 14] ^= 0x01  # first byte of its sha256 digest
    assert firmware.replay(firmware.parse(bytes(data)).events)[event.pcr] != quoted()[event.pcr]


def test_only_a_tpm_device_has_the_firmware_log() -> None:
    assert firmware.log_path_for("device:/dev/tpmrm0") == Path(firmware.SYSFS_LOG)
    assert firmware.log_path_for("swtpm:host=127.0.0.1,port=2321") is None
