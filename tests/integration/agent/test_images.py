"""The image service against a REAL docker-registry: push, pull, verify, erofs disk, cache, GC, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.agent import images
from nestlab.agent.registry import (
    DigestMismatchError,
    ImageNotFoundError,
    RegistryClient,
    RegistryUnavailableError,
    parse_ref,
)
from nestlab.images import oci
from nestlab.runtime import proc
from tests.integration.agent.conftest import Registry, free_port

pytestmark = pytest.mark.integration


def _erofs_ls(disk: Path, path: str) -> str:
    return proc.run(["dump.erofs", f"--path={path}", "--ls", str(disk)], timeout=30).stdout


def test_pull_builds_an_erofs_disk_with_the_image_files_and_config(
    registry: Registry, busybox_root: Path, tmp_path: Path
) -> None:
    client = RegistryClient(registry.address)
    digest = oci.push(client, "demo/busybox", ["1"], busybox_root, oci.Recipe(cmd=("sh", "-c", "echo hi")))
    store = images.ImageStore(tmp_path / "store")

    image = store.pull(parse_ref("demo/busybox:1", registry.address))

    assert image.digest == digest
    assert image.disk.is_file()
    proc.run(["fsck.erofs", str(image.disk)], timeout=60)
    listing = _erofs_ls(image.disk, "/bin")
    assert "busybox" in listing
    assert "httpd" in listing
    assert "motd" in _erofs_ls(image.disk, "/etc")
    assert image.config.cmd == ("sh", "-c", "echo hi")
    assert not list((tmp_path / "store" / "tmp").iterdir()), "the pull left its work directory behind"


def test_two_tags_of_one_image_share_one_disk_and_a_cached_image_survives_the_registry_going_down(
    registry: Registry, busybox_root: Path, tmp_path: Path
) -> None:
    client = RegistryClient(registry.address)
    oci.push(client, "demo/busybox", ["a", "b"], busybox_root, oci.Recipe())
    store = images.ImageStore(tmp_path / "store")
    first = store.pull(parse_ref("demo/busybox:a", registry.address))
    built = first.disk.stat().st_mtime_ns

    second = store.pull(parse_ref("demo/busybox:b", registry.address))
    assert second.disk == first.disk
    assert second.disk.stat().st_mtime_ns == built

    registry.process.stop()
    again = store.pull(parse_ref("demo/busybox:a", registry.address))
    assert again.disk == first.disk
    with pytest.raises(RegistryUnavailableError, match="did not answer"):
        store.pull(parse_ref("demo/busybox:a", registry.address), always=True)


def test_unknown_image_and_unknown_tag_are_not_found(
    registry: Registry, busybox_root: Path, tmp_path: Path
) -> None:
    oci.push(RegistryClient(registry.address), "demo/busybox", ["1"], busybox_root, oci.Recipe())
    store = images.ImageStore(tmp_path / "store")
    with pytest.raises(ImageNotFoundError, match="nosuch/image:1"):
        store.pull(parse_ref("nosuch/image:1", registry.address))
    with pytest.raises(ImageNotFoundError, match="demo/busybox:2"):
        store.pull(parse_ref("demo/busybox:2", registry.address))


def test_registry_down_is_reported_as_unavailable(tmp_path: Path) -> None:
    store = images.ImageStore(tmp_path / "store")
    with pytest.raises(RegistryUnavailableError, match="is the depot up"):
        store.pull(parse_ref(f"127.0.0.1:{free_port()}/demo/busybox:1", "unused"))


def test_a_corrupted_layer_in_registry_storage_is_refused_and_leaves_nothing(
    registry: Registry, busybox_root: Path, tmp_path: Path
) -> None:
    layer, _, _ = oci.build(busybox_root, oci.Recipe())
    oci.push(RegistryClient(registry.address), "demo/busybox", ["1"], busybox_root, oci.Recipe())
    import hashlib

    hexdigest = hashlib.sha256(layer).hexdigest()
    data = registry.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    corrupted = bytearray(data.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    data.write_bytes(bytes(corrupted))
    store = images.ImageStore(tmp_path / "store")

    with pytest.raises(DigestMismatchError, match="refused"):
        store.pull(parse_ref("demo/busybox:1", registry.address))
    assert store.digests() == set()
    assert not list((tmp_path / "store" / "tmp").iterdir())


def test_collect_removes_only_images_no_pod_uses(
    registry: Registry, busybox_root: Path, tmp_path: Path
) -> None:
    client = RegistryClient(registry.address)
    oci.push(client, "demo/one", ["1"], busybox_root, oci.Recipe(cmd=("one",)))
    oci.push(client, "demo/two", ["1"], busybox_root, oci.Recipe(cmd=("two",)))
    store = images.ImageStore(tmp_path / "store")
    one = store.pull(parse_ref("demo/one:1", registry.address))
    two = store.pull(parse_ref("demo/two:1", registry.address))
    assert one.digest != two.digest

    assert store.collect({one.digest}) == [two.digest]
    assert store.digests() == {one.digest}
    assert not two.disk.exists()
    assert one.disk.exists()


def test_collect_spares_recently_used_images(registry: Registry, busybox_root: Path, tmp_path: Path) -> None:
    oci.push(RegistryClient(registry.address), "demo/one", ["1"], busybox_root, oci.Recipe())
    store = images.ImageStore(tmp_path / "store")
    image = store.pull(parse_ref("demo/one:1", registry.address))
    assert store.collect(set(), min_age_s=600) == []
    assert image.disk.exists()
