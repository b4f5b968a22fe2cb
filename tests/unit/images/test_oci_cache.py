"""The outer machine's cache of built images (kept whole, damage rebuilt, bounded) and the push that
asks the registry first (a tag already naming the manifest, with its blobs there, is not pushed)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from nestlab.images import oci
from tests.unit.images.registry_fake import FakeRegistry

KEY_A, KEY_B, KEY_C = ("a" * 64, "b" * 64, "c" * 64)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def image(tmp_path: Path) -> oci.Image:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hello\n")
    return oci.build_image(root, oci.Recipe(cmd=("sh",)))


class Builds:
    """A ``make`` for :meth:`oci.BuildCache.image` that counts its calls."""

    def __init__(self, image: oci.Image) -> None:
        self.image = image
        self.count = 0

    def __call__(self) -> oci.Image:
        self.count += 1
        return self.image


def test_an_image_is_built_once_and_read_back_whole(tmp_path: Path, image: oci.Image) -> None:
    make = Builds(image)
    first, built = oci.BuildCache(tmp_path / "cache").image(KEY_A, make)
    again, rebuilt = oci.BuildCache(tmp_path / "cache").image(KEY_A, make)  # another run of `up`
    assert (built, rebuilt, make.count) == (True, False, 1)
    assert first == again == image
    assert again.digest == "sha256:" + hashlib.sha256(image.manifest).hexdigest()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [KEY_A]  # no staging left behind


@pytest.mark.parametrize("damage", ["truncated layer", "missing config", "other manifest"])
def test_a_damaged_entry_is_dropped_and_rebuilt(tmp_path: Path, image: oci.Image, damage: str) -> None:
    cache = oci.BuildCache(tmp_path)
    cache.put(KEY_A, image)
    entry = tmp_path / KEY_A
    if damage == "truncated layer":
        (entry / "layer.tar.gz").write_bytes(image.layer[:100])
    elif damage == "missing config":
        (entry / "config.json").unlink()
    else:
        (entry / "manifest.json").write_bytes(image.manifest.replace(b"layers", b"Layers"))
    assert cache.get(KEY_A) is None
    assert not entry.exists()
    make = Builds(image)
    assert cache.image(KEY_A, make) == (image, True)
    assert cache.get(KEY_A) == image


def test_the_newest_entries_by_use_are_kept(cache_dir: Path, image: oci.Image) -> None:
    cache = oci.BuildCache(cache_dir, keep=2)
    cache.put(KEY_A, image)
    cache.put(KEY_B, image)
    past = time.time() - 100
    os.utime(cache_dir / KEY_A, (past, past))
    os.utime(cache_dir / KEY_B, (past - 10, past - 10))
    assert cache.get(KEY_B) is not None  # used now: the newest
    cache.put(KEY_C, image)  # three entries for two places: the least recently used goes
    assert sorted(p.name for p in cache_dir.iterdir()) == [KEY_B, KEY_C]


def test_staging_of_a_dead_process_is_removed_and_a_live_ones_kept(cache_dir: Path, image: oci.Image) -> None:
    dead, live = cache_dir / f".{KEY_A}.1.tmp", cache_dir / f".{KEY_B}.2.tmp"
    for staging in (dead, live):
        staging.mkdir(parents=True)
    old = time.time() - oci.STALE_STAGING_S - 60
    os.utime(dead, (old, old))
    oci.BuildCache(cache_dir).put(KEY_C, image)
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([live.name, KEY_C])


def test_a_key_that_is_not_a_digest_is_refused(tmp_path: Path, image: oci.Image) -> None:
    with pytest.raises(ValueError, match="not a sha256 hex digest"):
        oci.BuildCache(tmp_path).put("../elsewhere", image)


def test_the_recipe_text_keeps_the_env_order_the_config_has() -> None:
    one = oci.Recipe(cmd=("sh",), env={"A": "1", "B": "2"})
    other = oci.Recipe(cmd=("sh",), env={"B": "2", "A": "1"})
    assert one.canonical() != other.canonical()
    assert one.canonical() == oci.Recipe(cmd=("sh",), env={"A": "1", "B": "2"}).canonical()


def test_the_builder_fingerprint_is_stable_within_a_run() -> None:
    assert oci.builder_fingerprint() == oci.builder_fingerprint()
    assert len(oci.builder_fingerprint()) == 64


def test_a_tag_naming_the_manifest_with_its_blobs_there_is_not_pushed(image: oci.Image) -> None:
    registry = FakeRegistry()
    assert oci.ensure_pushed(registry, "demo/web", ["1", "latest"], image) is True
    assert len(registry.uploads()) == 4  # layer, config, the manifest under both tags
    registry.calls.clear()
    assert oci.ensure_pushed(registry, "demo/web", ["1", "latest"], image) is False
    assert registry.uploads() == []
    assert {method for method, _ in registry.calls} == {"head-manifest", "head-blob"}


def test_one_tag_naming_another_image_pushes_the_manifest_again(tmp_path: Path, image: oci.Image) -> None:
    registry = FakeRegistry()
    oci.ensure_pushed(registry, "demo/web", ["1", "latest"], image)
    registry.tags["demo/web", "latest"] = b'{"schemaVersion": 2, "config": {}, "layers": []}'
    registry.calls.clear()
    assert oci.ensure_pushed(registry, "demo/web", ["1", "latest"], image) is True
    assert registry.uploads() == ["demo/web:1", "demo/web:latest"]  # blobs there: not sent again
    assert registry.tags["demo/web", "latest"] == image.manifest


def test_a_lost_blob_is_pushed_again_though_the_tag_still_names_the_manifest(image: oci.Image) -> None:
    registry = FakeRegistry()
    oci.ensure_pushed(registry, "demo/web", ["1"], image)
    layer = "sha256:" + hashlib.sha256(image.layer).hexdigest()
    del registry.blobs["demo/web", layer]
    registry.calls.clear()
    assert oci.ensure_pushed(registry, "demo/web", ["1"], image) is True
    assert registry.uploads() == [f"demo/web@{layer}", "demo/web:1"]


def test_an_empty_registry_gets_everything(image: oci.Image) -> None:
    registry = FakeRegistry()
    oci.ensure_pushed(registry, "demo/web", ["1"], image)
    registry.blobs.clear()
    registry.tags.clear()
    registry.calls.clear()
    assert oci.ensure_pushed(registry, "demo/web", ["1"], image) is True
    assert len(registry.uploads()) == 3
