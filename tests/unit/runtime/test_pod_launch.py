"""pod.launch refuses a description whose images were not staged, before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import pod
from nestlab.runtime.accel import Accel
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription, PodDescriptionError


def test_missing_image_disk_is_named(tmp_path: Path) -> None:
    description = PodDescription(
        "demo", (Container(ContainerName("web"), DiskSerial("img-web"), ("httpd",)),)
    )
    with pytest.raises(PodDescriptionError, match="pod demo: no image disk for img-web"):
        pod.launch(
            description,
            {DiskSerial("img-other"): tmp_path / "other.erofs"},
            tmp_path / "work",
            pod.BootFiles(tmp_path / "vmlinux", tmp_path / "initramfs.cpio"),
            Accel("tcg", "test"),
        )
    assert not (tmp_path / "work").exists()
