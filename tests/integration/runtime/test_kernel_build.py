"""The cached pod kernel is what its fragments ask for, and QEMU can enter it through PVH."""

from __future__ import annotations

import pytest

from nestlab.runtime import kconfig, kernel, pod, proc

pytestmark = pytest.mark.integration

XEN_ELFNOTE_PHYS32_ENTRY = "0x00000012"  # the PVH entry point note QEMU looks for in a vmlinux


def test_cached_kernel_config_satisfies_every_fragment(boot_files: pod.BootFiles) -> None:
    built = kernel.build()
    assert built.vmlinux == boot_files.kernel
    requirements = kconfig.merge_fragments(kernel.read_fragments())
    assert kconfig.check(requirements, built.config.read_text()) == []


def test_vmlinux_carries_the_pvh_entry_note(boot_files: pod.BootFiles) -> None:
    notes = proc.run(["readelf", "--notes", str(boot_files.kernel)], timeout=60).stdout
    xen = [line for line in notes.splitlines() if line.strip().startswith("Xen")]
    assert any(XEN_ELFNOTE_PHYS32_ENTRY in line for line in xen), notes
