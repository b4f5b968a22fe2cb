"""Attestation end to end: enroll a host's TPM keys, register them, challenge the host, judge it.

Host side: :func:`enroll` (EK + AK, persisted in the TPM) and :func:`collect_evidence` (a quote
over the measured PCRs with the verifier's nonce, plus the event log read under the measurement
lock). Verifier side: :func:`register` (checks the AK is a restricted, TPM-resident signing key and
proves it shares a TPM with the EK by credential activation) and :func:`attest_host` (fresh nonce
-> evidence -> :func:`nestlab.trust.verify.verify`). Serialization helpers let the two sides live
in different processes later (agent and API server).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from nestlab.trust import pcrs, tpm, tpmstruct
from nestlab.trust.errors import RegistrationError, TrustError
from nestlab.trust.measure import Measurer
from nestlab.trust.policy import Policy
from nestlab.trust.verdict import HostName, Verdict
from nestlab.trust.verify import Evidence, Registration, SignatureChecker, verify

NONCE_SIZE: Final = 32  # bytes: a sha256-sized qualifying value, the most a sha256 AK quote carries
SECRET_SIZE: Final = 32  # bytes of the credential-activation challenge

#: makecredential(ek_public, ak_name, secret) -> blob; activate(blob) -> secret
MakeCredential = Callable[[bytes, bytes, bytes], bytes]
Activate = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Enrollment:
    """What a host offers to register: its TPM's EK and AK public areas."""

    ek_public: bytes
    ak_public: bytes


def enroll(host_tpm: tpm.Tpm) -> Enrollment:
    """Create (first time) or reuse the host's persistent EK and AK."""
    return Enrollment(host_tpm.ensure_ek(), host_tpm.ensure_ak())


def register(
    host: HostName,
    enrollment: Enrollment,
    activate: Activate,
    make_credential: MakeCredential = tpm.make_credential,
) -> Registration:
    """Verifier side: accept the host's AK only if it is a restricted TPM key next to its EK."""
    ak = tpmstruct.parse_public(enrollment.ak_public)
    if ak.attributes & tpmstruct.AK_REQUIRED != tpmstruct.AK_REQUIRED:
        raise RegistrationError(
            f"the AK offered by {host} is not a restricted, TPM-generated, non-migratable signing key "
            f"(attributes {ak.attributes:#x}); recreate it with tpm2_createak"
        )
    secret = secrets.token_bytes(SECRET_SIZE)
    blob = make_credential(enrollment.ek_public, ak.name, secret)
    try:
        answer = activate(blob)
    except TrustError as exc:
        raise RegistrationError(f"{host} could not activate the registration credential: {exc}") from exc
    if not hmac.compare_digest(answer, secret):
        raise RegistrationError(
            f"{host} answered the credential challenge wrongly: its AK and EK are not in the same TPM"
        )
    return Registration(host, enrollment.ek_public, enrollment.ak_public, ak.name)


def collect_evidence(
    host_tpm: tpm.Tpm, measurer: Measurer, nonce: bytes, firmware_log: Path | None = None
) -> Evidence:
    """Host side: quote the measured PCRs for ``nonce`` and read the log, with no measurement between.

    ``firmware_log`` is the firmware's binary event log for this TPM (firmware.log_path_for), read
    when it exists; the firmware is done measuring once the OS runs, so it needs no lock.
    """
    with measurer.locked():
        result = host_tpm.quote(nonce, pcrs.QUOTED)
        log_text = measurer.log_path.read_text() if measurer.log_path.exists() else ""
    firmware_bytes = read_firmware_log(firmware_log)
    return Evidence(result.message, result.signature, result.pcr_values, log_text, firmware_bytes)


def read_firmware_log(path: Path | None) -> bytes:
    """The firmware's binary event log at ``path``; empty when there is none (no path, no file)."""
    try:
        return path.read_bytes() if path is not None and path.exists() else b""
    except OSError as exc:
        raise TrustError(f"could not read the firmware event log {path}: {exc}") from exc


def attest_host(
    registration: Registration,
    policy: Policy,
    gather: Callable[[bytes], Evidence],
    check_signature: SignatureChecker = tpm.check_quote_signature,
) -> Verdict:
    """Challenge a host with a fresh nonce (``gather`` asks it for evidence) and judge the answer."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    try:
        evidence = gather(nonce)
    except Exception as exc:  # fail closed: no evidence is a failed attestation
        now = datetime.now(UTC).isoformat()
        reason = f"could not collect evidence from {registration.host}: {type(exc).__name__}: {exc}"
        return Verdict(registration.host, now, {}, (), policy.digest(), False, (reason,))
    return verify(
        registration=registration,
        policy=policy,
        nonce=nonce,
        evidence=evidence,
        check_signature=check_signature,
        now=datetime.now(UTC),
    )


def registration_to_json(registration: Registration) -> dict[str, Any]:
    return {
        "host": registration.host,
        "ekPublic": registration.ek_public.hex(),
        "akPublic": registration.ak_public.hex(),
        "akName": registration.ak_name.hex(),
    }


def registration_from_json(raw: dict[str, Any]) -> Registration:
    try:
        return Registration(
            HostName(str(raw["host"])),
            bytes.fromhex(raw["ekPublic"]),
            bytes.fromhex(raw["akPublic"]),
            bytes.fromhex(raw["akName"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistrationError(f"registration record is malformed ({exc}); register the host again") from exc


def evidence_to_json(evidence: Evidence) -> dict[str, Any]:
    return {
        "message": evidence.message.hex(),
        "signature": evidence.signature.hex(),
        "pcrs": {str(index): value.hex() for index, value in sorted(evidence.pcr_values.items())},
        "eventLog": evidence.event_log,
        "firmwareLog": evidence.firmware_log.hex(),
    }


def evidence_from_json(raw: dict[str, Any]) -> Evidence:
    """Parse evidence received from a host; malformed evidence raises (attest_host fails closed on it)."""
    try:
        return Evidence(
            bytes.fromhex(raw["message"]),
            bytes.fromhex(raw["signature"]),
            {int(index): bytes.fromhex(value) for index, value in raw["pcrs"].items()},
            str(raw["eventLog"]),
            bytes.fromhex(raw.get("firmwareLog", "")),  # absent from hosts that predate it: no firmware
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrustError(f"attestation evidence is malformed: {exc}") from exc
