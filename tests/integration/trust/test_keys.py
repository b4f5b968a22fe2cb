"""Lab keys made by real gpg and openssl: private files 0600, reused on a second run, public export only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nestlab.runtime import proc
from nestlab.trust import keys

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> keys.LabKeys:
    return keys.ensure_lab_keys(tmp_path_factory.mktemp("keys") / "lab", "demo")


def test_every_file_is_private(lab: keys.LabKeys) -> None:
    assert stat.S_IMODE(lab.root.stat().st_mode) == 0o700
    files = [path for path in lab.root.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {
        "apt-signing.asc",
        "db.key",
        "db.crt",
        "db.der",
        "attest-ca.key",
        "attest-ca.crt",
    }
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in files} == {"0o600"}
    assert not list(lab.root.glob(".new-*"))


def test_second_run_reuses_the_keys(lab: keys.LabKeys) -> None:
    before = {path: path.read_bytes() for path in lab.root.rglob("*") if path.is_file()}
    fingerprint = lab.apt_fingerprint()
    again = keys.ensure_lab_keys(lab.root, "demo")
    assert again == lab
    assert again.apt_fingerprint() == fingerprint
    for path in (lab.kernel_key, lab.kernel_cert, lab.ca_key, lab.ca_cert, lab.apt_public):
        assert path.read_bytes() == before[path]


def test_certificates_have_the_roles_they_claim(lab: keys.LabKeys) -> None:
    ca = proc.run(["openssl", "x509", "-in", str(lab.ca_cert), "-noout", "-text"], timeout=30).stdout
    assert "CA:TRUE" in ca
    assert "Certificate Sign" in ca
    db = proc.run(["openssl", "x509", "-in", str(lab.kernel_cert), "-noout", "-text"], timeout=30).stdout
    assert "Public-Key: (2048 bit)" in db
    assert "Code Signing" in db
    der = proc.run(
        ["openssl", "x509", "-inform", "DER", "-in", str(lab.kernel_cert_der), "-noout", "-subject"],
        timeout=30,
    ).stdout
    assert "nestlab demo pod kernel signing" in der


def test_apt_key_signs_and_the_exported_key_verifies(lab: keys.LabKeys, tmp_path: Path) -> None:
    (tmp_path / "Release").write_text("Origin: nestlab\n")
    gpg = ["gpg", "--homedir", str(lab.gnupg_home), "--batch"]
    try:
        proc.run(
            [*gpg, "--clearsign", "--output", str(tmp_path / "InRelease"), str(tmp_path / "Release")],
            timeout=60,
        )
    finally:
        proc.run(["gpgconf", "--homedir", str(lab.gnupg_home), "--kill", "gpg-agent"], timeout=30)
    public = tmp_path / "public"
    exported = keys.export_public(lab, public)
    keyring = tmp_path / "keyring.gpg"
    proc.run(
        ["gpg", "--batch", "--dearmor", "--output", str(keyring), str(public / "apt-signing.asc")], timeout=30
    )
    proc.run(["gpgv", "--keyring", str(keyring), str(tmp_path / "InRelease")], timeout=30)
    assert sorted(path.name for path in exported) == ["apt-signing.asc", "attest-ca.crt", "db.crt", "db.der"]
    for path in exported:
        assert b"PRIVATE KEY" not in path.read_bytes()
        assert os.access(path, os.R_OK)
