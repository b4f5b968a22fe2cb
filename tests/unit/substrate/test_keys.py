"""The lab key pair: ed25519, private half 0600, made once and then reused."""

from __future__ import annotations

import stat
from pathlib import Path

from nestlab.runtime import proc
from nestlab.substrate.local.keys import ensure_key


def test_key_pair_is_made_once(tmp_path: Path) -> None:
    private = tmp_path / "ssh" / "id_ed25519"
    public = ensure_key(proc.run, private, "nestlab-a")
    assert public.startswith("ssh-ed25519 ")
    assert public.endswith(" nestlab-a")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(private.parent.stat().st_mode) == 0o700
    assert ensure_key(proc.run, private, "nestlab-a") == public  # reused, not regenerated


def test_half_a_pair_is_replaced(tmp_path: Path) -> None:
    private = tmp_path / "id_ed25519"
    first = ensure_key(proc.run, private, "k")
    private.with_name("id_ed25519.pub").unlink()
    second = ensure_key(proc.run, private, "k")
    assert second != first
    assert private.with_name("id_ed25519.pub").read_text().strip() == second
