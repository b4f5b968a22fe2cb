"""Registration and the attestation front door, with fakes in place of the host's TPM."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nestlab.trust import attest, tpm
from nestlab.trust.errors import RegistrationError, TpmError, TrustError
from nestlab.trust.measure import Measurer
from nestlab.trust.verdict import HostName

from .helpers import (
    FIXTURES,
    accept_signature,
    fixture_bytes,
    recorded_evidence,
    recorded_policy,
    recorded_registration,
)

HOST = HostName("esx-01")
ENROLLMENT = attest.Enrollment(fixture_bytes("ek.pub"), fixture_bytes("ak.pub"))


def echo_credential(ek_public: bytes, ak_name: bytes, secret: bytes) -> bytes:
    """A stand-in for tpm2_makecredential whose blob is the secret itself."""
    return secret


def test_registration_records_the_ak_name_when_the_host_answers_the_challenge() -> None:
    registration = attest.register(
        HOST, ENROLLMENT, activate=lambda blob: blob, make_credential=echo_credential
    )
    assert registration == recorded_registration()


def test_wrong_answer_to_the_challenge_is_refused() -> None:
    with pytest.raises(RegistrationError, match="not in the same TPM"):
        attest.register(HOST, ENROLLMENT, activate=lambda blob: bytes(32), make_credential=echo_credential)


def test_failure_to_activate_is_a_registration_error() -> None:
    def broken(blob: bytes) -> bytes:
        raise TpmError("tpm2_activatecredential failed")

    with pytest.raises(RegistrationError, match="could not activate"):
        attest.register(HOST, ENROLLMENT, activate=broken, make_credential=echo_credential)


def test_a_non_restricted_key_is_refused_as_ak() -> None:
    offered = attest.Enrollment(fixture_bytes("ek.pub"), fixture_bytes("ek.pub"))  # the EK cannot sign
    with pytest.raises(RegistrationError, match="not a restricted, TPM-generated"):
        attest.register(HOST, offered, activate=lambda blob: blob, make_credential=echo_credential)


def test_registration_and_evidence_survive_json() -> None:
    registration = recorded_registration()
    wire = json.loads(json.dumps(attest.registration_to_json(registration)))
    assert attest.registration_from_json(wire) == registration
    evidence = recorded_evidence()
    assert attest.evidence_from_json(json.loads(json.dumps(attest.evidence_to_json(evidence)))) == evidence


def test_evidence_carries_the_firmware_log_and_older_hosts_send_none() -> None:
    evidence = replace(recorded_evidence(), firmware_log=(FIXTURES / "vm" / "firmware.log").read_bytes())
    wire = json.loads(json.dumps(attest.evidence_to_json(evidence)))
    assert attest.evidence_from_json(wire) == evidence
    del wire["firmwareLog"]  # what an agent from before PCRs 0-7 were quoted sends
    assert attest.evidence_from_json(wire).firmware_log == b""
    with pytest.raises(TrustError, match="evidence is malformed"):
        attest.evidence_from_json({**wire, "firmwareLog": "not hex"})


def test_malformed_records_are_refused() -> None:
    with pytest.raises(RegistrationError, match="register the host again"):
        attest.registration_from_json({"host": "esx-01", "ekPublic": "zz"})
    with pytest.raises(TrustError, match="evidence is malformed"):
        attest.evidence_from_json({"message": "00"})


def test_attest_host_sends_a_fresh_nonce_each_time() -> None:
    seen: list[bytes] = []

    def gather(nonce: bytes) -> attest.Evidence:
        seen.append(nonce)
        return recorded_evidence()

    for _ in range(2):
        verdict = attest.attest_host(recorded_registration(), recorded_policy(), gather, accept_signature)
        assert not verdict.passed  # the recorded quote answers another nonce
        assert any(reason.startswith("nonce mismatch") for reason in verdict.reasons)
    assert len(seen[0]) == attest.NONCE_SIZE
    assert seen[0] != seen[1]


def test_host_that_cannot_answer_fails_closed() -> None:
    def gather(nonce: bytes) -> attest.Evidence:
        raise TpmError("swtpm is not running")

    verdict = attest.attest_host(recorded_registration(), recorded_policy(), gather, accept_signature)
    assert not verdict.passed
    assert verdict.reasons == ("could not collect evidence from esx-01: TpmError: swtpm is not running",)
    assert verdict.policy_digest == recorded_policy().digest()


class QuotingTpm:
    """Answers quotes with canned bytes and remembers which PCRs were asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, ...]] = []

    def pcr_extend(self, index: int, digest: bytes) -> None:
        raise AssertionError("collect_evidence must not measure")

    def quote(self, nonce: bytes, indexes: tuple[int, ...]) -> tpm.QuoteResult:
        self.asked.append(tuple(indexes))
        return tpm.QuoteResult(b"msg", b"sig", {})


def test_collect_evidence_quotes_firmware_pcrs_and_reads_the_firmware_log_when_given(tmp_path: Path) -> None:
    host_tpm = QuotingTpm()
    measurer = Measurer(host_tpm, tmp_path / "log.json")
    log = tmp_path / "binary_bios_measurements"
    log.write_bytes(b"firmware log bytes")
    with_log = attest.collect_evidence(host_tpm, measurer, b"n", log)  # type: ignore[arg-type]
    assert with_log.firmware_log == b"firmware log bytes"
    assert host_tpm.asked == [(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11)]
    assert attest.collect_evidence(host_tpm, measurer, b"n").firmware_log == b""  # type: ignore[arg-type]
    missing = attest.collect_evidence(host_tpm, measurer, b"n", tmp_path / "none")  # type: ignore[arg-type]
    assert missing.firmware_log == b""  # a device without a firmware log: nothing measured before Linux
