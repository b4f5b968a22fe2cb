"""kbuild output lines -> compiled objects, and the object-count estimate kept beside the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import kbuild

# Lines as `make O=... ARCH=x86_64 vmlinux` (not -s) prints them for the pod kernel.
RECORDED = """\
make[1]: Entering directory '/cache/kernels/k.work'
  SYNC    include/config/auto.conf.cmd
  HOSTCC  scripts/basic/fixdep
  WRAP    arch/x86/include/generated/uapi/asm/bpf_perf_event.h
  CC      scripts/mod/empty.o
  CC      init/main.o
  AS      arch/x86/entry/entry_64.o
  CC [M]  drivers/virtio/virtio_balloon.o
  AR      init/built-in.a
  LD      vmlinux.o
  CC      .vmlinux.export.o
  LD      vmlinux
make[1]: Leaving directory '/cache/kernels/k.work'
"""


def test_only_compile_lines_count() -> None:
    objects = [o for line in RECORDED.splitlines() if (o := kbuild.compiled_object(line)) is not None]
    assert objects == [
        "scripts/mod/empty.o",
        "init/main.o",
        "arch/x86/entry/entry_64.o",
        "drivers/virtio/virtio_balloon.o",
        ".vmlinux.export.o",
    ]


@pytest.mark.parametrize("line", ["CC init/main.o", "  LD      vmlinux.o", "  CC      init/main.c", ""])
def test_other_lines_are_not_objects(line: str) -> None:
    assert kbuild.compiled_object(line) is None


def test_estimate_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "kernels" / kbuild.ESTIMATE_FILE
    assert kbuild.read_estimate(path) is None
    kbuild.write_estimate(path, 1532)
    assert kbuild.read_estimate(path) == 1532
    kbuild.write_estimate(path, 0)  # a build that compiled nothing says nothing about the next
    assert kbuild.read_estimate(path) == 1532
    path.write_text("garbage\n")
    assert kbuild.read_estimate(path) is None
