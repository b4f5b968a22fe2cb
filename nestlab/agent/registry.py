"""A client of the OCI distribution API v2: what the image service pulls from and demo images push to.

The lab registry is Debian's ``docker-registry`` on the depot (plain HTTP inside the lab network,
token authentication). :meth:`RegistryClient._request` is the one place that speaks HTTP to it; every
other method is protocol. A 401 with a Bearer challenge gets a token from the realm it names
(:mod:`nestlab.agent.registryauth`, with this client's credentials and the pod it pulls for) and the
request is sent once more. Blobs are streamed to disk and hashed while they arrive: a blob whose
sha256 differs from its digest is deleted and refused, so nothing unverified ever reaches an image
disk. Failures are :class:`RegistryError` subclasses whose message names the image and what to check.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import Any, Protocol

from nestlab.agent.registryauth import RegistryAuthError, TokenAuth, parse_challenge
from nestlab.errors import NestlabError, UsageError

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
"""Registry hosts of upstream short names: pods naming them pull from the depot instead."""
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution's own manifest limit
MAX_BLOB_BYTES = 2 * 1024 * 1024 * 1024  # pods are small; a 2 GiB layer is a mistake, not an image
TIMEOUT_S = 30.0  # per request; a blob body is read in chunks under the same socket timeout
_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RegistryError(NestlabError):
    """Pulling or pushing an image failed."""

    reason = "ErrImagePull"
    backs_off = True
    """Retries report ``ImagePullBackOff`` (the kubelet's pull back-off); False: ``reason`` stays."""


class InvalidImageNameError(RegistryError, UsageError):
    """The image reference cannot be parsed."""

    reason = "InvalidImageNameError"


class ImageNeverPullError(RegistryError, UsageError):
    """``imagePullPolicy: Never`` and the image is not on this host (the kubelet's own words)."""

    reason = "ErrImageNeverPull"
    backs_off = False

    def __init__(self, image: str) -> None:
        super().__init__(f'Container image "{image}" is not present with pull policy of Never')


class ImageNotFoundError(RegistryError, UsageError):
    """The registry does not have that repository, tag or digest."""


class RegistryUnavailableError(RegistryError):
    """The registry did not answer (down, unreachable, timed out) or answered with a server error."""


class RegistryAccessDeniedError(RegistryError):
    """The registry wants a token the caller's credentials do not earn (the project is not theirs)."""


class DigestMismatchError(RegistryError):
    """A manifest or blob did not hash to its digest (corrupt storage or a man in the middle)."""


@dataclass(frozen=True)
class ImageRef:
    """``registry/repository:tag`` or ``registry/repository@sha256:...``."""

    registry: str
    """``host:port`` of the registry."""
    repository: str
    reference: str
    """A tag or a ``sha256:`` digest."""

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{sep}{self.reference}"


class Body(Protocol):
    """An upload body read in blocks (a file), rewound when the request is sent again."""

    def read(self, n: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...


@dataclass(frozen=True)
class Manifest:
    """An image manifest exactly as the registry holds it."""

    digest: str
    media_type: str
    body: bytes
    doc: dict[str, Any]


def parse_ref(text: str, default_registry: str) -> ImageRef:
    """Parse an image reference; one without a registry host, or naming Docker Hub, uses
    ``default_registry`` and, as Docker Hub does, a one-component name is in ``library/``
    (``nginx`` -> ``<depot>/library/nginx:latest``: upstream short names resolve to the depot)."""
    rest = text.strip()
    registry = ""
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    if registry in ("", *DOCKER_HUB):
        registry = default_registry
        if rest and "/" not in rest.partition("@")[0].partition(":")[0]:
            rest = "library/" + rest
    if "@" in rest:
        repository, _, reference = rest.partition("@")
        if not _DIGEST.match(reference):
            raise InvalidImageNameError(f"image {text!r}: digest must be sha256: and 64 hex digits")
    else:
        repository, colon, tag = rest.rpartition(":")
        if not colon or "/" in tag:
            repository, tag = rest, "latest"
        if not _TAG.match(tag):
            raise InvalidImageNameError(f"image {text!r}: tag {tag!r} is not a valid tag")
        reference = tag
    if not _REPO.match(repository):
        raise InvalidImageNameError(
            f"image {text!r}: {repository!r} is not a repository name (lowercase, a-z0-9._-/)"
        )
    return ImageRef(registry, repository, reference)


def check_digest(digest: str, where: str) -> str:
    """``digest`` if it is a sha256 digest; else a :class:`DigestMismatchError` naming ``where``."""
    if not _DIGEST.match(digest):
        raise DigestMismatchError(f"{where}: {digest!r} is not a sha256 digest")
    return digest


class RegistryClient:
    """Distribution API v2 over plain HTTP (the lab's depot) or HTTPS, with bearer tokens from ``auth``."""

    def __init__(
        self,
        registry: str,
        *,
        scheme: str = "http",
        timeout: float = TIMEOUT_S,
        auth: TokenAuth | None = None,
        pod: str = "",
    ) -> None:
        self.registry = registry
        self.base = f"{scheme}://{registry}"
        self.timeout = timeout
        self.auth = auth
        """Where tokens come from; None: anonymous (a registry without authentication)."""
        self.pod = pod
        """``namespace/name`` of the pod a node pulls for (its token is scoped to that pod)."""

    def for_pod(self, pod: str) -> RegistryClient:
        """The same client (and token cache) pulling for ``pod`` (``namespace/name``)."""
        scheme = self.base.partition("://")[0]
        return RegistryClient(self.registry, scheme=scheme, timeout=self.timeout, auth=self.auth, pod=pod)

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Body | None = None,
        repository: str = "",
    ) -> HTTPResponse:
        """The one HTTP call; the caller closes the response. Non-2xx comes back as HTTPError. A 401
        Bearer challenge is answered once with a token for ``repository`` (a file body is rewound)."""
        for attempt in (1, 2):
            sent = dict(headers or {})
            token = self.auth.cached(self.registry, repository, self.pod) if self.auth is not None else None
            if token:
                sent["Authorization"] = f"Bearer {token}"
            request = urllib.request.Request(  # noqa: S310 - http(s) base URL built here
                self.base + path, data=data, method=method, headers=sent
            )
            try:
                response: HTTPResponse = urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310
            except urllib.error.HTTPError as exc:
                challenge = (
                    parse_challenge(exc.headers.get("WWW-Authenticate", "")) if exc.code == 401 else None
                )
                if challenge is None or self.auth is None or attempt == 2:
                    raise
                exc.close()
                try:
                    self.auth.fetch(self.registry, repository, challenge, self.pod)
                except RegistryAuthError as auth_exc:
                    raise RegistryError(f"registry {self.registry}: {auth_exc}") from auth_exc
                if data is not None and not isinstance(data, bytes):
                    data.seek(0)
                continue
            except (urllib.error.URLError, OSError) as exc:
                raise RegistryUnavailableError(
                    f"registry {self.registry} did not answer {method} {path}: {exc} (is the depot up?)"
                ) from exc
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _fail(self, exc: urllib.error.HTTPError, what: str) -> RegistryError:
        body = exc.read(4096).decode(errors="replace")
        exc.close()
        namespace = self.pod.partition("/")[0] or "<namespace>"
        if exc.code == 404:
            return ImageNotFoundError(
                f"{what}: not in registry {self.registry} (push it with: nestlab image push SOURCE "
                f"--namespace {namespace}; or check the name and tag)"
            )
        if exc.code in (401, 403):
            who = f"pod {self.pod}" if self.pod else "these credentials"
            hint = (
                "give credentials (nestlab login, or the lab admin's)"
                if self.auth is None
                else (
                    "the project (the repository's first path component) is a namespace they have no "
                    "access to (view pulls, edit pushes; nestlab and library are public)"
                )
            )
            return RegistryAccessDeniedError(f"{what}: registry {self.registry} refused {who}: {hint}")
        if exc.code >= 500:
            return RegistryUnavailableError(
                f"{what}: registry {self.registry} answered {exc.code}: {body[:300]}"
            )
        return RegistryError(f"{what}: registry {self.registry} answered {exc.code}: {body[:300]}")

    def ping(self) -> None:
        """Check the registry speaks API v2."""
        try:
            self._request("GET", "/v2/").close()
        except urllib.error.HTTPError as exc:
            raise self._fail(exc, "ping") from exc

    def manifest(
        self, ref: ImageRef, platform: tuple[str, str] = ("linux", "amd64")
    ) -> tuple[str, dict[str, Any]]:
        """The image manifest's digest and content; an index is resolved to ``platform``'s manifest."""
        found = self.resolve(ref, platform)
        return found.digest, found.doc

    def resolve(self, ref: ImageRef, platform: tuple[str, str] = ("linux", "amd64")) -> Manifest:
        """The image manifest as stored (bytes, media type, digest); an index is resolved to ``platform``."""
        found = self._manifest(ref.repository, ref.reference, str(ref))
        if found.media_type in INDEX_TYPES or found.doc.get("mediaType") in INDEX_TYPES:
            for entry in found.doc.get("manifests", []):
                plat = entry.get("platform", {})
                if (plat.get("os"), plat.get("architecture")) == platform:
                    found = self._manifest(ref.repository, str(entry.get("digest")), str(ref))
                    break
            else:
                raise ImageNotFoundError(f"image {ref}: no manifest for {'/'.join(platform)} in its index")
        if found.doc.get("schemaVersion") != 2 or not isinstance(found.doc.get("layers"), list):
            raise RegistryError(f"image {ref}: unsupported manifest (need OCI or Docker schema 2)")
        return found

    def _manifest(self, repository: str, reference: str, what: str) -> Manifest:
        accept = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
        try:
            with self._request(
                "GET",
                f"/v2/{repository}/manifests/{reference}",
                headers={"Accept": accept},
                repository=repository,
            ) as r:
                body = r.read(MAX_MANIFEST_BYTES + 1)
                media_type = r.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            raise self._fail(exc, f"image {what}") from exc
        if len(body) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"image {what}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatchError(f"image {what}: manifest hashes to {digest}, not {reference}")
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise RegistryError(f"image {what}: manifest is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise RegistryError(f"image {what}: manifest is not a JSON object")
        return Manifest(digest, str(doc.get("mediaType") or media_type), body, doc)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest of the manifest the registry holds under ``reference`` (a HEAD: its
        Docker-Content-Digest), None when it holds none: a pusher skips what the tag names already."""
        accept = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
        try:
            with self._request(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                headers={"Accept": accept},
                repository=repository,
            ) as r:
                digest = r.headers.get("Docker-Content-Digest", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                exc.close()
                return None
            raise self._fail(exc, f"image {self.registry}/{repository}:{reference}") from exc
        return digest if _DIGEST.match(digest) else None  # no (usable) header: unknown, push again

    def blob(self, repository: str, digest: str, dest: Path, max_bytes: int = MAX_BLOB_BYTES) -> Path:
        """Stream blob ``digest`` into ``dest``, verifying its sha256; nothing is left on failure."""
        check_digest(digest, f"{repository} blob")
        hasher = hashlib.sha256()
        size = 0
        try:
            with (
                self._request("GET", f"/v2/{repository}/blobs/{digest}", repository=repository) as r,
                dest.open("wb") as out,
            ):
                while chunk := r.read(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise RegistryError(  # noqa: TRY301 - the cleanup below must run
                            f"{repository} blob {digest}: larger than {max_bytes} bytes"
                        )
                    hasher.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            dest.unlink(missing_ok=True)
            raise self._fail(exc, f"{repository} blob {digest}") from exc
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            dest.unlink(missing_ok=True)
            raise DigestMismatchError(f"{repository} blob {digest}: content hashes to {actual}; refused")
        return dest

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` as a blob (monolithic upload); its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.upload_blob(repository, digest, len(data), data)
        return digest

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the registry already holds ``digest`` for ``repository``."""
        try:
            self._request("HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository).close()
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                return False
            raise self._fail(exc, f"push {repository} blob") from exc
        return True

    def upload_blob(self, repository: str, digest: str, size: int, data: bytes | Body) -> bool:
        """Upload a blob of ``size`` bytes whose digest the caller computed (monolithic PUT; a file is
        streamed, never read whole); False when the registry had it already. The registry checks the
        digest itself and refuses a body that does not match."""
        if self.has_blob(repository, digest):
            return False
        try:
            with self._request(
                "POST", f"/v2/{repository}/blobs/uploads/", data=b"", repository=repository
            ) as r:
                location = r.headers["Location"]
            sep = "&" if "?" in location else "?"
            url = location if location.startswith("/") else "/" + location.split("/", 3)[3]
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            self._request(
                "PUT", f"{url}{sep}digest={digest}", headers=headers, data=data, repository=repository
            ).close()
        except urllib.error.HTTPError as exc:
            raise self._fail(exc, f"push {repository} blob {digest}") from exc
        return True

    def push_manifest(
        self, repository: str, tag: str, manifest: bytes, media_type: str = MANIFEST_TYPES[0]
    ) -> str:
        """Put ``manifest`` under ``tag``; its digest."""
        try:
            self._request(
                "PUT",
                f"/v2/{repository}/manifests/{tag}",
                headers={"Content-Type": media_type},
                data=manifest,
                repository=repository,
            ).close()
        except urllib.error.HTTPError as exc:
            raise self._fail(exc, f"push {repository}:{tag}") from exc
        return "sha256:" + hashlib.sha256(manifest).hexdigest()
