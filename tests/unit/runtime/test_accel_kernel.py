"""The second probe stage: KVM counts only when it boots the real pod kernel to pod-init."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import accel
from nestlab.runtime.proc import ProcessError, Result
from tests.fakes import FakeRunner


def scripted_qemu(kernel_outcome: Result | Exception) -> FakeRunner:
    """Answers the firmware probe, then the kernel probe with ``kernel_outcome``."""

    def answer(argv: tuple[str, ...], _cwd: Path | None) -> Result:
        if "-bios" in argv:
            return Result(argv, accel.PROBE_EXIT_STATUS, "K", "")
        if isinstance(kernel_outcome, Exception):
            raise kernel_outcome
        return kernel_outcome

    return FakeRunner(answer)


@pytest.fixture
def kvm_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.delenv("NESTLAB_ACCEL", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu vmx lm\n")
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    return {"cpuinfo": cpuinfo, "device": device}


def test_kvm_when_the_pod_kernel_reaches_pod_init(kvm_host: dict[str, Path]) -> None:
    booted = Result((), 0, "pod-init: no virtio disk with serial nestlab-pod\n", "")
    qemu = scripted_qemu(booted)
    chosen = accel.probe(run=qemu, pod_kernel=(Path("/k/vmlinux"), Path("/k/init.cpio")), **kvm_host)
    assert chosen == accel.Accel("kvm", "pod kernel booted to pod-init under kvm")
    kernel_argv = list(qemu.calls[1])
    assert kernel_argv[kernel_argv.index("-kernel") + 1] == "/k/vmlinux"
    assert kernel_argv[kernel_argv.index("-accel") + 1] == "kvm"


def test_tcg_when_the_pod_kernel_hangs_under_kvm(kvm_host: dict[str, Path]) -> None:
    qemu = scripted_qemu(ProcessError("qemu-system-x86_64 ... did not finish within 30s"))
    chosen = accel.probe(run=qemu, pod_kernel=(Path("/k/vmlinux"), Path("/k/init.cpio")), **kvm_host)
    assert chosen.name == "tcg"
    assert "did not finish" in chosen.reason


def test_tcg_when_qemu_aborts_on_the_real_kernel(kvm_host: dict[str, Path]) -> None:
    aborted = Result((), -6, "", "error: failed to set MSR 0x10a to 0x69")
    chosen = accel.probe(run=scripted_qemu(aborted), pod_kernel=(Path("/k/v"), Path("/k/i")), **kvm_host)
    assert chosen.name == "tcg"
    assert "MSR 0x10a" in chosen.reason


def test_without_a_pod_kernel_only_the_firmware_probe_runs(kvm_host: dict[str, Path]) -> None:
    qemu = scripted_qemu(RuntimeError("must not boot a kernel"))
    assert accel.probe(run=qemu, **kvm_host).name == "kvm"
    assert len(qemu.calls) == 1
