"""Fixtures as a ladder: boot files -> container image -> a launched pod (always stopped after).

The pod kernel and initramfs come from the real content-addressed cache (first build: a few
minutes; then instant). Pods run under TCG: on these machines /dev/kvm is a paravirtual host on
which real kernels hang. Console logs are printed at teardown; pytest shows them when a test fails.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nestlab.runtime import disks, initramfs, kernel, pod
from nestlab.runtime.accel import Accel
from nestlab.runtime.poddesc import DiskSerial, PodDescription

IMAGE = DiskSerial("img-busybox")

LaunchPod = Callable[..., pod.PodVm]


@pytest.fixture(scope="session")
def boot_files() -> pod.BootFiles:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing: run scripts/bootstrap.sh")
    return pod.BootFiles(kernel.build().vmlinux, initramfs.build().initramfs)


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("image")
    return disks.make_image(disks.busybox_root(base / "root"), base / "busybox.erofs")


@pytest.fixture
def launch_pod(boot_files: pod.BootFiles, busybox_image: Path, tmp_path: Path) -> Iterator[LaunchPod]:
    """Launch pods under TCG; every one is stopped (and QEMU reaped) when the test ends."""
    launched: list[pod.PodVm] = []

    def launch(
        description: PodDescription, images: dict[DiskSerial, Path] | None = None, **kwargs: object
    ) -> pod.PodVm:
        vm = pod.launch(
            description,
            images or {IMAGE: busybox_image},
            tmp_path / description.name,
            boot_files,
            Accel("tcg", "integration tests run under TCG"),
            **kwargs,  # type: ignore[arg-type]
        )
        launched.append(vm)
        return vm

    yield launch
    for vm in launched:
        try:
            vm.stop()
        finally:
            if vm.console_log.exists():  # pytest shows captured output only when the test failed
                print(
                    f"--- console of {vm.description.name} ---\n{vm.console_log.read_text(errors='replace')}"
                )
