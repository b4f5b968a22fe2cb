"""The launch gate with a real signed Debian kernel and a real swtpm; concurrent launches stay consistent."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from nestlab.trust import kernelsign, keys, measure
from nestlab.trust.errors import SignatureError
from nestlab.trust.launch import admit_pod_launch

from .conftest import BootedHost
from .kernel_image import cloud_kernel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signed_kernel(tmp_path_factory: pytest.TempPathFactory) -> tuple[keys.LabKeys, Path]:
    lab = keys.ensure_lab_keys(tmp_path_factory.mktemp("keys") / "lab", "demo")
    return lab, kernelsign.sign_kernel(lab, cloud_kernel(), tmp_path_factory.mktemp("k") / "vmlinuz")


def test_signed_kernel_is_measured_and_attests(
    booted: BootedHost, signed_kernel: tuple[keys.LabKeys, Path]
) -> None:
    lab, kernel = signed_kernel
    launch = replace(booted.pod("demo/web"), kernel=kernel)
    events = admit_pod_launch(lab.kernel_cert, launch, booted.measurer)
    assert events[0].data["sha256"] == measure.file_digest(kernel)
    policy = replace(booted.policy, kernels=frozenset({measure.file_digest(kernel)}))
    verdict = booted.attest(policy)
    assert verdict.passed, verdict.reasons


def test_tampered_kernel_is_refused_before_anything_is_measured(
    booted: BootedHost, signed_kernel: tuple[keys.LabKeys, Path], tmp_path: Path
) -> None:
    lab, kernel = signed_kernel
    content = bytearray(kernel.read_bytes())
    content[len(content) // 3] ^= 0x04
    (tmp_path / "vmlinuz").write_bytes(bytes(content))
    before = booted.swtpm.tpm().pcr_read([11])
    with pytest.raises(SignatureError, match="refusing kernel"):
        admit_pod_launch(
            lab.kernel_cert, replace(booted.pod("evil/web"), kernel=tmp_path / "vmlinuz"), booted.measurer
        )
    assert booted.swtpm.tpm().pcr_read([11]) == before
    assert [event.type for event in booted.measurer.read().events] == ["package", "config"]


def test_concurrent_launches_keep_log_and_tpm_in_step(booted: BootedHost) -> None:
    errors: list[BaseException] = []

    def launcher(prefix: str) -> None:
        # each thread its own Measurer, as two agent workers would have: only the file lock serializes them
        worker = measure.Measurer(booted.swtpm.tpm(), booted.measurer.log_path)
        try:
            for index in range(4):
                worker.measure_pod_launch(booted.pod(f"{prefix}/pod-{index}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=launcher, args=(name,)) for name in ("team-a", "team-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(booted.measurer.read().events) == 2 + 2 * 4 * 3
    verdict = booted.attest()
    assert verdict.passed, verdict.reasons
