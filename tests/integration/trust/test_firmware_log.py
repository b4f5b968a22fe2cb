"""nestlab's firmware log replay against tpm2-tools' own (tpm2_eventlog), and the VM's real quote.

The log is the one recorded from OVMF + swtpm in the libvirt test's VM (tests/unit/trust/fixtures/vm/);
variants are written to a temporary directory. tpm2_eventlog is an independent implementation of
the TCG log format: both must compute the same PCR values, for the real log and for changed ones.
The recorded quote is checked with the real tpm2_checkquote, so the verdict below is the one a
verifier gives a libvirt host (the libvirt test does the same with a live VM).
"""

from __future__ import annotations

import hashlib
import re
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nestlab.runtime import proc
from nestlab.trust import firmware, pcrs, tpm
from nestlab.trust.verify import verify
from tests.unit.trust.test_verify_firmware import VM, vm_evidence, vm_policy, vm_registration

pytestmark = pytest.mark.integration

STEP_TIMEOUT = 30.0  # tpm2_eventlog on a few kB takes milliseconds
PCR_LINE = re.compile(r"^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})\s*$")


def tpm2_eventlog_pcrs(log: Path) -> dict[int, bytes]:
    """The sha256 PCR values tpm2_eventlog computes for ``log`` (the ``pcrs:`` section of its YAML)."""
    output = proc.run(["tpm2_eventlog", str(log)], timeout=STEP_TIMEOUT).stdout
    section = output[output.rindex("pcrs:") :]
    bank = section[section.index("sha256:") :].split("\n", 1)[1]
    values: dict[int, bytes] = {}
    for line in bank.splitlines():
        match = PCR_LINE.match(line)
        if not match:
            break  # the next bank or the end
        values[int(match.group(1))] = bytes.fromhex(match.group(2))
    return values


def ours(data: bytes) -> dict[int, bytes]:
    replayed = firmware.replay(firmware.parse(data).events, range(pcrs.MAX_PCR + 1))
    return {index: value for index, value in replayed.items() if value != pcrs.ZERO}


def test_replay_matches_tpm2_eventlog_on_the_recorded_ovmf_log(tmp_path: Path) -> None:
    data = (VM / "firmware.log").read_bytes()
    theirs = tpm2_eventlog_pcrs(VM / "firmware.log")
    assert sorted(theirs) == [0, 1, 2, 3, 4, 5, 6, 7, 9, 12]
    assert ours(data) == theirs


def test_replay_matches_tpm2_eventlog_on_changed_logs(tmp_path: Path) -> None:
    data = (VM / "firmware.log").read_bytes()
    events = firmware.parse(data).events
    flipped = bytearray(data)
    flipped[events[3].offset + 14] ^= 0x80  # a digest byte of an event in PCR 1 or 2
    extra = struct.pack("<IIIH", 7, 0x80000007, 1, firmware.TPM_ALG_SHA256) + hashlib.sha256(b"x").digest()
    appended = data + extra + struct.pack("<I", 1) + b"x"
    for name, variant in (("flipped.log", bytes(flipped)), ("appended.log", appended)):
        path = tmp_path / name
        path.write_bytes(variant)
        assert ours(variant) == tpm2_eventlog_pcrs(path), name
        assert ours(variant) != ours(data)


def test_recorded_vm_quote_verifies_with_tpm2_checkquote() -> None:
    verdict = verify(
        registration=vm_registration(),
        policy=vm_policy(),
        nonce=bytes.fromhex((VM / "nonce.hex").read_text().strip()),
        evidence=vm_evidence(),
        check_signature=tpm.check_quote_signature,
        now=datetime.now(UTC),
    )
    assert verdict.passed, verdict.reasons
    other_nonce = verify(
        registration=vm_registration(),
        policy=vm_policy(),
        nonce=bytes(32),
        evidence=vm_evidence(),
        check_signature=tpm.check_quote_signature,
        now=datetime.now(UTC),
    )
    assert not other_nonce.passed
