"""Build the node image once and share it: a Debian 12 tree that every local node overlays.

Building takes minutes (debootstrap, then apt inside the tree), so the tree is cached under
``<cache>/images/node-<sha256 of the recipe>/`` and rebuilt only when the recipe in images/node/
changes. It is built in a temporary directory beside its final place and renamed there in one
step, so a crash mid-build never leaves a half image that a lab would boot from. The build is one
progress step of :data:`STAGES` stages (debootstrap, package lists, packages, files and services).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.progress import as_progress, reason
from nestlab.runtime import proc
from nestlab.substrate.local.errors import ImageError
from nestlab.substrate.local.mirror import check_mirror, default_mirror
from nestlab.substrate.local.recipe import Recipe, load_recipe

SUITE = "bookworm"
DEBOOTSTRAP_TIMEOUT_S = 1800.0  # a cold debootstrap over a slow mirror; minutes on a good one
APT_TIMEOUT_S = 2400.0  # ~300 packages (QEMU, etcd, nginx...) downloaded and unpacked
APT_UPDATE_TIMEOUT_S = 600.0  # package lists of bookworm main: tens of MB
SHORT_TIMEOUT_S = 120.0  # systemctl enable/disable in the tree
MANIFEST = "manifest.json"
NICE = ("nice", "-n", "10")  # the build shares two cores with running labs and other builds
STAGES = 4  # build_tree's progress messages: debootstrap, package lists, packages, files and services

Progress = Callable[[str], None]


@dataclass(frozen=True)
class NodeImage:
    """A built node image in the cache."""

    root: Path
    """The read-only tree nodes use as their overlay's lower layer."""
    digest: str
    """sha256 of the recipe it was built from."""


def image_cache() -> Path:
    """Where node images live: NESTLAB_IMAGE_CACHE, or <nestlab cache>/images."""
    configured = os.environ.get("NESTLAB_IMAGE_CACHE")
    if configured:
        return Path(configured)
    return paths.cache_dir() / "images"


def image_dir(digest: str, cache: Path | None = None) -> Path:
    """The directory of the image built from the recipe with ``digest``."""
    return (cache or image_cache()) / f"node-{digest}"


def cached_image(recipe: Recipe | None = None, cache: Path | None = None) -> NodeImage | None:
    """The image for ``recipe`` when it is already built, else None."""
    chosen = recipe or load_recipe()
    where = image_dir(chosen.digest, cache)
    if (where / MANIFEST).is_file() and (where / "rootfs" / "usr" / "lib" / "systemd").is_dir():
        return NodeImage(root=where / "rootfs", digest=chosen.digest)
    return None


def ensure_image(
    recipe: Recipe | None = None,
    *,
    mirror: str | None = None,
    cache: Path | None = None,
    run: proc.Runner = proc.run,
    progress: Progress = lambda _msg: None,
    check: Callable[[str, str], None] = check_mirror,
) -> NodeImage:
    """The cached image for ``recipe``, building it first when it is missing."""
    chosen = recipe or load_recipe()
    found = cached_image(chosen, cache)
    if found is not None:
        return found
    root_cache = (cache or image_cache()).absolute()  # debootstrap and nspawn need absolute paths
    root_cache.mkdir(parents=True, exist_ok=True)
    # one build per recipe at a time: a second `up` (or the suite's prebuild) waits for the first
    with (root_cache / f"node-{chosen.digest}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = cached_image(chosen, root_cache)
        if found is not None:
            return found
        for stale in root_cache.glob(f".node-{chosen.digest[:12]}-*"):  # a build killed outright
            shutil.rmtree(stale, ignore_errors=True)
        source = mirror or default_mirror()
        check(source, SUITE)
        return _build(chosen, source, root_cache, run, progress)


def _build(chosen: Recipe, source: str, root_cache: Path, run: proc.Runner, progress: Progress) -> NodeImage:
    """Build the image of ``chosen`` into the cache (the caller holds the recipe's lock)."""
    final = image_dir(chosen.digest, root_cache)
    work = Path(tempfile.mkdtemp(prefix=f".node-{chosen.digest[:12]}-", dir=root_cache))
    step = as_progress(progress).step(
        f"node image {chosen.digest[:12]} (built once per recipe)", total=STAGES, unit="stages"
    )
    stages = 0

    def stage(message: str) -> None:
        nonlocal stages
        step.update(completed=stages, detail=message)
        stages += 1

    try:
        started = time.monotonic()
        build_tree(chosen, work / "rootfs", mirror=source, debs=root_cache / "debs", run=run, progress=stage)
        manifest = {
            "digest": chosen.digest,
            "suite": SUITE,
            "mirror": source,
            "packages": list(chosen.packages),
            "buildSeconds": round(time.monotonic() - started, 1),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        work.chmod(0o755)
        try:
            work.rename(final)
        except OSError:
            if cached_image(chosen, root_cache) is None:  # not a concurrent build that won
                raise
    except BaseException as exc:
        step.failed(reason(exc))
        raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    step.done(f"{len(chosen.packages)} packages")
    progress(f"node image {chosen.digest[:12]} ready")
    built = cached_image(chosen, root_cache)
    if built is None:
        raise ImageError(f"the node image build finished but {final} is incomplete; delete it and retry")
    return built


def build_tree(
    recipe: Recipe, rootfs: Path, *, mirror: str, debs: Path, run: proc.Runner, progress: Progress
) -> None:
    """debootstrap ``rootfs``, install the recipe's packages, apply its files and services."""
    debs.mkdir(parents=True, exist_ok=True)
    progress(f"debootstrap {SUITE} from {mirror}")  # each message starts one of the STAGES
    run(
        [*NICE, "debootstrap", "--variant=minbase", f"--cache-dir={debs}", SUITE, str(rootfs), mirror],
        timeout=DEBOOTSTRAP_TIMEOUT_S,
    )
    policy = rootfs / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# no service starts while the image is built\nexit 101\n", encoding="ascii")
    policy.chmod(0o755)
    progress("apt-get update in the tree")
    # A snapshot mirror (NESTLAB_DEBIAN_MIRROR) serves Release files past their Valid-Until date.
    update = ["apt-get", "-o", "Acquire::Check-Valid-Until=false", "update", "-q"]
    in_tree(run, rootfs, debs, update, APT_UPDATE_TIMEOUT_S)
    progress(f"installing {len(recipe.packages)} packages")
    in_tree(
        run,
        rootfs,
        debs,
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *recipe.packages],
        APT_TIMEOUT_S,
    )
    progress("applying files and services")
    copy_files(recipe.files, rootfs)
    for action, unit in recipe.services:
        in_tree(run, rootfs, debs, ["systemctl", action, unit], SHORT_TIMEOUT_S)
    policy.unlink()
    scrub(rootfs)


def in_tree(run: proc.Runner, rootfs: Path, debs: Path, argv: list[str], timeout: float) -> None:
    """Run ``argv`` inside the tree (not booted), with the shared .deb cache bound in."""
    run(
        [
            *NICE, "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", f"--directory={rootfs}",
            f"--bind={debs}:/var/cache/apt/archives", "--resolv-conf=copy-host",
            "--setenv=DEBIAN_FRONTEND=noninteractive", "--", *argv,
        ],
        timeout=timeout,
    )  # fmt: skip


def copy_files(files: Path, rootfs: Path) -> None:
    """Copy the recipe's tree of config files over the image (directories 0755, files 0644)."""
    for source in sorted(files.rglob("*")):
        target = rootfs / source.relative_to(files)
        if source.is_dir():
            target.mkdir(mode=0o755, exist_ok=True)
        else:
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(0o755 if os.access(source, os.X_OK) else 0o644)


def scrub(rootfs: Path) -> None:
    """Remove what must differ per node (host keys, machine-id) and what only the build needed."""
    for key in (rootfs / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc" / "machine-id").write_text("", encoding="ascii")
    dbus_id = rootfs / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        dbus_id.unlink()
    lists = rootfs / "var" / "lib" / "apt" / "lists"
    for entry in lists.glob("*"):
        if entry.is_file():
            entry.unlink()
