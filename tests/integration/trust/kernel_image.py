"""A real PE/EFI-stub kernel for the signing tests: Debian's cloud kernel, fetched once and cached.

``apt-get download`` the unsigned image package the ``linux-image-cloud-amd64`` metapackage points
to, extract only ``/boot/vmlinuz-*``, and keep it under the cache by content hash
(``$NESTLAB_TRUST_CACHE`` or ``nestlab.paths.cache_dir()/trust``), so a re-run does no network I/O.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from nestlab import paths
from nestlab.runtime import proc

METAPACKAGE = "linux-image-cloud-amd64"
_TIMEOUT = 600.0  # seconds: a ~27 MB download from the Debian mirror on a shared machine


def cache_root() -> Path:
    configured = os.environ.get("NESTLAB_TRUST_CACHE")
    return Path(configured) if configured else paths.cache_dir() / "trust"


def image_package() -> str:
    """linux-image-<abi>-cloud-amd64-unsigned: the same kernel without Debian's signature."""
    result = proc.run(["apt-cache", "depends", METAPACKAGE], timeout=60)
    for line in result.stdout.splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if name.startswith("linux-image-") and name != METAPACKAGE:
            return name + "-unsigned"
    raise AssertionError(f"apt-cache depends {METAPACKAGE} names no kernel image: {result.stdout}")


def cloud_kernel() -> Path:
    """Path of a cached, unsigned Debian cloud vmlinuz (downloaded on first use)."""
    root = cache_root() / "kernels"
    root.mkdir(parents=True, exist_ok=True)
    package = image_package()
    pointer = root / f"{package}.sha256"
    if pointer.exists():
        cached = root / f"{pointer.read_text().strip()}.vmlinuz"
        if cached.exists():
            return cached
    with tempfile.TemporaryDirectory(prefix="kernel-", dir=root) as tmp:
        proc.run(["apt-get", "download", package], timeout=_TIMEOUT, cwd=Path(tmp))
        deb = next(Path(tmp).glob("*.deb"))
        proc.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], timeout=_TIMEOUT)
        vmlinuz = next((Path(tmp) / "x" / "boot").glob("vmlinuz-*"))
        digest = hashlib.sha256(vmlinuz.read_bytes()).hexdigest()
        target = root / f"{digest}.vmlinuz"
        shutil.copyfile(vmlinuz, target)
        pointer.write_text(digest + "\n")
    return target
