"""Registration and the attestation front door, with fakes in place of the host's TPM."""

from __future__ import annotations

import json

import pytest

from nestlab.trust import attest
from nestlab.trust.errors import RegistrationError, TpmError, TrustError
from nestlab.trust.verdict import HostName

from .helpers import (
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
