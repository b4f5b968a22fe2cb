"""The kernel probe stage boots the real pod kernel and pod-init; under TCG it must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import accel, pod

pytestmark = pytest.mark.integration


def test_pod_kernel_probe_passes_under_tcg(boot_files: pod.BootFiles) -> None:
    ok, detail = accel.kernel_probe("tcg", boot_files.kernel, boot_files.initrd, timeout=180.0)
    assert ok, detail


def test_pod_kernel_probe_fails_on_a_kernel_that_is_not_one(
    boot_files: pod.BootFiles, tmp_path: Path
) -> None:
    bogus = tmp_path / "vmlinux"
    bogus.write_bytes(b"not a kernel")
    ok, detail = accel.kernel_probe("tcg", bogus, boot_files.initrd, timeout=60.0)
    assert not ok
    assert "exited" in detail
