"""The launch gate with fakes: sbverify's answer, the PE reader and the TPM are substitutes here (the
integration tests run the real sbverify, swtpm and QEMU)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from nestlab.agent import kernelgate
from nestlab.agent.kernelgate import KernelVerificationFailed, LaunchGate, SignedKernel
from nestlab.runtime import qemu
from nestlab.runtime.accel import Accel
from nestlab.trust import eventlog, pcrs
from nestlab.trust.measure import Measurer
from nestlab.trust.peimage import PeImageError
from tests.fakes import FakeRunner, answering
from tests.unit.agent.test_agent_reconcile import Launches, make_agent, pod, settle, short_tmp

__all__ = ["short_tmp"]  # the fixture, shared with the reconcile tests

SIGNED = b"MZ signed image bytes"
KERNEL = b"\x7fELF the pod kernel"
INITRD = b"070701 the initramfs"


class FakeTpm:
    def __init__(self) -> None:
        self.extends: list[tuple[int, bytes]] = []

    def pcr_extend(self, index: int, digest: bytes) -> None:
        self.extends.append((index, digest))


def installed(tmp_path: Path, initrd: bytes = INITRD) -> SignedKernel:
    (tmp_path / "vmlinux.efi").write_bytes(SIGNED)
    (tmp_path / "initramfs.cpio").write_bytes(initrd)
    (tmp_path / "db.crt").write_text("cert")
    return SignedKernel(tmp_path / "vmlinux.efi", tmp_path / "initramfs.cpio", tmp_path / "db.crt")


def extract(data: bytes) -> tuple[bytes, str]:
    assert data == SIGNED  # the reader sees the very bytes that were verified
    return KERNEL, hashlib.sha256(INITRD).hexdigest()


def test_a_verified_kernel_is_unpacked_into_the_work_dir(tmp_path: Path) -> None:
    runner = answering(0)
    verified = kernelgate.verify_into(installed(tmp_path), tmp_path / "work", runner, extract)
    assert runner.calls == [
        ("sbverify", "--cert", str(tmp_path / "db.crt"), str(tmp_path / "work" / "vmlinux.efi"))
    ]
    assert verified.signed_image.read_bytes() == SIGNED
    assert verified.boot.kernel.read_bytes() == KERNEL
    assert verified.boot.initrd.read_bytes() == INITRD
    assert verified.boot == kernelgate.work_boot(tmp_path / "work")


def test_a_bad_signature_is_refused_naming_the_file_and_sbverify(tmp_path: Path) -> None:
    runner = answering(1, stderr="Signature verification failed")
    with pytest.raises(KernelVerificationFailed) as caught:
        kernelgate.verify_into(installed(tmp_path), tmp_path / "work", runner, extract)
    assert caught.value.reason == "KernelVerificationFailed"
    assert str(tmp_path / "vmlinux.efi") in str(caught.value)
    assert "Signature verification failed" in str(caught.value)
    assert not (tmp_path / "work" / "vmlinux").exists()


def test_a_malformed_image_is_refused(tmp_path: Path) -> None:
    def broken(data: bytes) -> tuple[bytes, str]:
        raise PeImageError("no .linux section")

    with pytest.raises(KernelVerificationFailed, match=r"no \.linux section"):
        kernelgate.verify_into(installed(tmp_path), tmp_path / "work", answering(0), broken)


def test_an_initramfs_other_than_the_signed_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KernelVerificationFailed, match=r"initramfs .* was changed") as caught:
        kernelgate.verify_into(installed(tmp_path, b"changed"), tmp_path / "work", answering(0), extract)
    assert hashlib.sha256(b"changed").hexdigest() in str(caught.value)


def test_the_gate_measures_the_signed_image_initramfs_and_full_cmdline(tmp_path: Path) -> None:
    tpm = FakeTpm()
    measurer = Measurer(tpm, tmp_path / "run" / "log.json")
    gate = LaunchGate(installed(tmp_path), measurer, Accel("kvm", "test"), answering(0), extract)
    events = gate("ns/web", tmp_path / "work", ("nestlab.ip=198.18.0.2/28",))
    assert [e.type for e in events] == ["pod-kernel", "pod-initramfs", "pod-cmdline"]
    assert events[0].data["sha256"] == hashlib.sha256(SIGNED).hexdigest()
    assert events[1].data["sha256"] == hashlib.sha256(INITRD).hexdigest()
    assert events[2].data["cmdline"] == " ".join((*qemu.BASE_CMDLINE, "nestlab.ip=198.18.0.2/28"))
    assert all(e.data["pod"] == "ns/web" for e in events)
    assert [index for index, _ in tpm.extends] == [pcrs.PCR_PODS] * 3
    assert eventlog.replay(measurer.read().events)[pcrs.PCR_PODS] == eventlog.replay(events)[pcrs.PCR_PODS]


def test_a_refused_kernel_measures_nothing(tmp_path: Path) -> None:
    tpm = FakeTpm()
    gate = LaunchGate(
        installed(tmp_path), Measurer(tpm, tmp_path / "log.json"), Accel("kvm", "t"), answering(1)
    )
    with pytest.raises(KernelVerificationFailed):
        gate("ns/web", tmp_path / "work", ())
    assert tpm.extends == []


class Gate:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, Path, tuple[str, ...]]] = []
        self.error = error

    def __call__(self, pod_name: str, workdir: Path, extra: tuple[str, ...]) -> None:
        self.calls.append((pod_name, workdir, extra))
        if self.error is not None:
            raise self.error


def test_the_agent_fails_the_pod_and_starts_no_vm_when_the_gate_refuses(short_tmp: Path) -> None:
    launches = Launches([])
    agent, client = make_agent(short_tmp, launches)
    agent.gate = Gate(KernelVerificationFailed("pod kernel /x/vmlinux.efi is not signed by /y/db.crt"))

    async def scenario() -> None:
        await agent.sync("ADDED", pod())
        await settle(agent)

    asyncio.run(scenario())
    assert launches.launched == []
    final = client.statuses[-1]
    assert final["phase"] == "Failed"
    assert final["reason"] == "KernelVerificationFailed"
    warnings = [e for e in client.created if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["KernelVerificationFailed"]
    assert "/x/vmlinux.efi" in warnings[0]["message"]


def test_the_agent_runs_the_gate_before_every_launch(short_tmp: Path) -> None:
    from nestlab.runtime import control

    launches = Launches([control.PodDone("web", "Succeeded", None)])
    agent, _client = make_agent(short_tmp, launches)
    gate = Gate()
    agent.gate = gate

    async def scenario() -> None:
        await agent.sync("ADDED", pod())
        await settle(agent)

    asyncio.run(scenario())
    assert gate.calls == [("ns/web", short_tmp / "state" / "pods" / "u-1" / "vm", ())]
    assert len(launches.launched) == 1


def test_fake_runner_records_sbverify_only(tmp_path: Path) -> None:
    runner = FakeRunner()
    kernelgate.verify_into(installed(tmp_path), tmp_path / "w", runner, extract)
    assert runner.tools() == ["sbverify"]


def test_a_refused_kernel_is_not_even_probe_booted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nestlab.agent import main as agent_main

    probed: list[object] = []
    monkeypatch.setattr(agent_main.accel, "probe", lambda **kw: probed.append(kw))
    monkeypatch.setattr(agent_main.kernelgate, "verify_into", lambda *a: extract_fails())
    chosen = agent_main.choose_accel("auto", None, installed(tmp_path), tmp_path / "probe")
    assert chosen.name == "tcg"
    assert "failed verification" in chosen.reason
    assert probed == []


def extract_fails() -> kernelgate.VerifiedBoot:
    raise KernelVerificationFailed("pod kernel /x is not signed")
