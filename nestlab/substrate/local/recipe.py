"""The node image recipe (images/node/): what goes into the image, and the digest naming it.

The digest covers every file of the recipe, so the cache key changes exactly when what would be
built changes, and a cached image can always be traced back to the recipe that made it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from nestlab import paths
from nestlab.substrate.local.errors import ImageError

ServiceAction = Literal["enable", "disable"]


@dataclass(frozen=True)
class Recipe:
    """A parsed images/node/ directory."""

    directory: Path
    packages: tuple[str, ...]
    """Debian packages installed (without recommends) on top of debootstrap's minbase."""
    services: tuple[tuple[ServiceAction, str], ...]
    """systemd units enabled or disabled in the image, in file order."""
    files: Path
    """A tree copied over the image's root (unit files, sshd and environment settings)."""
    digest: str
    """sha256 over the recipe's relative paths and contents."""


def default_recipe_dir() -> Path:
    """images/node/ in the checkout nestlab runs from."""
    return paths.repo_root() / "images" / "node"


def recipe_digest(directory: Path) -> str:
    """sha256 over every file under ``directory``: relative path, NUL, content, NUL."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def parse_services(path: Path) -> tuple[tuple[ServiceAction, str], ...]:
    """Read ``enable UNIT`` / ``disable UNIT`` lines."""
    services: list[tuple[ServiceAction, str]] = []
    for line in _lines(path):
        words = line.split()
        if len(words) != 2 or words[0] not in ("enable", "disable"):
            raise ImageError(f"{path}: expected 'enable UNIT' or 'disable UNIT', got {line!r}")
        services.append((cast(ServiceAction, words[0]), words[1]))
    return tuple(services)


def load_recipe(directory: Path | None = None) -> Recipe:
    """Read the recipe in ``directory`` (default images/node/)."""
    where = directory or default_recipe_dir()
    packages_file = where / "packages.txt"
    if not packages_file.is_file():
        raise ImageError(f"no node image recipe at {where} (expected packages.txt there)")
    packages = tuple(_lines(packages_file))
    services_file = where / "services.txt"
    services = parse_services(services_file) if services_file.is_file() else ()
    return Recipe(
        directory=where,
        packages=packages,
        services=services,
        files=where / "rootfs",
        digest=recipe_digest(where),
    )
