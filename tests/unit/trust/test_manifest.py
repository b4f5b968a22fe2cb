"""File manifests: every file's sha256, and every kind of difference reported."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nestlab.trust.errors import ManifestError
from nestlab.trust.manifest import build_manifest, check_manifest, parse_manifest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz").write_bytes(b"kernel")
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "initrd.img").write_bytes(b"initrd")
    return root


def test_manifest_lists_every_file_with_its_sha256(tree: Path) -> None:
    manifest = build_manifest(tree)
    assert manifest.files == {
        "boot/vmlinuz": hashlib.sha256(b"kernel").hexdigest(),
        "usr/lib/initrd.img": hashlib.sha256(b"initrd").hexdigest(),
    }
    assert parse_manifest(manifest.dumps()) == manifest
    assert check_manifest(manifest, tree) == []


def test_every_difference_is_reported(tree: Path) -> None:
    manifest = build_manifest(tree)
    (tree / "boot" / "vmlinuz").write_bytes(b"kernel!")
    (tree / "usr" / "lib" / "initrd.img").unlink()
    (tree / "boot" / "extra").write_bytes(b"")
    problems = check_manifest(manifest, tree)
    assert problems[0] == "missing: usr/lib/initrd.img"
    assert problems[1].startswith("changed: boot/vmlinuz (sha256 ")
    assert problems[2] == "unexpected: boot/extra"
    assert len(problems) == 3


def test_symlinks_are_refused(tree: Path) -> None:
    (tree / "boot" / "link").symlink_to("vmlinuz")
    with pytest.raises(ManifestError, match=r"boot/link .* is a symlink"):
        build_manifest(tree)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "nestlab-manifest/1", "files": {', "truncated"),
        ('{"format": "other", "files": {}}', "format"),
        ('{"format": "nestlab-manifest/1", "files": {"a": "12"}}', "entry 'a' needs a sha256"),
        ('{"format": "nestlab-manifest/1", "files": {"../x": "' + "0" * 64 + '"}}', "relative path"),
    ],
)
def test_malformed_manifest_is_refused(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text)
