"""Verifier with the firmware's measurements: a real quote over PCRs 0-9 and 11 from the libvirt VM's vTPM.

fixtures/vm/ was recorded in the VM of tests/integration/libvirt/test_vm_boot.py: EK + AK made in its
vTPM, a quote for the nonce in nonce.hex, and the OVMF event log. nestlab measured nothing there, so
its own log is empty and PCRs 8 and 11 are zero; PCR 9 holds what Linux's EFI stub measured.
"""

from __future__ import annotations

import json
from dataclasses import replace

from nestlab.trust import eventlog, firmware, pcrs, tpmstruct
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName, Verdict
from nestlab.trust.verify import Evidence, Registration, verify

from .helpers import (
    FIXTURES,
    NOW,
    accept_signature,
    recorded_evidence,
    recorded_nonce,
    recorded_policy,
    recorded_registration,
)

VM = FIXTURES / "vm"
EMPTY_LOG = eventlog.EventLog().dumps()


def vm_registration() -> Registration:
    ak_public = (VM / "ak.pub").read_bytes()
    return Registration(
        HostName("esx-01"), (VM / "ek.pub").read_bytes(), ak_public, tpmstruct.parse_public(ak_public).name
    )


def vm_pcrs() -> dict[int, bytes]:
    return {int(i): bytes.fromhex(v) for i, v in json.loads((VM / "pcrs.json").read_text()).items()}


def vm_evidence(firmware_log: bytes | None = None) -> Evidence:
    return Evidence(
        (VM / "quote.msg").read_bytes(),
        (VM / "quote.sig").read_bytes(),
        vm_pcrs(),
        EMPTY_LOG,
        (VM / "firmware.log").read_bytes() if firmware_log is None else firmware_log,
    )


def vm_policy(**changes: str) -> Policy:
    """The recorded policy plus the VM's PCR 0-7 values (``pcrN=hex`` replaces one)."""
    values = {index: vm_pcrs()[index].hex() for index in pcrs.FIRMWARE}
    values.update({int(key.removeprefix("pcr")): value for key, value in changes.items()})
    return replace(recorded_policy(), firmware=(values,))


def judge(evidence: Evidence, policy: Policy) -> Verdict:
    return verify(
        registration=vm_registration(),
        policy=policy,
        nonce=bytes.fromhex((VM / "nonce.hex").read_text().strip()),
        evidence=evidence,
        check_signature=accept_signature,
        now=NOW,
    )


def test_vm_quote_with_its_firmware_log_passes_and_reports_the_firmware() -> None:
    verdict = judge(vm_evidence(), vm_policy())
    assert verdict.passed, verdict.reasons
    assert verdict.pcrs == {index: vm_pcrs()[index].hex() for index in pcrs.QUOTED}
    assert verdict.firmware_events["4"]["EV_EFI_BOOT_SERVICES_APPLICATION"] == 2
    assert verdict.firmware_events["9"] == {"EV_EVENT_TAG": 2}
    document = json.loads(json.dumps(verdict.to_json()))
    assert document["firmwareEvents"]["7"]["EV_EFI_VARIABLE_DRIVER_CONFIG"] == 5
    assert document["pcrs"]["0"] == vm_pcrs()[0].hex()


def test_a_flipped_byte_in_the_firmware_log_fails_replay_naming_the_pcr() -> None:
    data = bytearray((VM / "firmware.log").read_bytes())
    event = firmware.parse(bytes(data)).events[0]
    data[event.offset + 14] ^= 0x01  # a byte of the first event's sha256 digest
    verdict = judge(vm_evidence(bytes(data)), vm_policy())
    assert not verdict.passed
    assert verdict.pcrs[0] == vm_pcrs()[0].hex()  # the TPM signed these; the log just does not explain them
    assert any(
        reason.startswith("firmware event log does not replay") and f"PCR {event.pcr} replays to" in reason
        for reason in verdict.reasons
    ), verdict.reasons


def test_a_missing_firmware_log_fails_replay() -> None:
    verdict = judge(vm_evidence(b""), vm_policy())
    assert not verdict.passed
    assert any("does not replay" in reason and "PCR 0 replays to" in reason for reason in verdict.reasons)


def test_a_truncated_firmware_log_is_rejected_naming_the_offset() -> None:
    data = (VM / "firmware.log").read_bytes()
    verdict = judge(vm_evidence(data[:-9]), vm_policy())
    assert not verdict.passed
    assert any(
        reason.startswith("firmware event log rejected: ") and "offset" in reason
        for reason in verdict.reasons
    )


def test_other_firmware_values_fail_naming_pcr_0() -> None:
    verdict = judge(vm_evidence(), vm_policy(pcr0="ab" * 32))
    assert not verdict.passed
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("PCR 0 value 3e695b1035f9b7fa… is not among the firmware values")
    assert verdict.pcrs[0] == vm_pcrs()[0].hex()  # the values were authentic, just not allowed


def test_a_policy_without_firmware_refuses_a_host_that_has_it() -> None:
    verdict = judge(vm_evidence(), recorded_policy())
    assert not verdict.passed
    assert any(
        reason.startswith("PCR 0 is ") and "expects no firmware" in reason for reason in verdict.reasons
    )


def test_any_listed_firmware_value_set_is_allowed() -> None:
    other = dict.fromkeys(pcrs.FIRMWARE, "cd" * 32)
    policy = replace(vm_policy(), firmware=(other, *vm_policy().firmware))
    assert judge(vm_evidence(), policy).passed


def test_a_host_without_firmware_still_passes_with_zero_pcrs_and_no_firmware_log() -> None:
    verdict = verify(
        registration=recorded_registration(),
        policy=recorded_policy(),
        nonce=recorded_nonce(),
        evidence=recorded_evidence(),
        check_signature=accept_signature,
        now=NOW,
    )
    assert verdict.passed, verdict.reasons
    assert all(verdict.pcrs[index] == pcrs.ZERO.hex() for index in pcrs.FIRMWARE)
    assert verdict.firmware_events == {}
    assert verdict.to_json()["firmwareEvents"] == {}


def test_a_host_without_firmware_fails_a_policy_that_expects_firmware() -> None:
    verdict = verify(
        registration=recorded_registration(),
        policy=vm_policy(),
        nonce=recorded_nonce(),
        evidence=recorded_evidence(),
        check_signature=accept_signature,
        now=NOW,
    )
    assert not verdict.passed
    assert any(reason.startswith("PCR 0 value 0000000000000000…") for reason in verdict.reasons)


def test_a_firmware_log_sent_by_a_host_whose_firmware_pcrs_are_zero_fails_replay() -> None:
    evidence = replace(recorded_evidence(), firmware_log=(VM / "firmware.log").read_bytes())
    verdict = verify(
        registration=recorded_registration(),
        policy=recorded_policy(),
        nonce=recorded_nonce(),
        evidence=evidence,
        check_signature=accept_signature,
        now=NOW,
    )
    assert not verdict.passed
    assert any("does not replay" in reason and "PCR 0 replays to" in reason for reason in verdict.reasons)
