"""An in-memory registry behind :class:`~nestlab.agent.registry.RegistryClient`'s protocol methods,
recording each call, for the unit tests of publishing (the real registry is in
tests/integration/agent/test_demo_publish.py)."""

from __future__ import annotations

import hashlib
import json

from nestlab.agent.registry import MANIFEST_TYPES, Body, RegistryClient


class FakeRegistry(RegistryClient):
    """Blobs per repository and tags -> manifest; ``calls`` lists (method, what) in order."""

    def __init__(self, registry: str = "depot:5000") -> None:
        super().__init__(registry)
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.tags: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple[str, str]] = []

    def uploads(self) -> list[str]:
        """What was sent: blob uploads and manifest puts (not the HEADs)."""
        return [what for method, what in self.calls if method in ("upload", "put")]

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        self.calls.append(("head-manifest", f"{repository}:{reference}"))
        body = self.tags.get((repository, reference))
        return None if body is None else "sha256:" + hashlib.sha256(body).hexdigest()

    def has_blob(self, repository: str, digest: str) -> bool:
        self.calls.append(("head-blob", f"{repository}@{digest}"))
        return (repository, digest) in self.blobs

    def upload_blob(self, repository: str, digest: str, size: int, data: bytes | Body) -> bool:
        assert isinstance(data, bytes)
        assert len(data) == size
        assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has_blob(repository, digest):
            return False
        self.calls.append(("upload", f"{repository}@{digest}"))
        self.blobs[repository, digest] = data
        return True

    def push_manifest(
        self, repository: str, tag: str, manifest: bytes, media_type: str = MANIFEST_TYPES[0]
    ) -> str:
        self.calls.append(("put", f"{repository}:{tag}"))
        doc = json.loads(manifest)
        for blob in (doc["config"], *doc["layers"]):  # docker-registry refuses a manifest without them
            assert (repository, blob["digest"]) in self.blobs, f"{repository}:{tag} names a missing blob"
        self.tags[repository, tag] = manifest
        return "sha256:" + hashlib.sha256(manifest).hexdigest()
