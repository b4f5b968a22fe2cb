"""Bring an image into the depot: ``nestlab image push`` (Harbor's "push an image to a project").

A source is an OCI image layout directory, a tarball of one (``skopeo copy ... oci-archive:``), a
``docker save`` archive (directory or tarball), or an image in a local registry reached over plain
HTTP on loopback (``localhost:5000/web:1``). Each becomes a :class:`SourceImage`: the manifest bytes to
push and the blobs it names, each checked against its digest (and, for docker archives, each layer
against the config's ``diff_ids``) before anything is uploaded. :func:`push` uploads the blobs the depot
does not have yet (streamed from disk; progress is one step counting the image's bytes, of blobs sent
or already there) and puts the manifest under ``<namespace>/<name>:<tag>``.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import json
import re
import ssl
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nestlab import logins
from nestlab.agent.registry import INDEX_TYPES, RegistryClient, RegistryError, parse_ref
from nestlab.agent.registryauth import TokenAuth
from nestlab.errors import NestlabError, UsageError
from nestlab.paths import LabFiles
from nestlab.progress import Step, as_progress, reason

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"
PLATFORM = ("linux", "amd64")  # what pod VMs run
_CHUNK = 1024 * 1024
_LOCAL = re.compile(r"^(localhost|127\.0\.0\.1|\[::1\]):\d+/")
_GZIP_MAGIC = b"\x1f\x8b"

Progress = Callable[[str], None]


class ImagePushError(NestlabError):
    """The source cannot be read as an image, or does not match its own digests."""


@dataclass(frozen=True)
class Blob:
    """A blob of the image, verified on disk."""

    digest: str
    size: int
    path: Path


@dataclass(frozen=True)
class SourceImage:
    """An image ready to push: its manifest exactly as pushed, and its blobs (config first)."""

    manifest: bytes
    media_type: str
    blobs: tuple[Blob, ...]
    name: str = ""
    """The repository name the source suggests (last path component), "" if none."""
    tag: str = ""


def sha256_file(path: Path, *, gunzip: bool = False) -> tuple[str, int]:
    """``sha256:<hex>`` and size of a file (of its gunzipped content with ``gunzip``), read in chunks."""
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as raw, gzip.open(raw) if gunzip else contextlib.nullcontext(raw) as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


def verified(path: Path, digest: str, size: Any, what: str) -> Blob:
    """``path`` as a blob, if it hashes to ``digest`` (and has ``size`` bytes when that is an int)."""
    if not path.is_file():
        raise ImagePushError(f"{what} {digest}: {path} is missing from the image")
    actual, actual_size = sha256_file(path)
    if actual != digest:
        raise ImagePushError(f"{what}: {path} hashes to {actual}, not {digest}: the image is corrupt")
    if isinstance(size, int) and size != actual_size:
        raise ImagePushError(f"{what}: {path} has {actual_size} bytes; its descriptor says {size}")
    return Blob(digest, actual_size, path)


def split_name(text: str) -> tuple[str, str]:
    """``docker.io/library/nginx:1.25`` -> (``nginx``, ``1.25``); an OCI ref name that is a bare tag
    (``1.25``) -> ("", ``1.25``)."""
    if not text:
        return "", ""
    if "/" not in text and ":" not in text and re.fullmatch(r"[0-9][\w.-]*", text):
        return "", text
    last = text.rsplit("/", 1)[-1]
    name, _, tag = last.partition(":")
    return name, tag


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ImagePushError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ImagePushError(f"{what} is not a JSON object")
    return doc


# -- OCI image layout ---------------------------------------------------------------------------------
def _blob_path(root: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise ImagePushError(f"{root}: unsupported digest {digest!r} (sha256 only)")
    return root / "blobs" / "sha256" / hexdigest


def _descriptor_blob(root: Path, descriptor: dict[str, Any], what: str) -> Blob:
    digest = str(descriptor.get("digest"))
    return verified(_blob_path(root, digest), digest, descriptor.get("size"), what)


def _platform_matches(entry: dict[str, Any]) -> bool:
    platform = entry.get("platform") or {}
    return (platform.get("os"), platform.get("architecture")) == PLATFORM


def _pick(root: Path, index: dict[str, Any], tag: str) -> dict[str, Any]:
    entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
    if len(entries) > 1 and tag:
        entries = [
            e for e in entries if split_name(str((e.get("annotations") or {}).get(REF_NAME, "")))[1] == tag
        ]
    if len(entries) != 1:
        names = sorted(
            str((e.get("annotations") or {}).get(REF_NAME, "?")) for e in index.get("manifests") or []
        )
        raise ImagePushError(
            f"{root}: {len(entries)} images match; choose one with --tag (the layout has {names})"
        )
    return entries[0]


def oci_layout(root: Path, tag: str = "") -> SourceImage:
    """The image of an OCI layout (``tag`` picks by ``org.opencontainers.image.ref.name`` among several);
    an index is resolved to linux/amd64."""
    try:
        index = _json((root / "index.json").read_bytes(), f"{root}/index.json")
    except OSError as exc:
        raise ImagePushError(f"{root}: not an OCI layout ({exc.strerror}: index.json)") from exc
    entry = _pick(root, index, tag)
    ref_name = str((entry.get("annotations") or {}).get(REF_NAME, ""))
    descriptor = entry
    body = _descriptor_blob(root, descriptor, "manifest").path.read_bytes()
    doc = _json(body, "the manifest")
    if descriptor.get("mediaType") in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES:
        chosen = [m for m in doc.get("manifests") or [] if isinstance(m, dict) and _platform_matches(m)]
        if not chosen:
            raise ImagePushError(
                f"{root}: its index has no {'/'.join(PLATFORM)} image (pods run linux/amd64)"
            )
        descriptor = chosen[0]
        body = _descriptor_blob(root, descriptor, "manifest").path.read_bytes()
        doc = _json(body, "the manifest")
    media_type = str(doc.get("mediaType") or descriptor.get("mediaType") or OCI_MANIFEST)
    blobs = [_descriptor_blob(root, doc.get("config") or {}, "config")]
    blobs += [_descriptor_blob(root, layer, "layer") for layer in doc.get("layers") or []]
    name, ref_tag = split_name(ref_name)
    return SourceImage(body, media_type, tuple(blobs), name, ref_tag)


# -- docker save ----------------------------------------------------------------------------------------
def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ImagePushError(f"{root}: {relative!r} points outside the archive")
    return path


def docker_archive(root: Path, tag: str = "") -> SourceImage:
    """The image of a ``docker save`` archive (its ``manifest.json``): a Docker schema 2 manifest is made
    for it; the config must hash to its name and each layer to the config's ``diff_ids``."""
    try:
        entries = json.loads((root / "manifest.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise ImagePushError(f"{root}: not a docker-archive (manifest.json: {exc})") from exc
    if not isinstance(entries, list) or not entries:
        raise ImagePushError(f"{root}/manifest.json lists no image")
    if len(entries) > 1 and tag:
        entries = [e for e in entries if any(split_name(t)[1] == tag for t in e.get("RepoTags") or [])]
    if len(entries) != 1:
        tags = sorted(t for e in entries for t in e.get("RepoTags") or [])
        raise ImagePushError(f"{root}: {len(entries)} images match; choose one with --tag (of {tags})")
    entry = entries[0]
    config_path = _inside(root, str(entry.get("Config")))
    config_digest, config_size = sha256_file(config_path)
    named = config_path.name.removesuffix(".json")
    if re.fullmatch(r"[0-9a-f]{64}", named) and "sha256:" + named != config_digest:
        raise ImagePushError(
            f"{root}: config {config_path.name} hashes to {config_digest}: the archive is corrupt"
        )
    config = _json(config_path.read_bytes(), f"{root}: config")
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    layers_in = [str(layer) for layer in entry.get("Layers") or []]
    if len(diff_ids) != len(layers_in):
        raise ImagePushError(f"{root}: {len(layers_in)} layers but the config lists {len(diff_ids)} diff_ids")
    blobs = [Blob(config_digest, config_size, config_path)]
    descriptors = []
    for relative, diff_id in zip(layers_in, diff_ids, strict=True):
        path = _inside(root, relative)
        with path.open("rb") as handle:
            compressed = handle.read(2) == _GZIP_MAGIC
        content, _ = sha256_file(path, gunzip=compressed)
        if content != diff_id:
            raise ImagePushError(f"{root}: layer {relative} holds {content}, the config says {diff_id}")
        digest, size = sha256_file(path) if compressed else (content, path.stat().st_size)
        blobs.append(Blob(digest, size, path))
        kind = DOCKER_LAYER_GZIP if compressed else DOCKER_LAYER
        descriptors.append({"mediaType": kind, "size": size, "digest": digest})
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest},
        "layers": descriptors,
    }
    tags = [str(t) for t in entry.get("RepoTags") or []]
    name, ref_tag = split_name(tags[0]) if tags else ("", "")
    return SourceImage(json.dumps(manifest, indent=3).encode(), DOCKER_MANIFEST, tuple(blobs), name, ref_tag)


def from_directory(root: Path, tag: str = "") -> SourceImage:
    """An OCI layout (``oci-layout`` file) or a docker-archive (``manifest.json``) directory."""
    if (root / "oci-layout").is_file() and (root / "index.json").is_file():
        return oci_layout(root, tag)
    if (root / "manifest.json").is_file():
        return docker_archive(root, tag)
    raise ImagePushError(f"{root}: neither an OCI layout (oci-layout, index.json) nor a docker save archive")


# -- a local registry ---------------------------------------------------------------------------------
def from_local_registry(text: str, work: Path, client: Callable[[str], RegistryClient]) -> SourceImage:
    """Download ``localhost:PORT/repo:tag`` (blobs verified while they arrive) into ``work``."""
    ref = parse_ref(text, "")
    source = client(ref.registry)
    found = source.resolve(ref, PLATFORM)
    descriptors = [found.doc.get("config") or {}, *(found.doc.get("layers") or [])]
    blobs = []
    for number, descriptor in enumerate(descriptors):
        digest = str(descriptor.get("digest"))
        path = source.blob(ref.repository, digest, work / f"blob-{number}")
        blobs.append(verified(path, digest, descriptor.get("size"), "blob"))
    tag = "" if ref.reference.startswith("sha256:") else ref.reference
    return SourceImage(found.body, found.media_type, tuple(blobs), ref.repository.rsplit("/", 1)[-1], tag)


@contextlib.contextmanager
def open_source(
    text: str, tag: str = "", client: Callable[[str], RegistryClient] = RegistryClient
) -> Iterator[SourceImage]:
    """The image ``text`` names; temporary files (an unpacked tarball, downloaded blobs) live until exit."""
    path = Path(text)
    with tempfile.TemporaryDirectory(prefix="nestlab-image-") as tmp:
        work = Path(tmp)
        if path.is_dir():
            yield from_directory(path, tag)
        elif path.is_file():
            try:
                with tarfile.open(path, "r:*") as archive:
                    archive.extractall(work / "image", filter="data")  # "data": no escapes, no devices
            except (tarfile.TarError, OSError) as exc:
                raise ImagePushError(f"{path}: not a readable tarball ({exc})") from exc
            yield from_directory(work / "image", tag)
        elif _LOCAL.match(text):
            try:
                found = from_local_registry(text, work, client)
            except RegistryError as exc:
                raise ImagePushError(f"{text}: {exc}") from exc
            yield found
        else:
            raise UsageError(
                f"{text!r}: no such file or directory, nor a local registry image (localhost:PORT/repo:tag); "
                "give an OCI layout directory, an OCI or docker-archive tarball (docker save), or "
                "localhost:PORT/REPO:TAG"
            )


# -- pushing --------------------------------------------------------------------------------------------
class _Counting:
    """A file read for an upload, counting its bytes into the push's step (after ``base`` bytes)."""

    def __init__(self, path: Path, step: Step, base: int, detail: str) -> None:
        self.handle = path.open("rb")
        self.step, self.base, self.detail = step, base, detail
        self.done = 0

    def read(self, n: int = -1) -> bytes:
        # http.client asks for 8 KiB blocks; 1 MiB ones send a large layer with far fewer system calls
        chunk = self.handle.read(n if n < 0 else max(n, _CHUNK))
        self.done += len(chunk)
        self.step.update(completed=self.base + self.done, detail=self.detail)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.handle.seek(offset, whence)
        self.done = position  # a retried upload starts over
        return position

    def close(self) -> None:
        self.handle.close()


def push(
    image: SourceImage, target: RegistryClient, repository: str, tag: str, progress: Progress = lambda _: None
) -> str:
    """Upload ``image``'s missing blobs and its manifest as ``repository:tag``; the manifest digest.

    ``progress`` gets one step counting the image's bytes (a :class:`~nestlab.progress.Progress`, or a
    callback that receives plain lines: one per 10 %), and a line per blob the registry already has."""
    shown = as_progress(progress)
    step = shown.step(f"push {repository}:{tag}", total=sum(b.size for b in image.blobs), unit="bytes")
    counted, sent = 0, 0
    try:
        for number, blob in enumerate(image.blobs, start=1):
            label = f"{repository} {blob.digest[:19]}"
            reader = _Counting(blob.path, step, counted, f"blob {number}/{len(image.blobs)}")
            try:
                uploaded = target.upload_blob(repository, blob.digest, blob.size, reader)
            finally:
                reader.close()
            if uploaded:
                sent += 1
            else:
                shown(f"{label}: already in the registry")
            counted += blob.size
            step.update(completed=counted)
        digest = target.push_manifest(repository, tag, image.manifest, image.media_type)
    except BaseException as exc:
        step.failed(reason(exc))
        raise
    step.done(f"{sent} of {len(image.blobs)} blobs sent")
    shown(f"{target.registry}/{repository}:{tag} -> {digest}")
    return digest


# -- the lab's depot and credentials ----------------------------------------------------------------------
def lab_registry(files: LabFiles, port: int) -> str:
    """``<depot address>:<port>`` of the lab whose files these are (its plan names the depot)."""
    try:
        plan = json.loads(files.plan.read_text(encoding="utf-8"))
        address = next(str(n["address"]) for n in plan["nodes"] if n.get("name") == "depot")
    except (OSError, ValueError, KeyError, StopIteration, TypeError) as exc:
        raise UsageError(
            f"no lab with a depot at {files.root} ({exc!r}): is it up? (`nestlab status`)"
        ) from exc
    return f"{address}:{port}"


def lab_auth(files: LabFiles, lab: str, user: str | None) -> TokenAuth:
    """Registry token credentials: ``user``'s login token (from ``nestlab login``), else the lab admin's
    client certificate."""
    ca = files.pki / "ca.crt"
    if user is None:
        return TokenAuth.with_certificate(ca, files.pki / "admin.crt", files.pki / "admin.key")
    now = datetime.datetime.now(datetime.UTC)
    credential = logins.exec_credential(logins.read_cache(files, user), user, lab, now)
    context = ssl.create_default_context(cafile=str(ca))
    return TokenAuth(context=context, bearer=str(credential["status"]["token"]))
