"""Lab keys: what is refused before any tool runs (generation itself is in the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.trust.errors import KeyStoreError
from nestlab.trust.keys import ensure_lab_keys

from .fakes import FakeRunner


def test_bad_lab_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="lowercase letters"):
        ensure_lab_keys(tmp_path, "Lab One", FakeRunner())


def test_incomplete_key_set_is_refused_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "apt-signing.asc").write_text("public half")
    runner = FakeRunner()
    with pytest.raises(KeyStoreError, match=r"apt-signing\.asc present but gnupg missing"):
        ensure_lab_keys(tmp_path, "demo", runner)
    assert runner.calls == []
    assert (tmp_path / "apt-signing.asc").read_text() == "public half"


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    (tmp_path / "gnupg").mkdir(mode=0o700)
    (tmp_path / "apt-signing.asc").write_text("k")
    (tmp_path / "apt-signing.asc").chmod(0o644)
    with pytest.raises(KeyStoreError, match="mode 0644, readable by others; run: chmod 600"):
        ensure_lab_keys(tmp_path, "demo", FakeRunner())
