"""Sign pod kernels with the lab's db key and verify them before every launch (sbsigntool).

A pod kernel is a PE/COFF EFI-stub image (what UEFI Secure Boot checks). ``sbsign`` adds an
Authenticode signature made with the lab kernel key; ``sbverify --cert`` checks the image's hash
against the signature and the signature against the lab certificate. A kernel that fails this is
never booted (the node agent calls :func:`require_signed` before handing it to QEMU).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

from nestlab.runtime import proc
from nestlab.trust.errors import SignatureError, TrustError
from nestlab.trust.keys import LabKeys

_TIMEOUT: Final = 120.0  # seconds: hashing a ~15 MB image takes well under one, even on a busy host


def sign_kernel(keys: LabKeys, image: Path, output: Path, runner: proc.Runner = proc.run) -> Path:
    """Write ``image`` signed with the lab kernel key to ``output`` (atomically) and return it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sign-", dir=output.parent) as tmp:
        signed = Path(tmp) / output.name
        try:
            runner(
                [
                    *("sbsign", "--key", str(keys.kernel_key), "--cert", str(keys.kernel_cert)),
                    *("--output", str(signed), str(image)),
                ],
                timeout=_TIMEOUT,
            )
        except proc.ProcessError as exc:
            raise TrustError(f"could not sign {image} (is it a PE/EFI-stub kernel?): {exc}") from exc
        signed.replace(output)
    return output


def verify_kernel(cert: Path, image: Path, runner: proc.Runner = proc.run) -> str | None:
    """None when ``image`` carries a valid signature by ``cert``; otherwise what sbverify said."""
    result = runner(["sbverify", "--cert", str(cert), str(image)], timeout=_TIMEOUT, check=False)
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return "; ".join(lines) or f"sbverify exited {result.returncode}"


def require_signed(cert: Path, image: Path, runner: proc.Runner = proc.run) -> None:
    """Raise SignatureError unless ``image`` is signed by ``cert``: call before booting a kernel."""
    problem = verify_kernel(cert, image, runner)
    if problem is not None:
        raise SignatureError(
            f"refusing kernel {image}: its signature does not verify with {cert} ({problem}); "
            "reinstall the pod kernel package from the lab depot"
        )
