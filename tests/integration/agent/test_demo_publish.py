"""Publishing the demo images twice to a REAL registry (Debian's docker-registry): the first time
builds and pushes everything, the second builds nothing (the outer machine's cache) and sends only
HEADs (every tag names its manifest already); a registry whose storage was wiped, whose tag names
another image or which lost one blob gets what it lacks back, and every image pulls whole."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Mapping
from http.client import HTTPResponse
from pathlib import Path

import pytest

from nestlab.agent.registry import Body, ImageRef, RegistryClient
from nestlab.images import demo, oci
from tests.integration.agent.conftest import Registry, push_image

pytestmark = pytest.mark.integration

NAMES = ("nestlab/web:1", "nestlab/web:2", "nestlab/job:ok", "nestlab/job:fail", "nestlab/client:1")


class CountingClient(RegistryClient):
    """A real client that records each request it sends (method, path)."""

    def __init__(self, registry: str) -> None:
        super().__init__(registry)
        self.requests: list[tuple[str, str]] = []

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Body | None = None,
        repository: str = "",
    ) -> HTTPResponse:
        self.requests.append((method, path))
        return super()._request(method, path, headers=headers, data=data, repository=repository)

    def sent(self) -> list[tuple[str, str]]:
        """Requests that upload something (blob upload sessions, blob and manifest PUTs)."""
        return [(m, p) for m, p in self.requests if m in ("POST", "PUT", "PATCH")]


def _publish(registry: Registry, cache: oci.BuildCache) -> tuple[demo.Published, CountingClient, float]:
    client = CountingClient(registry.address)
    started = time.monotonic()
    published = demo.sync(registry.address, lambda _address: client, cache=cache)
    return published, client, time.monotonic() - started


def _pulls_whole(registry: Registry, tmp_path: Path) -> None:
    """Every demo image's manifest, config and layer come back from the registry, verified."""
    client = RegistryClient(registry.address)
    for name in NAMES:
        repository, _, tag = name.partition(":")
        manifest = client.resolve(ImageRef(registry.address, repository, tag))
        for blob in (manifest.doc["config"], *manifest.doc["layers"]):
            client.blob(repository, blob["digest"], tmp_path / "blob")  # hashed while it arrives


def test_the_second_publish_sends_nothing_and_a_wiped_registry_gets_everything_back(
    registry: Registry, tmp_path: Path
) -> None:
    cache = oci.BuildCache(tmp_path / "cache")
    first, first_client, first_s = _publish(registry, cache)
    second, second_client, second_s = _publish(registry, cache)
    print(f"publish: first {first_s:.2f} s ({len(first_client.requests)} requests), "
          f"second {second_s:.2f} s ({len(second_client.requests)} requests)")  # fmt: skip

    assert (first.pushed, first.built) == (NAMES, NAMES)
    uploads = [p for m, p in first_client.sent() if m == "POST"]
    assert len(uploads) == 9  # 4 layers (the jobs share web:2's, in nestlab/job) and 5 configs
    assert (second.pushed, second.skipped, second.built) == ((), NAMES, ())
    assert second_client.sent() == []
    assert {m for m, _ in second_client.requests} == {"HEAD"}  # a manifest and two blobs per image
    assert len(second_client.requests) == 3 * len(NAMES)
    assert second.digests == first.digests

    for entry in registry.storage.iterdir():  # the registry lost its data (it keeps running)
        shutil.rmtree(entry)
    third, third_client, third_s = _publish(registry, cache)
    print(f"publish to the wiped registry: {third_s:.2f} s, from the cache")
    assert (third.pushed, third.built) == (NAMES, ())
    assert len([p for m, p in third_client.sent() if m == "POST"]) == 9
    assert third.digests == first.digests
    _pulls_whole(registry, tmp_path)


def test_a_tag_naming_another_image_and_a_lost_blob_are_pushed_again(
    registry: Registry, busybox_root: Path, tmp_path: Path
) -> None:
    cache = oci.BuildCache(tmp_path / "cache")
    first, _, _ = _publish(registry, cache)
    other = push_image(registry, "nestlab/web", ["1"], busybox_root, oci.Recipe(cmd=("sh",)))
    assert other != first.digests[f"{registry.address}/nestlab/web:1"]
    client_manifest = RegistryClient(registry.address).resolve(
        ImageRef(registry.address, "nestlab/client", "1")
    )
    layer = client_manifest.doc["layers"][0]["digest"].removeprefix("sha256:")
    data = registry.storage / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    data.unlink()  # storage lost the client's layer; its tag still names the manifest

    again, client, _ = _publish(registry, cache)

    assert again.pushed == ("nestlab/web:1", "nestlab/client:1")
    assert again.built == ()
    assert [p for m, p in client.sent() if m == "POST"] == ["/v2/nestlab/client/blobs/uploads/"]
    assert hashlib.sha256(data.read_bytes()).hexdigest() == layer
    assert again.digests == first.digests
    _pulls_whole(registry, tmp_path)


def test_the_manifest_digest_of_a_tag_is_none_until_it_is_pushed(
    registry: Registry, busybox_root: Path
) -> None:
    client = RegistryClient(registry.address)
    assert client.manifest_digest("demo/none", "1") is None  # unknown repository
    digest = push_image(registry, "demo/busybox", ["1"], busybox_root, oci.Recipe())
    assert client.manifest_digest("demo/busybox", "1") == digest
    assert client.manifest_digest("demo/busybox", "2") is None  # unknown tag
    assert client.manifest_digest("demo/busybox", digest) == digest  # by digest too
