"""The node image as a UEFI disk: what the libvirt substrate's domains boot from.

The local substrate boots the node tree (images/node/) as an nspawn overlay; a VM needs a disk. To
keep one recipe, the VM image starts from that same cached tree: a copy of it gets what only a VM
needs (images/vm/: Debian's kernel, an initramfs, systemd-boot, cloud-init), then becomes a
GPT disk with an EFI system partition (FAT: systemd-boot as the removable-media loader, kernel,
initrd) and an ext4 root, built from files alone (mkfs.vfat + mtools, mkfs.ext4 -d, sfdisk,
qemu-img): no loop device, no mount, no VM. Every choice about the disk (layout, identifiers, boot
entry) is a pure function at the top of this module, unit-tested; the steps below only perform them.

The result is cached as ``<image cache>/vm-<digest>.qcow2`` (digest over both recipes and the disk
layout), built beside its final place and renamed there; ``nestlab-node.qcow2`` in the same
directory is a symlink to the newest one, the path the Pulumi stacks name.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.runtime import proc
from nestlab.substrate.local import image as node_image
from nestlab.substrate.local.errors import ImageError
from nestlab.substrate.local.recipe import Recipe, load_recipe

LINK_NAME = "nestlab-node.qcow2"  # what stacks/Pulumi.*.yaml point at, under the image cache
COPY_TIMEOUT_S = 900.0  # cp -a of a ~650 MB tree on a busy disk
MKFS_TIMEOUT_S = 900.0  # mkfs.ext4 -d writes the whole tree (~1 GB) into the file system
TOOL_TIMEOUT_S = 120.0  # sfdisk, mkfs.vfat, mtools: seconds at most
CONVERT_TIMEOUT_S = 900.0  # qemu-img convert of a ~1.5 GB sparse raw disk
CHUNK = 1024 * 1024  # copy granularity when placing partitions (zero chunks stay holes)


LAYOUT_VERSION = "1"  # bump when the disk layout or boot setup below changes: it renames the image
SECTOR = 512
MIB = 1024 * 1024
ALIGN = MIB  # partitions start on 1 MiB boundaries, what every partitioning tool does by default
GPT_TAIL = MIB  # room for the backup GPT (33 sectors) at the end, kept aligned
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # EFI System Partition
ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"  # Linux root (x86-64), Discoverable Partitions Spec
ESP_LABEL = "ESP"
ROOT_LABEL = "nestlab-root"
ESP_KERNEL = "vmlinuz"
ESP_INITRD = "initrd.img"
ESP_MIN = 64 * MIB  # FAT32 wants >= ~33 MiB; 64 MiB keeps cluster counts unremarkable
ROOT_FREE = 512 * MIB  # free space in the image itself; cloud-init grows it to the node's disk
# Serial console last: it becomes /dev/console, so `virsh console` and the test's log see the boot.
KERNEL_OPTIONS = "rw console=tty0 console=ttyS0,115200n8"


@dataclass(frozen=True)
class DiskIds:
    """Identifiers of the disk and its parts, derived from the image digest (same recipe, same ids)."""

    disk: str
    """GPT disk GUID."""
    esp_part: str
    """GPT partition GUID of the EFI system partition."""
    root_part: str
    """GPT partition GUID of the root partition."""
    root_fs: str
    """ext4 file system UUID, what the kernel command line and fstab name."""
    esp_volume_id: str
    """FAT volume serial (8 hex digits)."""

    @classmethod
    def from_digest(cls, digest: str) -> DiskIds:
        """Version-4-shaped UUIDs from sha256(digest, role): reproducible, distinct per role."""

        def derived(role: str) -> str:
            raw = hashlib.sha256(f"{digest}/{role}".encode()).digest()[:16]
            return str(uuid.UUID(bytes=raw, version=4))

        serial = hashlib.sha256(f"{digest}/esp-serial".encode()).hexdigest()[:8]
        return cls(derived("disk"), derived("esp"), derived("root"), derived("root-fs"), serial)


@dataclass(frozen=True)
class DiskLayout:
    """Byte offsets and sizes of the two partitions in the raw disk."""

    esp_offset: int
    esp_bytes: int
    root_offset: int
    root_bytes: int
    total_bytes: int


def align(size: int, unit: int = ALIGN) -> int:
    """``size`` rounded up to a multiple of ``unit``."""
    return -(-size // unit) * unit


def image_digest(node_digest: str, vm_digest: str) -> str:
    """The VM image's cache key: both recipes plus everything this module decides about the disk."""
    parts = [LAYOUT_VERSION, node_digest, vm_digest, KERNEL_OPTIONS, str(ESP_MIN), str(ROOT_FREE)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def layout(esp_bytes: int, root_bytes: int) -> DiskLayout:
    """ESP at 1 MiB, root right after it, both aligned, backup GPT room at the end."""
    esp_offset = ALIGN
    root_offset = esp_offset + align(esp_bytes)
    total = root_offset + align(root_bytes) + GPT_TAIL
    return DiskLayout(esp_offset, align(esp_bytes), root_offset, align(root_bytes), total)


def sfdisk_script(disk: DiskLayout, ids: DiskIds) -> str:
    """The sfdisk input that writes this GPT (sizes in sectors)."""
    return (
        "label: gpt\n"
        f"label-id: {ids.disk}\n"
        f"start={disk.esp_offset // SECTOR}, size={disk.esp_bytes // SECTOR}, type={ESP_TYPE}, "
        f'uuid={ids.esp_part}, name="{ESP_LABEL}"\n'
        f"start={disk.root_offset // SECTOR}, size={disk.root_bytes // SECTOR}, type={ROOT_TYPE}, "
        f'uuid={ids.root_part}, name="{ROOT_LABEL}"\n'
    )


def esp_size(payload: int) -> int:
    """Room for the loader, kernel and initrd twice over (a second kernel fits), at least ESP_MIN."""
    return max(ESP_MIN, align(2 * payload))


def tree_bytes(rootfs: Path) -> int:
    """Space the tree takes in 4 KiB blocks, plus one block per entry for inodes and directories."""
    total = 0
    for directory, dirs, files in os.walk(rootfs):
        for name in (*dirs, *files):
            total += align(os.lstat(os.path.join(directory, name)).st_size, 4096) + 4096
    return total


def root_size(used: int) -> int:
    """The ext4 size for a tree of ``used`` bytes: 20% for metadata and the journal, plus ROOT_FREE."""
    return align(used + used // 5 + ROOT_FREE)


def fstab(ids: DiskIds) -> str:
    """The root by file system UUID; the ESP is not mounted (nothing updates the boot loader)."""
    return f"# nestlab VM image\nUUID={ids.root_fs} / ext4 errors=remount-ro 0 1\n"


def loader_conf() -> str:
    """systemd-boot: boot the nestlab entry at once, no menu, no command-line editing."""
    return "default nestlab.conf\ntimeout 0\neditor no\n"


def boot_entry(ids: DiskIds) -> str:
    """The Boot Loader Specification entry for the kernel and initrd on the ESP."""
    return (
        "title nestlab node\n"
        f"linux /{ESP_KERNEL}\n"
        f"initrd /{ESP_INITRD}\n"
        f"options root=UUID={ids.root_fs} {KERNEL_OPTIONS}\n"
    )


class VmImageError(ImageError):
    """The VM disk image cannot be built (tree, kernel, partitioning or conversion failed)."""


@dataclass(frozen=True)
class VmImage:
    """A built VM disk image in the cache."""

    path: Path
    """The qcow2 file (vm-<digest>.qcow2); domains use it as the backing file of their overlay."""
    digest: str
    """sha256 over the node recipe, the VM recipe and the disk layout."""


def default_vm_recipe_dir() -> Path:
    """images/vm/ in the checkout nestlab runs from."""
    return paths.repo_root() / "images" / "vm"


def vm_image_path(digest: str, cache: Path | None = None) -> Path:
    """Where the image with ``digest`` lives."""
    return (cache or node_image.image_cache()) / f"vm-{digest}.qcow2"


def cached_vm_image(node: Recipe, vm: Recipe, cache: Path | None = None) -> VmImage | None:
    """The image for these recipes when it is already built, else None."""
    digest = image_digest(node.digest, vm.digest)
    where = vm_image_path(digest, cache)
    return VmImage(where, digest) if where.is_file() else None


def ensure_vm_image(
    node: Recipe | None = None,
    vm: Recipe | None = None,
    *,
    mirror: str | None = None,
    cache: Path | None = None,
    run: proc.Runner = proc.run,
    progress: node_image.Progress = lambda _msg: None,
) -> VmImage:
    """The cached VM image, building the node tree and then the disk first when missing."""
    node_recipe = node or load_recipe()
    vm_recipe = vm or load_recipe(default_vm_recipe_dir())
    root_cache = (cache or node_image.image_cache()).absolute()
    found = cached_vm_image(node_recipe, vm_recipe, root_cache)
    if found is None:
        tree = node_image.ensure_image(
            node_recipe, mirror=mirror, cache=root_cache, run=run, progress=progress
        )
        digest = image_digest(node_recipe.digest, vm_recipe.digest)
        # one build per digest at a time: a second caller (the suite's prebuild) waits for the first
        with (root_cache / f"vm-{digest}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = cached_vm_image(node_recipe, vm_recipe, root_cache)
            if found is None:
                found = _build(tree.root, vm_recipe, root_cache, digest, run=run, progress=progress)
    link(found.path, root_cache / LINK_NAME)
    return found


def _build(
    tree: Path,
    vm_recipe: Recipe,
    root_cache: Path,
    digest: str,
    *,
    run: proc.Runner,
    progress: node_image.Progress,
) -> VmImage:
    """Build the disk beside its final place and rename it there (the caller holds the lock)."""
    work = Path(tempfile.mkdtemp(prefix=f".vm-{digest[:12]}-", dir=root_cache))
    try:
        built = build_disk(
            tree, vm_recipe, work, digest, debs=root_cache / "debs", run=run, progress=progress
        )
        built.chmod(0o644)
        built.rename(vm_image_path(digest, root_cache))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(f"VM image {digest[:12]} ready")
    return VmImage(vm_image_path(digest, root_cache), digest)


def link(target: Path, name: Path) -> None:
    """Point ``name`` at ``target`` (relative symlink), replacing what was there in one step."""
    temporary = name.with_name(f".{name.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target.name)
    temporary.replace(name)


def build_disk(
    tree: Path,
    vm: Recipe,
    work: Path,
    digest: str,
    *,
    debs: Path,
    run: proc.Runner,
    progress: node_image.Progress,
) -> Path:
    """Copy the node tree, make it bootable, and assemble the qcow2 in ``work``; returns its path."""
    ids = DiskIds.from_digest(digest)
    rootfs = work / "rootfs"
    progress("copying the node tree")
    run(["cp", "-a", "--reflink=auto", str(tree), str(rootfs)], timeout=COPY_TIMEOUT_S)
    prepare_tree(rootfs, vm, ids, debs=debs, run=run, progress=progress)
    kernel, initrd = boot_files(rootfs)
    progress("building the EFI system partition")
    esp = work / "esp.img"
    make_esp(esp, rootfs, kernel, initrd, ids, run=run)
    progress("building the root file system")
    root = work / "root.img"
    root_bytes = root_size(tree_bytes(rootfs))
    run(
        [*node_image.NICE, "mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-U", ids.root_fs,
         "-d", str(rootfs), str(root), f"{root_bytes // 1024}k"],
        timeout=MKFS_TIMEOUT_S,
    )  # fmt: skip
    progress("assembling the disk")
    parts = layout(esp.stat().st_size, root.stat().st_size)
    raw = work / "disk.raw"
    with raw.open("wb") as out:
        out.truncate(parts.total_bytes)
    run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(raw)], timeout=TOOL_TIMEOUT_S,
        stdin=sfdisk_script(parts, ids))  # fmt: skip
    place(esp, raw, parts.esp_offset)
    place(root, raw, parts.root_offset)
    qcow2 = work / "disk.qcow2"
    run([*node_image.NICE, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
        timeout=CONVERT_TIMEOUT_S)  # fmt: skip
    return qcow2


def prepare_tree(
    rootfs: Path, vm: Recipe, ids: DiskIds, *, debs: Path, run: proc.Runner, progress: node_image.Progress
) -> None:
    """Install the VM recipe's packages and files into the copied tree, then scrub it again."""
    # Files first: the initramfs configuration must be in place when the kernel's postinst builds it.
    node_image.copy_files(vm.files, rootfs)
    policy = rootfs / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# no service starts while the image is built\nexit 101\n", encoding="ascii")
    policy.chmod(0o755)
    progress(f"installing {len(vm.packages)} VM packages (kernel, initramfs, boot loader, cloud-init)")
    update = ["apt-get", "-o", "Acquire::Check-Valid-Until=false", "update", "-q"]
    node_image.in_tree(run, rootfs, debs, update, node_image.APT_UPDATE_TIMEOUT_S)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *vm.packages]
    node_image.in_tree(run, rootfs, debs, install, node_image.APT_TIMEOUT_S)
    for action, unit in vm.services:
        node_image.in_tree(run, rootfs, debs, ["systemctl", action, unit], node_image.SHORT_TIMEOUT_S)
    policy.unlink()
    (rootfs / "etc" / "fstab").write_text(fstab(ids), encoding="ascii")
    (rootfs / "etc" / "hostname").write_text("localhost\n", encoding="ascii")  # cloud-init names it
    node_image.scrub(rootfs)


def boot_files(rootfs: Path) -> tuple[Path, Path]:
    """The one kernel and its initramfs the packages installed under /boot."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise VmImageError(f"expected one kernel in {rootfs}/boot, found {[k.name for k in kernels]}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise VmImageError(
            f"kernel {version} has no initramfs ({initrd} missing): did update-initramfs fail?"
        )
    return kernels[0], initrd


def make_esp(esp: Path, rootfs: Path, kernel: Path, initrd: Path, ids: DiskIds, *, run: proc.Runner) -> None:
    """A FAT file system image holding systemd-boot (as BOOTX64.EFI), its entry, kernel and initrd."""
    loader = rootfs / "usr" / "lib" / "systemd" / "boot" / "efi" / "systemd-bootx64.efi"
    if not loader.is_file():
        raise VmImageError(f"{loader} is missing: is systemd-boot-efi in images/vm/packages.txt?")
    size = esp_size(kernel.stat().st_size + initrd.stat().st_size + loader.stat().st_size)
    run(["mkfs.vfat", "-F", "32", "-n", ESP_LABEL, "-i", ids.esp_volume_id, "-C", str(esp),
         str(size // 1024)], timeout=TOOL_TIMEOUT_S)  # fmt: skip
    texts = esp.parent / "esp-texts"
    texts.mkdir()
    (texts / "loader.conf").write_text(loader_conf(), encoding="ascii")
    (texts / "nestlab.conf").write_text(boot_entry(ids), encoding="ascii")
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    target = f"{esp}"
    for directory in ("::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"):
        run(["mmd", "-i", target, directory], timeout=TOOL_TIMEOUT_S, env=env)
    copies = [
        (loader, "::/EFI/BOOT/BOOTX64.EFI"),
        (kernel, f"::/{ESP_KERNEL}"),
        (initrd, f"::/{ESP_INITRD}"),
        (texts / "loader.conf", "::/loader/loader.conf"),
        (texts / "nestlab.conf", "::/loader/entries/nestlab.conf"),
    ]
    for source, destination in copies:
        run(["mcopy", "-i", target, str(source), destination], timeout=TOOL_TIMEOUT_S, env=env)


def place(source: Path, disk_file: Path, offset: int) -> None:
    """Write ``source`` into ``disk_file`` at ``offset``, leaving its all-zero chunks as holes."""
    zero = bytes(CHUNK)
    with source.open("rb") as src, disk_file.open("r+b") as out:
        position = offset
        while chunk := src.read(CHUNK):
            if chunk != zero[: len(chunk)]:
                out.seek(position)
                out.write(chunk)
            position += len(chunk)


def main() -> int:
    """``python -m nestlab.substrate.libvirt.image``: build (or find) the VM image, print its path."""
    if os.geteuid() != 0:
        print("building the VM image needs root (debootstrap, systemd-nspawn)", file=sys.stderr)
        return 1
    try:
        built = ensure_vm_image(progress=lambda msg: print(f"vm-image: {msg}", file=sys.stderr, flush=True))
    except proc.ProcessError as exc:
        print(f"vm-image: {exc}", file=sys.stderr)
        return 1
    except ImageError as exc:
        print(f"vm-image: {exc}", file=sys.stderr)
        return 1
    print(built.path.with_name(LINK_NAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
