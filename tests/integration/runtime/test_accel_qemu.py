"""The accelerator probe boots its firmware in real QEMU; TCG must always pass it."""

from __future__ import annotations

import pytest

from nestlab.runtime import accel


@pytest.mark.integration
def test_probe_guest_runs_under_tcg() -> None:
    ok, detail = accel.boot_probe("tcg")
    assert ok, detail


@pytest.mark.integration
def test_probe_reports_a_choice_with_a_reason() -> None:
    chosen = accel.probe()
    assert chosen.name in {"kvm", "tcg"}
    assert chosen.reason
