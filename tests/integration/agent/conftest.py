"""Fixtures for the agent: a REAL distribution registry (Debian's docker-registry) on loopback.

``registry`` starts ``/usr/bin/docker-registry serve`` with its own config and storage in a temp
dir, waits for ``/v2/`` and stops it by PID afterwards (also on failure). ``busybox_root`` is a
container root with Debian's static busybox, from which tests build and push their own images.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab.runtime import disks, proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Registry:
    address: str
    """host:port"""
    storage: Path
    process: proc.Process
    log: Path


def _config(storage: Path, port: int) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


def start_registry(directory: Path) -> Registry:
    storage = directory / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "config.yml"
    config.write_text(_config(storage, port))
    log = directory / "registry.log"
    process = proc.spawn(["/usr/bin/docker-registry", "serve", str(config)], log=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                break
        except (urllib.error.URLError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.stop()
                raise AssertionError(f"docker-registry did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    return Registry(f"127.0.0.1:{port}", storage, process, log)


@pytest.fixture
def registry() -> Iterator[Registry]:
    directory = Path(tempfile.mkdtemp(prefix="nestlab-registry-"))
    reg = start_registry(directory)
    try:
        yield reg
    finally:
        reg.process.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def busybox_root(tmp_path: Path) -> Path:
    root = disks.busybox_root(tmp_path / "busybox-root", applets=("sh", "echo", "cat", "httpd", "ls"))
    (root / "etc" / "motd").write_text("hello from the image\n")
    return root
