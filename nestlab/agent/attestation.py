"""The host's answer to an attestation challenge: ``POST /attestation`` on the agent's HTTPS port.

The verifier on the control plane sends a fresh nonce; the host answers with what it registered
(``registration.json``: EK, AK and AK name), the AK certificate the lab's attestation CA issued
(``ak.crt``), and evidence: a TPM quote over PCRs 0-9 and 11 carrying the nonce, the event log read
under the measurement lock (no pod launch can slip between quote and log), and the firmware's event
log when the TPM is a device the firmware measured into (libvirt hosts; empty for a swtpm). The host
judges nothing: the verifier does, and fails closed. Missing registration files or a TPM failure
answer 503 with a message, never partial evidence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from nestlab.errors import NestlabError
from nestlab.trust import attest, firmware, tpm
from nestlab.trust.measure import Measurer

REGISTRATION: Final = "registration.json"
AK_CERT: Final = "ak.crt"
MAX_NONCE_BYTES: Final = attest.NONCE_SIZE  # a sha256 AK quote carries at most 32 bytes of qualifying data


class AttestationUnavailableError(NestlabError):
    """The host cannot answer a challenge now (not registered yet, TPM unreachable): HTTP 503."""


class BadChallengeError(NestlabError):
    """The challenge is malformed (HTTP 400)."""


def parse_nonce(body: object) -> bytes:
    """The nonce of a ``{"nonce": hex}`` request body; BadChallengeError otherwise."""
    if not isinstance(body, dict) or not isinstance(body.get("nonce"), str):
        raise BadChallengeError('the body must be a JSON object {"nonce": "<hex>"}')
    try:
        nonce = bytes.fromhex(body["nonce"])
    except ValueError:
        raise BadChallengeError("nonce must be hexadecimal") from None
    if not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise BadChallengeError(f"nonce must be 1 to {MAX_NONCE_BYTES} bytes, not {len(nonce)}")
    return nonce


class Attestation:
    """Answers challenges with this host's TPM, measurement log and registration files."""

    def __init__(self, host_tpm: tpm.Tpm, measurer: Measurer, directory: Path) -> None:
        self.tpm = host_tpm
        self.measurer = measurer
        self.directory = directory

    def answer(self, nonce: bytes) -> dict[str, Any]:
        """The response document; AttestationUnavailableError when it cannot be produced whole."""
        registration_file, cert_file = self.directory / REGISTRATION, self.directory / AK_CERT
        try:
            registration = json.loads(registration_file.read_text())
            certificate = cert_file.read_text()
        except (OSError, json.JSONDecodeError) as exc:
            raise AttestationUnavailableError(
                f"this host is not registered for attestation ({exc}); run `nestlab up` again to register it"
            ) from exc
        try:
            evidence = attest.collect_evidence(
                self.tpm, self.measurer, nonce, firmware.log_path_for(self.tpm.tcti)
            )
        except NestlabError as exc:
            raise AttestationUnavailableError(f"could not quote the TPM at {self.tpm.tcti}: {exc}") from exc
        return {
            "registration": registration,
            "akCertificate": certificate,
            "evidence": attest.evidence_to_json(evidence),
        }
