"""imagePullPolicy in the image service, against a fake registry: what is asked of it, and when."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import images
from nestlab.agent.registry import ImageNeverPullError, ImageRef, RegistryUnavailableError, parse_ref
from nestlab.runtime import proc

REGISTRY = "depot:5000"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("version")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


class FakeRegistry:
    """Tags pointing at manifests; counts what the image service asks for."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.tags: dict[str, tuple[str, dict[str, Any]]] = {}
        self.manifest_calls = 0
        self.blob_calls = 0
        self.down = False

    def tag(self, tag: str, version: str) -> str:
        """Point ``tag`` at a one-layer image whose file ``version`` says ``version``."""
        layer = _layer(version)
        config = json.dumps({"config": {"Cmd": ["cat", "/version"], "Env": [f"V={version}"]}}).encode()
        self.blobs[_digest(layer)], self.blobs[_digest(config)] = layer, config
        manifest = {
            "schemaVersion": 2,
            "config": {"digest": _digest(config)},
            "layers": [{"digest": _digest(layer)}],
        }
        digest = _digest(json.dumps(manifest, sort_keys=True).encode())
        self.tags[tag] = (digest, manifest)
        return digest

    def client(self, registry: str) -> FakeRegistry:
        assert registry == REGISTRY
        return self

    def manifest(self, ref: ImageRef) -> tuple[str, dict[str, Any]]:
        self.manifest_calls += 1
        if self.down:
            raise RegistryUnavailableError(f"registry {REGISTRY} did not answer")
        return self.tags[ref.reference]

    def blob(self, repository: str, digest: str, dest: Path) -> Path:
        self.blob_calls += 1
        dest.write_bytes(self.blobs[digest])
        return dest


def _mkfs(argv: list[str], **_: Any) -> proc.Result:
    """Stands in for mkfs.erofs: the disk holds the tree's one file (enough to tell versions apart)."""
    Path(argv[-2]).write_bytes((Path(argv[-1]) / "version").read_bytes())
    return proc.Result(tuple(argv), 0, "", "")


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def store(tmp_path: Path, registry: FakeRegistry) -> images.ImageStore:
    return images.ImageStore(tmp_path / "store", client=registry.client, run=_mkfs)  # type: ignore[arg-type]


REF = parse_ref("nestlab/web:1", REGISTRY)


def test_if_not_present_uses_the_cached_digest_even_when_the_tag_moved(
    store: images.ImageStore, registry: FakeRegistry
) -> None:
    first = registry.tag("1", "one")
    assert store.pull(REF, policy="IfNotPresent").digest == first
    registry.tag("1", "two")
    registry.down = True
    again = store.pull(REF, policy="IfNotPresent")
    assert (again.digest, again.disk.read_text()) == (first, "one")
    assert registry.manifest_calls == 1


def test_always_re_resolves_the_tag_pulls_a_new_digest_and_reuses_a_known_one(
    store: images.ImageStore, registry: FakeRegistry
) -> None:
    first = registry.tag("1", "one")
    assert store.pull(REF, policy="Always").digest == first
    blobs = registry.blob_calls
    same = store.pull(REF, policy="Always")
    assert (same.digest, registry.manifest_calls, registry.blob_calls) == (first, 2, blobs)

    second = registry.tag("1", "two")
    moved = store.pull(REF, policy="Always")
    assert (moved.digest, moved.disk.read_text(), moved.config.env) == (second, "two", (("V", "two"),))
    assert registry.blob_calls > blobs
    assert store.pull(REF, policy="IfNotPresent").digest == second  # the tag now means the new digest

    registry.down = True
    with pytest.raises(RegistryUnavailableError):
        store.pull(REF, policy="Always")  # as the kubelet: Always needs the registry


def test_never_fails_with_the_kubelets_reason_and_words_without_asking_the_registry(
    store: images.ImageStore, registry: FakeRegistry
) -> None:
    registry.tag("1", "one")
    with pytest.raises(ImageNeverPullError) as caught:
        store.pull(REF, policy="Never", shown="nestlab/web:1")
    assert caught.value.reason == "ErrImageNeverPull"
    assert not caught.value.backs_off
    assert str(caught.value) == 'Container image "nestlab/web:1" is not present with pull policy of Never'
    assert registry.manifest_calls == 0

    pulled = store.pull(REF)
    registry.down = True
    assert store.pull(REF, policy="Never").digest == pulled.digest
    by_digest = parse_ref(f"nestlab/other@{pulled.digest}", REGISTRY)
    assert store.pull(by_digest, policy="Never").digest == pulled.digest  # present by content
    assert registry.manifest_calls == 1


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"image": "nestlab/web:1", "imagePullPolicy": "Never"}, ("Never", "nestlab/web:1")),
        ({"image": "nestlab/web:1"}, ("IfNotPresent", "nestlab/web:1")),
        ({"image": "nestlab/web"}, ("Always", "nestlab/web")),
        ({"image": "depot:5000/nestlab/web:latest"}, ("Always", "depot:5000/nestlab/web:latest")),
        (
            {"image": "depot:5000/nestlab/web", "imagePullPolicy": "Sometimes"},
            ("Always", "depot:5000/nestlab/web"),
        ),
    ],
)
def test_the_policy_comes_from_the_container_or_upstreams_default(
    container: dict[str, Any], expected: tuple[str, str]
) -> None:
    pod = {"spec": {"containers": [{"name": "other", "image": "x"}, {"name": "c", **container}]}}
    assert images.pull_policy(pod, "c") == expected


def test_an_init_containers_policy_is_found_too() -> None:
    pod = {"spec": {"initContainers": [{"name": "i", "image": "a:1", "imagePullPolicy": "Always"}]}}
    assert images.pull_policy(pod, "i") == ("Always", "a:1")
