"""Accelerator choice logic, with a fake process runner standing in for QEMU."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import accel
from tests.fakes import answering


@pytest.fixture(autouse=True)
def _real_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NESTLAB_ACCEL", raising=False)


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu {flags} sse2\n")
    return path


def test_firmware_puts_code_at_reset_vector() -> None:
    image = accel.probe_firmware()
    assert len(image) == 64 * 1024
    assert image[-16:].startswith(bytes([0xB0, 0x4B]))
    assert image[:-16] == bytes(len(image) - 16)


def test_no_virtualization_flag_means_tcg(tmp_path: Path) -> None:
    qemu = answering(accel.PROBE_EXIT_STATUS, "K")
    chosen = accel.probe(run=qemu, cpuinfo=cpuinfo(tmp_path, "lm"), device=tmp_path / "kvm")
    assert chosen == accel.Accel("tcg", "the CPU shows no vmx/svm flag")
    assert qemu.calls == []
    assert chosen.qemu_args() == ["-accel", "tcg,tb-size=64"]


def test_unopenable_device_means_tcg(tmp_path: Path) -> None:
    chosen = accel.probe(run=answering(0, ""), cpuinfo=cpuinfo(tmp_path, "vmx"), device=tmp_path / "kvm")
    assert chosen.name == "tcg"
    assert "cannot be opened" in chosen.reason


def test_kvm_only_when_the_probe_guest_exits_with_its_mark(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    good = accel.probe(
        run=answering(accel.PROBE_EXIT_STATUS, "K"), cpuinfo=cpuinfo(tmp_path, "svm"), device=device
    )
    assert good.name == "kvm"
    assert good.qemu_args() == ["-accel", "kvm"]
    hung = accel.probe(run=answering(-9, ""), cpuinfo=cpuinfo(tmp_path, "svm"), device=device)
    assert hung.name == "tcg"
    assert "unusable" in hung.reason
