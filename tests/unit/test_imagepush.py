"""``nestlab image push`` sources: OCI layouts, docker save archives and tarballs of either, every blob
checked against its digest before upload; and the push itself against a fake registry."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab import imagepush
from nestlab.commands.image import image
from nestlab.errors import UsageError
from nestlab.imagepush import ImagePushError, SourceImage
from nestlab.images import oci


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "root"
    (directory / "etc").mkdir(parents=True)
    (directory / "etc" / "motd").write_text("hello\n")
    return directory


def oci_layout(tmp_path: Path, root: Path, ref_name: str = "docker.io/library/web:1") -> tuple[Path, str]:
    layer, config, manifest = oci.build(root, oci.Recipe(cmd=("sh",)))
    layout = tmp_path / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (layer, config, manifest):
        (blobs / _digest(data).removeprefix("sha256:")).write_bytes(data)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _digest(manifest),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": ref_name},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return layout, _digest(manifest)


def docker_archive(tmp_path: Path, root: Path, diff_id: str = "") -> Path:
    archive = tmp_path / "saved"
    (archive / "abc").mkdir(parents=True)
    layer = oci.layer_tar(root)
    (archive / "abc" / "layer.tar").write_bytes(layer)
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [diff_id or _digest(layer)]}}).encode()
    name = _digest(config).removeprefix("sha256:") + ".json"
    (archive / name).write_bytes(config)
    entry = {"Config": name, "RepoTags": ["web:2"], "Layers": ["abc/layer.tar"]}
    (archive / "manifest.json").write_text(json.dumps([entry]))
    return archive


def tarball(directory: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        tar.add(directory, arcname=".")
    return dest


def test_an_oci_layout_is_read_with_its_name_and_tag(tmp_path: Path, root: Path) -> None:
    layout, digest = oci_layout(tmp_path, root)
    found = imagepush.from_directory(layout)
    assert _digest(found.manifest) == digest
    assert (found.name, found.tag) == ("web", "1")
    assert len(found.blobs) == 2  # config, one layer
    assert all(_digest(b.path.read_bytes()) == b.digest for b in found.blobs)


def test_a_corrupt_blob_is_refused_before_anything_is_sent(tmp_path: Path, root: Path) -> None:
    layout, _ = oci_layout(tmp_path, root)
    manifest = json.loads(imagepush.from_directory(layout).manifest)
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    with pytest.raises(ImagePushError, match="the image is corrupt"):
        imagepush.from_directory(layout)


def test_a_docker_archive_gets_a_schema2_manifest_and_its_layers_match_the_config(
    tmp_path: Path, root: Path
) -> None:
    found = imagepush.from_directory(docker_archive(tmp_path, root))
    manifest = json.loads(found.manifest)
    assert found.media_type == imagepush.DOCKER_MANIFEST == manifest["mediaType"]
    assert manifest["layers"][0]["mediaType"] == imagepush.DOCKER_LAYER
    assert manifest["config"]["digest"] == found.blobs[0].digest
    assert (found.name, found.tag) == ("web", "2")


def test_a_docker_layer_that_is_not_its_diff_id_is_refused(tmp_path: Path, root: Path) -> None:
    with pytest.raises(ImagePushError, match="the config says"):
        imagepush.from_directory(docker_archive(tmp_path, root, diff_id="sha256:" + "0" * 64))


def test_tarballs_of_either_format_open(tmp_path: Path, root: Path) -> None:
    layout, digest = oci_layout(tmp_path, root)
    with imagepush.open_source(str(tarball(layout, tmp_path / "oci.tar"))) as found:
        assert _digest(found.manifest) == digest
    with imagepush.open_source(
        str(tarball(docker_archive(tmp_path, root), tmp_path / "docker.tar"))
    ) as found:
        assert found.tag == "2"


def test_a_source_that_is_nothing_says_what_sources_are(tmp_path: Path) -> None:
    with (
        pytest.raises(UsageError, match="OCI layout directory"),
        imagepush.open_source("nginx:latest"),
    ):
        pass
    (tmp_path / "junk").mkdir()
    with (
        pytest.raises(ImagePushError, match="neither an OCI layout"),
        imagepush.open_source(str(tmp_path / "junk")),
    ):
        pass
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with (
        pytest.raises(ImagePushError, match="not a readable tarball"),
        imagepush.open_source(str(tmp_path / "junk.tar")),
    ):
        pass


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docker.io/library/nginx:1.25", ("nginx", "1.25")),
        ("web", ("web", "")),
        ("1.25", ("", "1.25")),
        ("localhost:5000/team/web:2", ("web", "2")),
        ("", ("", "")),
    ],
)
def test_names_and_tags_of_sources(text: str, expected: tuple[str, str]) -> None:
    assert imagepush.split_name(text) == expected


class FakeTarget:
    registry = "depot:5000"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}

    def upload_blob(self, repository: str, digest: str, size: int, body: io.RawIOBase) -> bool:
        if digest in self.blobs:
            return False
        data = b""
        while chunk := body.read(7):
            data += chunk
        assert (len(data), _digest(data)) == (size, digest)
        self.blobs[digest] = data
        return True

    def push_manifest(self, repository: str, tag: str, manifest: bytes, media_type: str) -> str:
        self.manifests[f"{repository}:{tag}"] = manifest
        return _digest(manifest)


def test_push_uploads_missing_blobs_and_the_manifest_with_progress(tmp_path: Path, root: Path) -> None:
    layout, digest = oci_layout(tmp_path, root)
    found: SourceImage = imagepush.from_directory(layout)
    target, lines = FakeTarget(), list[str]()
    assert imagepush.push(found, target, "team-a/web", "1", lines.append) == digest  # type: ignore[arg-type]
    assert set(target.blobs) == {b.digest for b in found.blobs}
    assert any("100% of" in line for line in lines)
    again: list[str] = []
    imagepush.push(found, target, "team-a/web", "1", again.append)  # type: ignore[arg-type]
    assert sum("already in the registry" in line for line in again) == 2


def test_the_command_without_a_lab_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(image, ["push", "x.tar", "--name", "nolab"])
    assert result.exit_code != 0
    assert "is it up?" in result.output
    assert "Traceback" not in result.output


def test_the_command_pushes_into_the_namespaces_project(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, digest = oci_layout(tmp_path, root)
    target = FakeTarget()
    monkeypatch.setattr(imagepush, "lab_registry", lambda files, port: "198.18.0.9:5000")
    monkeypatch.setattr(imagepush, "lab_auth", lambda files, lab, user: None)
    monkeypatch.setattr("nestlab.commands.image.RegistryClient", lambda registry, auth: target)
    result = CliRunner().invoke(image, ["push", str(layout), "--namespace", "team-a", "--tag", "v2"])
    assert result.exit_code == 0, result.output
    assert f"198.18.0.9:5000/team-a/web:v2@{digest}" in result.stdout
    assert "pods in namespace team-a run it as image: team-a/web:v2" in result.output
    assert set(target.manifests) == {"team-a/web:v2"}
