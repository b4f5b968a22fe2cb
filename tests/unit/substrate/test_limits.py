"""Kernel limits are raised when below what a lab needs, and never lowered."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.substrate.local.errors import LocalSubstrateError
from nestlab.substrate.local.limits import Limit, raise_limits


def sysctl(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "fs" / "inotify" / "max_user_instances"
    path.parent.mkdir(parents=True)
    path.write_text(value)
    return path


LIMIT = (Limit("fs/inotify/max_user_instances", 1024, "test"),)


def test_raises_a_low_limit(tmp_path: Path) -> None:
    path = sysctl(tmp_path, "128\n")
    assert raise_limits(tmp_path, LIMIT) == ["fs.inotify.max_user_instances: 128 -> 1024"]
    assert path.read_text() == "1024\n"


def test_keeps_a_higher_limit(tmp_path: Path) -> None:
    path = sysctl(tmp_path, "8192\n")
    assert raise_limits(tmp_path, LIMIT) == []
    assert path.read_text() == "8192\n"


def test_unreadable_limit_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(LocalSubstrateError, match=r"sysctl -w fs\.inotify\.max_user_instances=1024"):
        raise_limits(tmp_path, LIMIT)
