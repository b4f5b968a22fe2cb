"""The VM disk image's pure decisions: digest, identifiers, layout, sfdisk input, boot entry, sizes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from nestlab.runtime.proc import Result
from nestlab.substrate.libvirt import image
from nestlab.substrate.local.recipe import load_recipe

NODE = "a" * 64
VM = "b" * 64
MIB = 1024 * 1024


def test_digest_changes_with_either_recipe() -> None:
    base = image.image_digest(NODE, VM)
    assert base == image.image_digest(NODE, VM)
    assert base != image.image_digest("c" * 64, VM)
    assert base != image.image_digest(NODE, "c" * 64)


def test_ids_are_reproducible_valid_and_distinct() -> None:
    ids = image.DiskIds.from_digest(NODE)
    assert ids == image.DiskIds.from_digest(NODE)
    uuids = [ids.disk, ids.esp_part, ids.root_part, ids.root_fs]
    assert len(set(uuids)) == 4
    for text in uuids:
        assert uuid.UUID(text).version == 4
    assert len(ids.esp_volume_id) == 8
    int(ids.esp_volume_id, 16)
    assert image.DiskIds.from_digest(VM).root_fs != ids.root_fs


def test_layout_aligns_partitions_and_leaves_room_for_backup_gpt() -> None:
    parts = image.layout(esp_bytes=70 * MIB + 5, root_bytes=900 * MIB + 1)
    assert parts.esp_offset == MIB
    assert parts.esp_bytes == 71 * MIB
    assert parts.root_offset == parts.esp_offset + parts.esp_bytes
    assert parts.root_bytes == 901 * MIB
    assert parts.total_bytes == parts.root_offset + parts.root_bytes + MIB
    assert parts.root_offset % MIB == 0


def test_sfdisk_script_names_both_partitions_in_sectors() -> None:
    ids = image.DiskIds.from_digest(NODE)
    parts = image.layout(64 * MIB, 100 * MIB)
    lines = image.sfdisk_script(parts, ids).splitlines()
    assert lines[0] == "label: gpt"
    assert lines[1] == f"label-id: {ids.disk}"
    assert lines[2].startswith(f"start=2048, size={64 * 2048}, type={image.ESP_TYPE}, uuid={ids.esp_part}")
    assert lines[3].startswith(f"start={65 * 2048}, size={100 * 2048}, type={image.ROOT_TYPE}")


def test_boot_entry_and_fstab_name_the_root_by_uuid() -> None:
    ids = image.DiskIds.from_digest(NODE)
    entry = image.boot_entry(ids)
    assert f"options root=UUID={ids.root_fs} rw" in entry
    assert "console=ttyS0" in entry
    assert f"linux /{image.ESP_KERNEL}\n" in entry
    assert f"initrd /{image.ESP_INITRD}\n" in entry
    assert f"UUID={ids.root_fs} / ext4" in image.fstab(ids)
    assert "default nestlab.conf" in image.loader_conf()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(0, image.ESP_MIN), (10 * MIB, image.ESP_MIN), (40 * MIB + 1, 81 * MIB)],
)
def test_esp_size_fits_two_kernels(payload: int, expected: int) -> None:
    assert image.esp_size(payload) == expected


def test_root_size_counts_blocks_and_adds_free_space(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"y" * 5000)
    used = image.tree_bytes(tmp_path)
    directory = image.align((tmp_path / "d").lstat().st_size, 4096)  # depends on the file system
    assert used == (4096 + 4096) + (directory + 4096) + (8192 + 4096)
    assert image.root_size(used) == image.align(used + used // 5 + image.ROOT_FREE)


def test_place_writes_at_offset_and_keeps_holes(tmp_path: Path) -> None:
    source = tmp_path / "part"
    source.write_bytes(b"\0" * image.CHUNK + b"data")
    target = tmp_path / "disk"
    target.write_bytes(b"\xff" * (3 * image.CHUNK))
    image.place(source, target, offset=100)
    written = target.read_bytes()
    assert written[:100] == b"\xff" * 100
    assert written[100 : 100 + image.CHUNK] == b"\xff" * image.CHUNK  # the zero chunk was skipped
    assert written[100 + image.CHUNK : 104 + image.CHUNK] == b"data"


def test_link_points_at_the_image_relatively(tmp_path: Path) -> None:
    first = tmp_path / "vm-1.qcow2"
    second = tmp_path / "vm-2.qcow2"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    name = tmp_path / image.LINK_NAME
    image.link(first, name)
    image.link(second, name)
    assert name.readlink() == Path("vm-2.qcow2")
    assert name.read_bytes() == b"2"


def test_boot_files_refuses_a_tree_without_initramfs(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz-6.1.0-1-amd64").write_bytes(b"k")
    with pytest.raises(image.VmImageError, match="no initramfs"):
        image.boot_files(tmp_path)
    (boot / "initrd.img-6.1.0-1-amd64").write_bytes(b"i")
    assert image.boot_files(tmp_path)[1].name == "initrd.img-6.1.0-1-amd64"


def test_cached_image_is_used_without_running_anything(tmp_path: Path) -> None:
    node = load_recipe()
    vm = load_recipe(image.default_vm_recipe_dir())
    digest = image.image_digest(node.digest, vm.digest)
    image.vm_image_path(digest, tmp_path).write_bytes(b"qcow2")

    def refuse(argv: object, **_kwargs: object) -> Result:
        raise AssertionError(f"nothing should run, got {argv}")

    found = image.ensure_vm_image(node, vm, cache=tmp_path, run=refuse)
    assert found.digest == digest
    assert (tmp_path / image.LINK_NAME).resolve() == found.path.resolve()


def test_vm_recipe_installs_a_kernel_boot_loader_and_cloud_init() -> None:
    vm = load_recipe(image.default_vm_recipe_dir())
    assert {"linux-image-amd64", "systemd-boot-efi", "cloud-init"} <= set(vm.packages)
    assert ("disable", "nestlab-swtpm.service") in vm.services
