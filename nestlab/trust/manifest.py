"""A manifest of a directory tree: the sha256 of every file, and the check that finds what changed.

The pod kernel package ships its files with a manifest; the node checks the installed files against
it before use, so a modified initramfs or module is refused even though only the kernel image
carries an Authenticode signature. Format (JSON)::

    {"format": "nestlab-manifest/1", "files": {"boot/vmlinuz": "<sha256 hex>", ...}}

Paths are relative, with '/' separators, sorted. Symlinks are refused: a manifest vouches for
content, and a link's target can change under it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nestlab.trust.errors import ManifestError
from nestlab.trust.measure import file_digest

FORMAT: Final = "nestlab-manifest/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Manifest:
    """Relative path -> sha256 of its content."""

    files: Mapping[str, str]

    def dumps(self) -> str:
        return json.dumps({"format": FORMAT, "files": dict(sorted(self.files.items()))}, indent=1) + "\n"


def build_manifest(root: Path) -> Manifest:
    """Hash every regular file under ``root``."""
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise ManifestError(f"{relative} under {root} is a symlink; manifests cover regular files only")
        if path.is_file():
            files[relative] = file_digest(path)
    return Manifest(files)


def parse_manifest(text: str) -> Manifest:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest is truncated or not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("files"), dict):
        raise ManifestError(f"manifest must be a JSON object with format {FORMAT!r} and a files map")
    for name, digest in raw["files"].items():
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise ManifestError(
                f"manifest entry {name!r} needs a sha256 digest (64 lowercase hex characters)"
            )
        if name.startswith("/") or ".." in name.split("/"):
            raise ManifestError(f"manifest entry {name!r} must be a relative path inside the tree")
    return Manifest(dict(raw["files"]))


def check_manifest(manifest: Manifest, root: Path) -> list[str]:
    """Every difference between ``root`` and ``manifest`` (missing, changed, unexpected files); [] if none."""
    actual = build_manifest(root).files
    problems = [f"missing: {name}" for name in sorted(manifest.files.keys() - actual.keys())]
    problems += [
        f"changed: {name} (sha256 {actual[name][:16]}…, expected {manifest.files[name][:16]}…)"
        for name in sorted(manifest.files.keys() & actual.keys())
        if actual[name] != manifest.files[name]
    ]
    problems += [f"unexpected: {name}" for name in sorted(actual.keys() - manifest.files.keys())]
    return problems
