"""``python -m nestlab.exercises.hello_image DIR``: write a small image as an OCI layout directory,
the learner's stand-in for ``docker build`` in exercise 4 (the lab machine has no container
engine). The image is busybox's httpd serving a page that says hello, built the way the lab's demo
images are (:mod:`nestlab.images.oci`), with a config of its own so its digest is new to every host.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from nestlab.agent.registry import MANIFEST_TYPES
from nestlab.images import oci
from nestlab.runtime import disks

APPLETS = ("sh", "httpd", "cat", "echo", "hostname", "uname")
COMMAND = "echo hello from $(hostname) on kernel $(uname -r) > /www/index.html; exec httpd -f -p 80 -h /www"
TAG = "1"


def _blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}"


def write_layout(layout: Path) -> str:
    """Write the hello image into ``layout`` (an OCI image layout); its manifest digest."""
    with tempfile.TemporaryDirectory(prefix="nestlab-hello-") as tmp:
        root = disks.busybox_root(Path(tmp) / "hello", applets=APPLETS)
        (root / "www").mkdir()
        layer, config, manifest = oci.build(
            root, oci.Recipe(cmd=("sh", "-c", COMMAND), env={"GREETING": "hello"})
        )
    layout.mkdir(parents=True, exist_ok=True)
    _blob(layout, layer)
    _blob(layout, config)
    digest = _blob(layout, manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {
        "mediaType": MANIFEST_TYPES[0],
        "digest": digest,
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": TAG},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return digest


def main(argv: list[str]) -> int:
    """Entry point: one argument, the directory to write."""
    if len(argv) != 1:
        print("usage: python -m nestlab.exercises.hello_image DIR", file=sys.stderr)
        return 2
    digest = write_layout(Path(argv[0]))
    print(f"wrote image hello:{TAG} to {argv[0]} (an OCI layout), manifest {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
