"""The one way nestlab talks to a TPM: tpm2-tools through nestlab.runtime.proc, TCTI given per call.

Every command names its TCTI (``swtpm:host=..,port=..`` for a lab node's swtpm) with ``-T`` rather
than through the environment, so two hosts' TPMs can be driven from one process. A swtpm has no
resource manager: transient objects left loaded by one command stay in the TPM's few slots and
make the next command fail with "out of memory for object contexts", so every command is followed
by ``tpm2_flushcontext -t``. Long-lived keys (EK, AK) are made persistent instead of being kept
as context files. Offline helpers (checkquote, makecredential) need no TPM and live here too so
there is one place that knows tpm2-tools' command lines.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nestlab.runtime import proc
from nestlab.trust.errors import SignatureError, TpmError

EK_HANDLE: Final = 0x81010001  # TCG provisioning guidance: the RSA EK's persistent handle
AK_HANDLE: Final = 0x81010002  # next free handle in the endorsement range, used for the AK
_TIMEOUT: Final = 30.0  # seconds; swtpm answers in milliseconds, RSA key creation in well under a second
_PCR_LINE = re.compile(r"^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]{64})\s*$")


def swtpm_tcti(host: str, port: int) -> str:
    """The TCTI string tpm2-tools use for a swtpm's TCP server socket."""
    return f"swtpm:host={host},port={port}"


@dataclass(frozen=True)
class QuoteResult:
    """What tpm2_quote produced: the signed TPMS_ATTEST, its signature and the PCR values quoted."""

    message: bytes
    signature: bytes
    pcr_values: dict[int, bytes]


class Tpm:
    """A TPM reached through one TCTI."""

    def __init__(self, tcti: str, runner: proc.Runner = proc.run, timeout: float = _TIMEOUT) -> None:
        self.tcti = tcti
        self._run = runner
        self._timeout = timeout

    def _tool(self, argv: Sequence[str]) -> proc.Result:
        try:
            result = self._run([*argv, "-T", self.tcti], timeout=self._timeout)
        except proc.ProcessError as exc:
            with contextlib.suppress(TpmError):  # the command's own error is the one to report
                self._flush()
            raise TpmError(f"TPM command failed on {self.tcti}: {exc}") from exc
        self._flush()
        return result

    def _flush(self) -> None:
        try:
            self._run(["tpm2_flushcontext", "-t", "-T", self.tcti], timeout=self._timeout)
        except proc.ProcessError as exc:
            raise TpmError(f"could not flush transient objects on {self.tcti}: {exc}") from exc

    def startup(self) -> None:
        """TPM2_Startup(CLEAR): what firmware does after a reset; harmless when already started."""
        self._tool(["tpm2_startup", "-c"])

    def shutdown(self) -> None:
        """TPM2_Shutdown(CLEAR): what the OS does before a reboot. Without it the reset counts as a
        dictionary-attack failure, and after a few the TPM refuses to use the AK (lockout)."""
        self._tool(["tpm2_shutdown", "-c"])

    def clear_lockout(self) -> None:
        """Reset the dictionary-attack counter (TPM2_DictionaryAttackLockReset, empty lockout auth).

        A host that fails (power lost, ``nestlab node stop``) resets its TPM without TPM2_Shutdown,
        and each such reset counts as a dictionary-attack failure: after a few the TPM refuses to
        use the AK and the host can no longer attest. The owner clears the counter at boot, as an
        OS with the lockout authorization does; the lab's lockout authorization is empty."""
        self._tool(["tpm2_dictionarylockout", "--clear-lockout"])

    def pcr_read(self, indexes: Sequence[int]) -> dict[int, bytes]:
        """Current sha256 values of ``indexes``."""
        result = self._tool(["tpm2_pcrread", "sha256:" + ",".join(str(i) for i in indexes)])
        return _pcr_values(result.stdout)

    def pcr_extend(self, index: int, digest: bytes) -> None:
        """PCR[index] := sha256(PCR[index] || digest)."""
        self._tool(["tpm2_pcrextend", f"{index}:sha256={digest.hex()}"])

    def persistent_handles(self) -> set[int]:
        result = self._tool(["tpm2_getcap", "handles-persistent"])
        return {int(m, 16) for m in re.findall(r"0x[0-9a-fA-F]+", result.stdout)}

    def read_public(self, handle: int) -> bytes:
        """TPM2B_PUBLIC of a persistent key."""
        with tempfile.TemporaryDirectory(prefix="nestlab-tpm-") as tmp:
            out = Path(tmp) / "key.pub"
            self._tool(["tpm2_readpublic", "-c", f"{handle:#x}", "-o", str(out)])
            return out.read_bytes()

    def ensure_ek(self, handle: int = EK_HANDLE) -> bytes:
        """The RSA EK at ``handle`` (created and persisted on first use); returns its TPM2B_PUBLIC."""
        if handle not in self.persistent_handles():
            self._tool(["tpm2_createek", "-c", f"{handle:#x}", "-G", "rsa"])
        return self.read_public(handle)

    def ensure_ak(self, handle: int = AK_HANDLE, ek_handle: int = EK_HANDLE) -> bytes:
        """A restricted RSA signing key under the EK, persisted at ``handle``; returns its TPM2B_PUBLIC."""
        if handle not in self.persistent_handles():
            with tempfile.TemporaryDirectory(prefix="nestlab-tpm-") as tmp:
                ctx = Path(tmp) / "ak.ctx"
                self._tool(
                    [
                        *("tpm2_createak", "-C", f"{ek_handle:#x}", "-c", str(ctx)),
                        *("-G", "rsa", "-g", "sha256", "-s", "rsassa"),
                    ]
                )
                self._tool(["tpm2_evictcontrol", "-C", "o", "-c", str(ctx), f"{handle:#x}"])
        return self.read_public(handle)

    def activate_credential(
        self, blob: bytes, ak_handle: int = AK_HANDLE, ek_handle: int = EK_HANDLE
    ) -> bytes:
        """Recover the secret of a makecredential blob: possible only with this EK and this AK inside."""
        with tempfile.TemporaryDirectory(prefix="nestlab-tpm-") as tmp:
            session, blob_file, secret = Path(tmp) / "s.ctx", Path(tmp) / "cred", Path(tmp) / "secret"
            blob_file.write_bytes(blob)
            self._tool(["tpm2_startauthsession", "--policy-session", "-S", str(session)])
            try:
                # the EK's policy: PolicySecret with the endorsement hierarchy's (empty) auth
                self._tool(["tpm2_policysecret", "-S", str(session), "-c", "e"])
                self._tool(
                    [
                        *("tpm2_activatecredential", "-c", f"{ak_handle:#x}", "-C", f"{ek_handle:#x}"),
                        *("-i", str(blob_file), "-o", str(secret), "-P", f"session:{session}"),
                    ]
                )
            finally:
                self._tool(["tpm2_flushcontext", str(session)])
            return secret.read_bytes()

    def quote(self, nonce: bytes, indexes: Sequence[int], ak_handle: int = AK_HANDLE) -> QuoteResult:
        """A quote of sha256 PCRs ``indexes`` qualified by ``nonce``, signed by the AK."""
        with tempfile.TemporaryDirectory(prefix="nestlab-tpm-") as tmp:
            msg, sig, values = Path(tmp) / "quote.msg", Path(tmp) / "quote.sig", Path(tmp) / "pcrs"
            result = self._tool(
                [
                    *("tpm2_quote", "-c", f"{ak_handle:#x}", "-l", "sha256:" + ",".join(map(str, indexes))),
                    *("-q", nonce.hex(), "-m", str(msg), "-s", str(sig), "-g", "sha256"),
                    *("-o", str(values)),  # without -o, tpm2_quote does not print the PCR values
                ]
            )
            return QuoteResult(msg.read_bytes(), sig.read_bytes(), _pcr_values(result.stdout))


def _pcr_values(output: str) -> dict[int, bytes]:
    """PCR index -> value from the YAML tpm2_pcrread and tpm2_quote print (sha256 bank only)."""
    return {
        int(match.group(1)): bytes.fromhex(match.group(2))
        for match in (_PCR_LINE.match(line) for line in output.splitlines())
        if match
    }


def check_quote_signature(
    ak_public: bytes, message: bytes, signature: bytes, nonce: bytes, runner: proc.Runner = proc.run
) -> None:
    """Raise SignatureError unless ``signature`` over ``message`` verifies with the AK (tpm2_checkquote)."""
    with tempfile.TemporaryDirectory(prefix="nestlab-verify-") as tmp:
        files = {"ak.pub": ak_public, "quote.msg": message, "quote.sig": signature}
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
        argv = ["tpm2_checkquote", "-u", "ak.pub", "-m", "quote.msg", "-s", "quote.sig", "-q", nonce.hex()]
        try:
            runner(argv, timeout=_TIMEOUT, cwd=Path(tmp))
        except proc.ProcessError as exc:
            raise SignatureError(f"quote signature does not verify with the registered AK: {exc}") from exc


def make_credential(ek_public: bytes, ak_name: bytes, secret: bytes, runner: proc.Runner = proc.run) -> bytes:
    """Encrypt ``secret`` so only the TPM holding this EK, with a key named ``ak_name``, can recover it."""
    with tempfile.TemporaryDirectory(prefix="nestlab-verify-") as tmp:
        (Path(tmp) / "ek.pub").write_bytes(ek_public)
        (Path(tmp) / "secret").write_bytes(secret)
        argv = ["tpm2_makecredential", "-T", "none", "-u", "ek.pub", "-s", "secret"]
        try:
            runner([*argv, "-n", ak_name.hex(), "-o", "cred"], timeout=_TIMEOUT, cwd=Path(tmp))
        except proc.ProcessError as exc:
            raise TpmError(f"tpm2_makecredential failed: {exc}") from exc
        return (Path(tmp) / "cred").read_bytes()
