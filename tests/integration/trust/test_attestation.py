"""Attestation against a real swtpm: a clean host passes, every tamper drill fails closed with a reason."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import replace

import pytest

from nestlab.trust import attest, pcrs, tpm, tpmstruct
from nestlab.trust.errors import RegistrationError, SignatureError
from nestlab.trust.swtpm import Swtpm
from nestlab.trust.verify import Registration

from .conftest import HOST, BootedHost

pytestmark = pytest.mark.integration

OTHER_AK = 0x81010003  # a second restricted key in the same TPM, not the registered one


def test_registration_proves_ak_and_ek_share_the_tpm(swtpm_host: Swtpm, registered: Registration) -> None:
    host_tpm = swtpm_host.tpm()
    assert registered.ak_public == host_tpm.read_public(tpm.AK_HANDLE)
    assert tpmstruct.parse_public(registered.ak_public).name == registered.ak_name
    # enrolling again reuses the persistent keys: the registration stays valid
    assert attest.enroll(host_tpm) == attest.Enrollment(registered.ek_public, registered.ak_public)


def test_registration_with_a_foreign_ek_is_refused(swtpm_host: Swtpm, registered: Registration) -> None:
    host_tpm = swtpm_host.tpm()
    # the host claims an EK it does not have (here: its AK's public area, an RSA key of the same shape)
    forged = attest.Enrollment(registered.ak_public, registered.ak_public)
    with pytest.raises(RegistrationError, match=f"{HOST} could not activate"):
        attest.register(HOST, forged, host_tpm.activate_credential)


def test_clean_host_with_pods_passes(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))
    booted.measurer.measure_pod_launch(booted.pod("demo/db"))
    verdict = booted.attest()
    assert verdict.passed, verdict.reasons
    assert [event.description for event in verdict.events] == [
        "nestlab-agent 0.1.0",
        f"config {booted.files / 'agent.yaml'}",
        "pod demo/web kernel",
        "pod demo/web initramfs",
        "pod demo/web cmdline",
        "pod demo/db kernel",
        "pod demo/db initramfs",
        "pod demo/db cmdline",
    ]
    read = booted.swtpm.tpm().pcr_read(pcrs.QUOTED)
    assert verdict.pcrs == {index: value.hex() for index, value in read.items()}
    assert all(verdict.pcrs[index] == "00" * 32 for index in pcrs.FIRMWARE)  # a swtpm saw no firmware
    assert json.loads(json.dumps(verdict.to_json()))["passed"] is True


def test_drill_unknown_kernel_measured_and_logged(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))
    booted.measurer.measure_pod_launch(booted.pod("evil/miner", kernel=b"a kernel nobody signed"))
    verdict = booted.attest()
    assert not verdict.passed
    assert len(verdict.reasons) == 1
    assert "pod evil/miner kernel: pod-kernel digest" in verdict.reasons[0]
    assert "is not known to policy integration" in verdict.reasons[0]
    refused = [event.description for event in verdict.events if not event.allowed]
    assert refused == ["pod evil/miner kernel"]


def test_drill_measurement_extended_without_being_logged(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))
    booted.swtpm.tpm().pcr_extend(11, hashlib.sha256(b"hidden payload").digest())
    verdict = booted.attest()
    assert not verdict.passed
    assert any(
        "PCR 11 replays to" in reason and "something was measured without being logged" in reason
        for reason in verdict.reasons
    ), verdict.reasons


def test_drill_replayed_old_quote(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))
    old = booted.gather(secrets.token_bytes(attest.NONCE_SIZE))  # captured by an attacker earlier
    verdict = attest.attest_host(booted.registration, booted.policy, lambda nonce: old)
    assert not verdict.passed
    assert any(reason.startswith("nonce mismatch: the quote answers challenge") for reason in verdict.reasons)


def test_drill_quote_signed_by_another_ak(booted: BootedHost) -> None:
    host_tpm = booted.swtpm.tpm()
    host_tpm.ensure_ak(OTHER_AK)
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))

    def gather_with_other_key(nonce: bytes) -> attest.Evidence:
        with booted.measurer.locked():
            quote = host_tpm.quote(nonce, (8, 9, 11), ak_handle=OTHER_AK)
            log = booted.measurer.log_path.read_text()
        return attest.Evidence(quote.message, quote.signature, quote.pcr_values, log)

    verdict = attest.attest_host(booted.registration, booted.policy, gather_with_other_key)
    assert not verdict.passed
    assert any(f"not by the AK registered for {HOST}" in reason for reason in verdict.reasons)
    assert any(
        "quote signature does not verify with the registered AK" in reason for reason in verdict.reasons
    )


def test_drill_truncated_log_file(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))
    text = booted.measurer.log_path.read_text()
    booted.measurer.log_path.write_text(text[: len(text) * 2 // 3])
    verdict = booted.attest()
    assert not verdict.passed
    assert any(reason.startswith("event log rejected: event log is truncated") for reason in verdict.reasons)


def test_drill_log_with_last_events_cut_off(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))
    booted.measurer.measure_pod_launch(booted.pod("evil/miner", kernel=b"a kernel nobody signed"))
    log = booted.measurer.read()
    booted.measurer.log_path.write_text(replace(log, events=log.events[:5]).dumps())  # hide evil/miner
    verdict = booted.attest()
    assert not verdict.passed
    assert any("PCR 11 replays to" in reason for reason in verdict.reasons), verdict.reasons


def test_drill_reordered_log(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("demo/web"))
    booted.measurer.measure_pod_launch(booted.pod("demo/db"))
    document = json.loads(booted.measurer.log_path.read_text())
    events = document["events"]
    events[2:5], events[5:8] = events[5:8], events[2:5]
    booted.measurer.log_path.write_text(json.dumps(document))
    verdict = booted.attest()
    assert not verdict.passed
    assert any(
        "event log entry 2 has seq 5: events are missing or out of order" in r for r in verdict.reasons
    )
    for seq, event in enumerate(events):
        event["seq"] = seq  # a more careful attacker renumbers: the replay still catches it
    booted.measurer.log_path.write_text(json.dumps(document))
    verdict = booted.attest()
    assert not verdict.passed
    assert any("PCR 11 replays to" in reason for reason in verdict.reasons), verdict.reasons


def test_reboot_clears_the_pod_measurements(booted: BootedHost) -> None:
    booted.measurer.measure_pod_launch(booted.pod("evil/miner", kernel=b"a kernel nobody signed"))
    assert not booted.attest().passed
    booted.swtpm.reboot()
    booted.measurer.reset()
    verdict = booted.attest()
    assert verdict.passed, verdict.reasons
    assert verdict.pcrs == dict.fromkeys(pcrs.QUOTED, "00" * 32)


def test_tpm2_checkquote_accepts_the_real_signature_and_refuses_a_flipped_bit(booted: BootedHost) -> None:
    nonce = secrets.token_bytes(attest.NONCE_SIZE)
    evidence = booted.gather(nonce)
    tpm.check_quote_signature(booted.registration.ak_public, evidence.message, evidence.signature, nonce)
    flipped = bytearray(evidence.message)
    flipped[-1] ^= 1  # last byte of the PCR digest
    with pytest.raises(SignatureError, match="does not verify"):
        tpm.check_quote_signature(booted.registration.ak_public, bytes(flipped), evidence.signature, nonce)
