"""Per-lab keys: the apt repository signing key, the pod kernel signing key (the lab's Secure Boot
db) and the attestation CA.

Each lab gets its own keys so that one lab's depot cannot feed another lab's hosts. Keys are made
once and reused (idempotent); each set is generated in a private temporary directory and renamed
into place, so a key file is never visible with loose permissions or half written. Every file in
the key directory is 0600 (directories 0700). Only public parts leave it, through
:func:`export_public`.

Layout of a key directory::

    gnupg/            private GNUPGHOME holding the OpenPGP apt signing key (ed25519)
    apt-signing.asc   its public key, armored
    db.key db.crt     kernel signing key (RSA 2048: what UEFI firmware verifies) + self-signed cert
    db.der            the same certificate in DER, as firmware db enrollment wants it
    attest-ca.key attest-ca.crt   attestation CA (EC P-256), self-signed, CA:true
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nestlab.runtime import proc
from nestlab.trust.errors import KeyStoreError

_TIMEOUT: Final = 120.0  # seconds: key generation on a loaded 2-core machine, with margin
_DAYS: Final = "3650"  # certificate lifetime: a lab outlives a course, not a decade
_PRIVATE: Final = 0o600
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class LabKeys:
    """Paths of one lab's keys (all inside ``root``)."""

    root: Path

    @property
    def gnupg_home(self) -> Path:
        return self.root / "gnupg"

    @property
    def apt_public(self) -> Path:
        return self.root / "apt-signing.asc"

    @property
    def kernel_key(self) -> Path:
        return self.root / "db.key"

    @property
    def kernel_cert(self) -> Path:
        return self.root / "db.crt"

    @property
    def kernel_cert_der(self) -> Path:
        return self.root / "db.der"

    @property
    def ca_key(self) -> Path:
        return self.root / "attest-ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "attest-ca.crt"

    def apt_fingerprint(self, runner: proc.Runner = proc.run) -> str:
        """Fingerprint of the apt signing key (what reprepro's SignWith names)."""
        result = runner(
            ["gpg", "--homedir", str(self.gnupg_home), "--batch", "--with-colons", "--list-keys"],
            timeout=_TIMEOUT,
        )
        for line in result.stdout.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise KeyStoreError(
            f"no secret key in {self.gnupg_home}; delete {self.root} to generate new lab keys"
        )


def ensure_lab_keys(root: Path, lab: str, runner: proc.Runner = proc.run) -> LabKeys:
    """Generate whatever key set is missing under ``root``, reuse the others; return their paths."""
    if not _NAME.match(lab):
        raise KeyStoreError(f"lab name {lab!r} must be lowercase letters, digits and dashes")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    keys = LabKeys(root)
    sets: list[tuple[tuple[str, ...], Callable[[Path], None]]] = [
        (("gnupg", "apt-signing.asc"), lambda tmp: _make_apt_key(tmp, lab, runner)),
        (("db.key", "db.crt", "db.der"), lambda tmp: _make_kernel_key(tmp, lab, runner)),
        (("attest-ca.key", "attest-ca.crt"), lambda tmp: _make_ca(tmp, lab, runner)),
    ]
    for names, make in sets:
        present = [name for name in names if (root / name).exists()]
        if len(present) == len(names):
            _check_private(root, names)
            continue
        if present:
            raise KeyStoreError(
                f"lab keys in {root} are incomplete: {', '.join(present)} present but "
                f"{', '.join(n for n in names if n not in present)} missing; restore them from a backup "
                f"or delete {', '.join(present)} to generate a new set"
            )
        with tempfile.TemporaryDirectory(prefix=".new-", dir=root) as tmp:
            make(Path(tmp))
            for name in names:
                _lock_down(Path(tmp) / name)
            for name in names:
                os.replace(Path(tmp) / name, root / name)
    return keys


def _make_apt_key(tmp: Path, lab: str, runner: proc.Runner) -> None:
    # gpg-agent's socket lives in the homedir and a socket path is limited to 108 bytes, so the key
    # is made in a short-named directory and moved next to the others once the agent is stopped
    with tempfile.TemporaryDirectory(prefix="nestlab-gpg-") as short:
        home = Path(short) / "gnupg"
        home.mkdir(mode=0o700)
        gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
        uid = f"nestlab lab {lab} apt repository <apt@{lab}.nestlab.invalid>"
        try:
            runner([*gpg, "--quick-gen-key", uid, "ed25519", "sign", "never"], timeout=_TIMEOUT)
            runner([*gpg, "--armor", "--output", str(tmp / "apt-signing.asc"), "--export"], timeout=_TIMEOUT)
        finally:
            runner(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], timeout=_TIMEOUT, check=False)
        for socket_file in home.glob("S.*"):
            socket_file.unlink()
        shutil.move(home, tmp / "gnupg")


def _make_kernel_key(tmp: Path, lab: str, runner: proc.Runner) -> None:
    key, cert = tmp / "db.key", tmp / "db.crt"
    runner(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", _DAYS),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN=nestlab {lab} pod kernel signing/"),
            *("-addext", "extendedKeyUsage=codeSigning"),
        ],
        timeout=_TIMEOUT,
    )
    runner(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER", "-out", str(tmp / "db.der")],
        timeout=_TIMEOUT,
    )


def _make_ca(tmp: Path, lab: str, runner: proc.Runner) -> None:
    runner(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-sha256", "-days", _DAYS, "-keyout", str(tmp / "attest-ca.key")),
            *("-out", str(tmp / "attest-ca.crt"), "-subj", f"/CN=nestlab {lab} attestation CA/"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        ],
        timeout=_TIMEOUT,
    )


def _lock_down(path: Path) -> None:
    """0600 for files, 0700 for directories, recursively."""
    if path.is_dir():
        os.chmod(path, 0o700)
        for child in path.iterdir():
            _lock_down(child)
    else:
        os.chmod(path, _PRIVATE)


def _check_private(root: Path, names: tuple[str, ...]) -> None:
    for name in names:
        paths = [root / name, *(root / name).rglob("*")]
        for path in paths:
            if stat.S_ISSOCK(path.lstat().st_mode):
                continue  # gpg-agent's sockets: 0700 by gpg's choice, and they hold no key
            mode = path.stat().st_mode & 0o777
            allowed = 0o700 if path.is_dir() else _PRIVATE
            if mode & ~allowed:
                raise KeyStoreError(
                    f"{path} has mode {mode:04o}, readable by others; run: chmod {allowed:o} {path}"
                )


def export_public(keys: LabKeys, dest: Path) -> list[Path]:
    """Copy only the public parts nodes need (apt key, db certificate, CA certificate) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    exported = []
    for source in (keys.apt_public, keys.kernel_cert, keys.kernel_cert_der, keys.ca_cert):
        target = dest / source.name
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)
        exported.append(target)
    return exported
