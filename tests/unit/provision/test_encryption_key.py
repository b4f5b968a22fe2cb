"""The lab's encryption-at-rest key: made once with the PKI, 0600, loadable, and never replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.api import encryption
from nestlab.provision.pki import ENCRYPTION_CONFIG, ensure_encryption_config, ensure_lab_pki
from nestlab.spec import make_plan, parse_spec
from tests.unit.spec.helpers import spec_yaml


def test_made_with_the_lab_pki_and_kept(tmp_path: Path) -> None:
    ensure_lab_pki(make_plan(parse_spec(spec_yaml())), tmp_path)
    path = tmp_path / ENCRYPTION_CONFIG
    assert (path.stat().st_mode & 0o777) == 0o600
    loaded = encryption.load(path)
    assert loaded.describe() == "secrets -> aesgcm:key1"
    first = path.read_bytes()
    ensure_lab_pki(make_plan(parse_spec(spec_yaml())), tmp_path)
    assert path.read_bytes() == first  # the key that encrypted the lab's Secrets stays


def test_each_lab_gets_its_own_key(tmp_path: Path) -> None:
    one = ensure_encryption_config(tmp_path / "a").read_text()
    two = ensure_encryption_config(tmp_path / "b").read_text()
    assert one != two


def test_a_broken_file_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / ENCRYPTION_CONFIG
    path.write_text("kind: Nope\n")
    with pytest.raises(encryption.EncryptionConfigError, match=str(path)):
        ensure_encryption_config(tmp_path)
    assert path.read_text() == "kind: Nope\n"
