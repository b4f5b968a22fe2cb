"""Fixtures for the agent: a REAL distribution registry (Debian's docker-registry) on loopback.

``registry`` starts ``/usr/bin/docker-registry serve`` with its own config and storage in a temp
dir, waits for ``/v2/`` and stops it by PID afterwards (also on failure). ``busybox_root`` is a
container root with Debian's static busybox, from which tests build and push their own images
(``push_image``: each image is built once per session and pushed into each test's registry).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab.agent.registry import RegistryClient
from nestlab.images import oci
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


# Images built in this session, by the digest of their layer's tar and their recipe.
_BUILT: dict[str, tuple[bytes, bytes, bytes]] = {}


def push_image(
    registry: Registry, repository: str, tags: Sequence[str], root: Path, recipe: oci.Recipe
) -> str:
    """``oci.push``, with each image built once per session: ``oci.build`` is reproducible (the same
    root and recipe give the same bytes) and compressing the layer takes seconds on a loaded
    machine, while pushing it into each test's fresh registry does not. The manifest digest."""
    key = hashlib.sha256(oci.layer_tar(root) + repr(recipe).encode()).hexdigest()
    if key not in _BUILT:
        _BUILT[key] = oci.build(root, recipe)
    layer, config, manifest = _BUILT[key]
    client = RegistryClient(registry.address)
    client.push_blob(repository, layer)
    client.push_blob(repository, config)
    digest = ""
    for tag in tags:
        digest = client.push_manifest(repository, tag, manifest)
    return digest


@pytest.fixture
def busybox_root(tmp_path: Path) -> Path:
    root = disks.busybox_root(
        tmp_path / "busybox-root", applets=("sh", "echo", "cat", "httpd", "ls", "sleep", "wget", "uname")
    )
    (root / "etc" / "motd").write_text("hello from the image\n")
    return root


# The API server ladder (real etcd cluster + nestlab-apiserver over HTTPS) is shared with the API tests.
from tests.integration.api.conftest import (  # noqa: E402
    NODE_TOKEN,
    ApiServer,
    apiserver,
    etcd_cluster,
    pki,
    wait_until,
)

__all__ = ["apiserver", "etcd_cluster", "pki", "wait_until"]
NODE = "esx-07"  # the node the API tests' token file names (system:node:esx-07)


@dataclass
class AgentProcess:
    """A real ``nestlab-agent`` process; ``restart()`` keeps its state dir (and its pods' VMs)."""

    argv: list[str]
    state: Path
    log: Path
    log_url: str
    process: proc.Process | None = None

    def start(self) -> None:
        self.process = proc.spawn(self.argv, log=self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def pod_boot() -> tuple[Path, Path]:
    from nestlab.runtime import initramfs, kernel

    return kernel.build().vmlinux, initramfs.build().initramfs


def start_agent(
    apiserver: ApiServer, registry: Registry, pod_boot: tuple[Path, Path], tmp_path: Path, *extra: str
) -> AgentProcess:
    """Start the agent for node esx-07 against the real API server and registry."""
    import sys

    token = tmp_path / "node.token"
    token.write_text(NODE_TOKEN)
    state = Path(tempfile.mkdtemp(prefix="nla-"))  # short: pod sockets live under it (108-byte limit)
    port = free_port()
    argv = [
        sys.executable, "-m", "nestlab.agent.main",
        "--api-server", apiserver.url, "--ca", str(apiserver.pki.ca), "--token-file", str(token),
        "--node-name", NODE, "--node-ip", "127.0.0.1", "--state-dir", str(state),
        "--log-pods-dir", str(state / "log-pods"),  # not the outer machine's /var/log/pods
        "--registry", registry.address, "--cpu", "2000", "--memory", "1024",
        "--kernel", str(pod_boot[0]), "--initrd", str(pod_boot[1]), "--accel", "tcg",
        "--log-host", "127.0.0.1", "--log-port", str(port),
        "--tls-cert", str(apiserver.pki.server_cert), "--tls-key", str(apiserver.pki.server_key),
        *extra,
    ]  # fmt: skip
    agent = AgentProcess(argv, state, tmp_path / "agent.log", f"https://127.0.0.1:{port}")
    agent.start()
    return agent


def stop_agent(agent: AgentProcess) -> None:
    """Stop the agent, kill any QEMU it left (a failed test), print its log, remove its state."""
    agent.stop()
    _kill_leftover_qemus(agent.state)
    print(agent.log.read_text(errors="replace")[-4000:])
    shutil.rmtree(agent.state, ignore_errors=True)


@pytest.fixture
def node_agent(
    apiserver: ApiServer, registry: Registry, pod_boot: tuple[Path, Path], tmp_path: Path
) -> Iterator[AgentProcess]:
    """The agent without a pod network."""
    agent = start_agent(apiserver, registry, pod_boot, tmp_path)
    try:
        yield agent
    finally:
        stop_agent(agent)


POD_SUBNET = "198.18.247.0/28"  # lab range (never routed out); away from other tests' 198.18.241-245


@pytest.fixture
def networked_agent(
    apiserver: ApiServer, registry: Registry, pod_boot: tuple[Path, Path], tmp_path: Path
) -> Iterator[AgentProcess]:
    """The agent with a pod bridge of its own (root); the bridge and any tap are removed afterwards."""
    import os

    bridge = f"nlit{os.getpid() % 100000}"
    agent = start_agent(
        apiserver, registry, pod_boot, tmp_path, "--pod-subnet", POD_SUBNET, "--pod-bridge", bridge
    )
    try:
        yield agent
    finally:
        stop_agent(agent)
        remove_bridge(bridge)


def remove_bridge(bridge: str) -> None:
    """Delete the pod bridge an agent test made and every link still enslaved to it (its taps)."""
    for link in proc.run(
        ["ip", "-o", "link", "show", "master", bridge], timeout=10, check=False
    ).stdout.splitlines():
        proc.run(["ip", "link", "del", link.split(":")[1].strip().split("@")[0]], timeout=10, check=False)
    proc.run(["ip", "link", "del", bridge], timeout=10, check=False)


def qemu_pids(state: Path) -> list[int]:
    """PIDs of QEMUs whose command line names ``state`` (what a pod left running)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmdline and str(state).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _kill_leftover_qemus(state: Path) -> None:
    import os
    import signal

    for pid in qemu_pids(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
