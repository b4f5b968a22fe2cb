"""``nestlab image push`` throughput: a generated 100 MB image into Debian's docker-registry with token auth.

Stands up on loopback a one-member etcd, the real nestlab-apiserver (issuing registry tokens signed
with a lab-PKI registry key) and the real docker-registry (distribution 2.8, ``auth: token``). Writes
an OCI layout whose one layer is SIZE MB of random bytes (incompressible, an uncompressed tar layer:
what is measured is verification and upload, not gzip), then pushes it RUNS times, each run into a new
repository (so every blob is uploaded), exactly as the command does: open the source (digests checked)
then push (token fetched on the first 401). Prints each run and the median MB/s.

    .venv/bin/python bench/image_push.py [--size-mb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import ssl
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback import one_member_etcd, pki
from nestlab import imagepush
from nestlab.agent.registry import RegistryClient
from nestlab.agent.registryauth import TokenAuth
from nestlab.api import registrytoken
from nestlab.provision.pki import ensure_registry_token_cert
from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, free_port, start_apiserver, wait_until
from tests.integration.api.test_registry_tokens import _asks_for_token, _registry_config

MB = 1024 * 1024


def layout(directory: Path, size_mb: int) -> Path:
    """An OCI layout with one uncompressed layer holding ``size_mb`` MB of random bytes."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    tar_path = directory / "layer.tar"
    with tarfile.open(tar_path, "w") as tar:
        payload = directory / "payload"
        with payload.open("wb") as out:
            for _ in range(size_mb):
                out.write(os.urandom(MB))
        tar.add(payload, arcname="data/payload")
        payload.unlink()
    digest, size = imagepush.sha256_file(tar_path)
    tar_path.rename(blobs / digest.removeprefix("sha256:"))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest]}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": imagepush.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}
            ],
        }
    ).encode()
    for data in (config, manifest):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    entry = {
        "mediaType": imagepush.OCI_MANIFEST,
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "size": len(manifest),
    }
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return directory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nestlab-bench-push-"))
    started: list[proc.Process] = []
    try:
        certs = pki(work)
        etcd_url, etcd = one_member_etcd(work)
        started.append(etcd)
        signer = ensure_registry_token_cert(work / "registry-pki", "bench")
        url, api_proc, _ = start_apiserver(
            certs, [etcd_url], work, "--registry-token-signing-key-file", str(signer.key)
        )
        started.append(api_proc)
        port = free_port()
        config = work / "registry.yml"
        config.write_text(_registry_config(work / "storage", port, url + registrytoken.PATH, signer.cert))
        started.append(
            proc.spawn(["/usr/bin/docker-registry", "serve", str(config)], log=work / "registry.log")
        )
        wait_until(lambda: _asks_for_token(f"http://127.0.0.1:{port}/v2/"), "docker-registry", 30)
        source = layout(work / "image", args.size_mb)
        auth = TokenAuth(context=ssl.create_default_context(cafile=str(certs.ca)), bearer=ADMIN_TOKEN)
        client = RegistryClient(f"127.0.0.1:{port}", auth=auth)
        total = sum(p.stat().st_size for p in (source / "blobs" / "sha256").iterdir())
        rates: list[float] = []
        for run in range(args.runs):
            begin = time.monotonic()
            with imagepush.open_source(str(source)) as found:
                imagepush.push(found, client, f"bench/run-{run}", "1", progress=lambda _line: None)
            seconds = time.monotonic() - begin
            rates.append(total / MB / seconds)
            print(f"run {run + 1}: {total / MB:.1f} MB in {seconds:.2f} s = {rates[-1]:.1f} MB/s", flush=True)
        median = statistics.median(rates)
        print(f"nestlab image push, {args.size_mb} MB image, token auth: median {median:.1f} MB/s")
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
