"""`nestlab verify --name` and `nestlab verify --inventory` run the same testinfra checks on the same
lab files: the e2e suite runs the (minutes long) checks once, through ``--inventory``."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab import lifecycle
from nestlab.errors import UsageError
from nestlab.paths import LabFiles


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    roots: list[Path] = []

    def fake_verify(files: LabFiles) -> Path:
        roots.append(files.root)
        return files.root / "report"

    monkeypatch.setattr(lifecycle, "run_verify", fake_verify)
    monkeypatch.setattr(lifecycle, "saved_plan", lambda name: LabFiles.named(name).root / lifecycle.SPEC_FILE)
    return roots


def test_by_name_and_by_inventory_verify_the_same_lab(ran: list[Path]) -> None:
    files = LabFiles.named("e2e")
    assert lifecycle.verify("e2e") == files.root / "report"
    assert lifecycle.verify("ignored", files.inventory) == files.root / "report"
    assert ran == [files.root, files.root]


def test_an_unknown_lab_is_refused_before_any_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    monkeypatch.setattr(lifecycle, "run_verify", lambda files: pytest.fail("checks ran for no lab"))
    with pytest.raises(UsageError, match="no lab named 'nope'"):
        lifecycle.verify("nope")
