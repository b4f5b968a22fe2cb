"""AK certificates: the lab attestation CA vouches that an AK belongs to a registered host.

After :func:`nestlab.trust.attest.register` has proved (by credential activation) that a host's AK
lives in the TPM holding its EK, the verifier issues an X.509 certificate for that AK, subject
``CN=<host>``, signed by the lab's attestation CA. Any lab component that trusts the CA certificate
(exported to nodes by keys.export_public) can then check a host's AK offline, without asking the
registrar. tpm2_print converts the TPM public area to PEM; openssl issues and verifies.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

from nestlab.runtime import proc
from nestlab.trust.errors import SignatureError, TrustError
from nestlab.trust.keys import LabKeys
from nestlab.trust.verify import Registration

_TIMEOUT: Final = 60.0  # seconds: one RSA/EC operation, with margin for a loaded machine
_DAYS: Final = "365"  # an AK certificate is reissued when the host re-registers
_EXTENSIONS: Final = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"


def ak_public_pem(ak_public: bytes, runner: proc.Runner = proc.run) -> str:
    """The AK's public key as PEM SubjectPublicKeyInfo."""
    with tempfile.TemporaryDirectory(prefix="nestlab-ak-") as tmp:
        (Path(tmp) / "ak.pub").write_bytes(ak_public)
        try:
            result = runner(
                ["tpm2_print", "-t", "TPM2B_PUBLIC", "-f", "pem", "ak.pub"], timeout=_TIMEOUT, cwd=Path(tmp)
            )
        except proc.ProcessError as exc:
            raise TrustError(f"could not convert the AK public area to PEM: {exc}") from exc
    return result.stdout


def issue_ak_certificate(
    keys: LabKeys, registration: Registration, output: Path, runner: proc.Runner = proc.run
) -> Path:
    """Write a CA-signed certificate for the registered AK of ``registration.host`` to ``output``."""
    with tempfile.TemporaryDirectory(prefix="nestlab-ak-") as tmp:
        pem, extensions = Path(tmp) / "ak.pem", Path(tmp) / "ext.cnf"
        pem.write_text(ak_public_pem(registration.ak_public, runner))
        extensions.write_text(_EXTENSIONS)
        runner(
            [
                *("openssl", "x509", "-new", "-subj", f"/CN={registration.host}/O=nestlab attestation key/"),
                *("-force_pubkey", str(pem), "-CA", str(keys.ca_cert), "-CAkey", str(keys.ca_key)),
                *("-days", _DAYS, "-sha256", "-extfile", str(extensions), "-out", str(output)),
            ],
            timeout=_TIMEOUT,
        )
    return output


def check_ak_certificate(
    ca_cert: Path, certificate: Path, registration: Registration, runner: proc.Runner = proc.run
) -> None:
    """Raise SignatureError unless ``certificate`` is signed by the CA and certifies this host's AK."""
    verified = runner(
        ["openssl", "verify", "-CAfile", str(ca_cert), str(certificate)], timeout=_TIMEOUT, check=False
    )
    if verified.returncode != 0:
        raise SignatureError(
            f"AK certificate {certificate} is not signed by the lab attestation CA: {verified.stderr.strip()}"
        )
    subject = runner(
        ["openssl", "x509", "-in", str(certificate), "-noout", "-subject", "-nameopt", "RFC2253"],
        timeout=_TIMEOUT,
    ).stdout  # "subject=CN=esx-01,O=nestlab attestation key"
    if f"CN={registration.host}" not in subject.strip().removeprefix("subject=").split(","):
        raise SignatureError(f"AK certificate {certificate} is not issued to {registration.host}")
    certified = runner(
        ["openssl", "x509", "-in", str(certificate), "-noout", "-pubkey"], timeout=_TIMEOUT
    ).stdout
    if certified.strip() != ak_public_pem(registration.ak_public, runner).strip():
        raise SignatureError(
            f"AK certificate {certificate} certifies another key than {registration.host}'s AK"
        )
