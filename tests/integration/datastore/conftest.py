"""Fixtures for the lab datastore: lab PKI (the real issuing code) -> the REAL nestlab-datastore process.

The service runs as a process on 127.0.0.1 with mutual TLS, exporting volumes through the REAL
qemu-storage-daemon; tests talk to it with the one client the controller uses. Every process is
stopped by PID (the service, then any export it left running) and every directory removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nestlab.datastore.client import DatastoreClient, DatastoreConfig
from nestlab.datastore.exports import runs
from nestlab.provision import pki
from nestlab.runtime import proc

T = TypeVar("T")
PORTS = 12  # NBD ports the test service may use


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_range(count: int) -> tuple[int, int]:
    """``count`` consecutive ports that are free now (searched from a random free port)."""
    for _ in range(50):
        start = free_port()
        if start + count > 65535:
            continue
        ok = True
        for port in range(start, start + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return start, start + count - 1
    raise AssertionError("no range of free ports")


def wait_until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready after {timeout:g}s (last error: {last})")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@dataclass(frozen=True)
class LabPki:
    ca: pki.Issued
    depot: pki.Issued
    controller: pki.Issued
    node: pki.Issued


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPki:
    """The lab CA, the depot's serving certificate (127.0.0.1), the controller's and a node's client
    certificates, made by nestlab.provision.pki as ``nestlab up`` makes them."""
    directory = tmp_path_factory.mktemp("datastore-pki")
    ca = pki.ensure_ca(directory, "dstest")
    depot = pki.issue(directory, ca, "depot", dns=("depot",), ips=(IPv4Address("127.0.0.1"),))
    controller = pki.issue(directory, ca, "controller", organization="nestlab:admins", server=False)
    node = pki.issue(directory, ca, "system:node:esx-01", organization="system:nodes", server=False)
    return LabPki(ca, depot, controller, node)


class Datastore:
    """One nestlab-datastore process over a state directory; ``restart`` keeps the directory."""

    def __init__(self, lab_pki: LabPki, state: Path, allow: str = "controller") -> None:
        self.pki = lab_pki
        self.allow = allow
        self.state = state
        self.port = free_port()
        self.ports = free_range(PORTS)
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = state.parent / f"{state.name}.log"
        self.process: proc.Process | None = None

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "nestlab.datastore.main",
            "--listen", "127.0.0.1", "--port", str(self.port),
            "--export-address", "127.0.0.1", "--port-range", f"{self.ports[0]}-{self.ports[1]}",
            "--state-dir", str(self.state),
            "--tls-cert", str(self.pki.depot.cert), "--tls-key", str(self.pki.depot.key),
            "--client-ca", str(self.pki.ca.cert), "--allow-client", self.allow,
        ]  # fmt: skip
        self.process = proc.spawn(argv, log=self.log)
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(self.pki.controller.cert), str(self.pki.controller.key))

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"nestlab-datastore exited: {self.log.read_text()[-2000:]}")
            with urllib.request.urlopen(f"{self.url}/healthz", context=context, timeout=2) as answer:  # noqa: S310
                return bool(answer.status == 200)

        wait_until(healthy, "nestlab-datastore")

    def stop(self) -> None:
        if self.process is not None:
            assert self.process.stop(grace=10) == 0, self.log.read_text()[-2000:]
            self.process = None

    def client(self, who: pki.Issued | None = None) -> DatastoreClient:
        who = who or self.pki.controller
        return DatastoreClient(DatastoreConfig(self.url, self.pki.ca.cert, who.cert, who.key))

    def export_pids(self) -> dict[str, int]:
        """volume id -> the PID of its export, from the state file."""
        state = json.loads((self.state / "state.json").read_text())
        return {v["id"]: v["attachment"]["pid"] for v in state["volumes"] if v["attachment"]}

    def kill_exports(self) -> None:
        for volume_id, pid in self.export_pids().items():
            if runs(pid, self.state / "volumes" / f"{volume_id}.raw"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def datastore(lab_pki: LabPki, tmp_path: Path) -> Iterator[Datastore]:
    """A running datastore; at the end the service and every export it left are stopped."""
    service = Datastore(lab_pki, tmp_path / "datastore")
    try:
        service.start()
        yield service
    finally:
        service.stop()
        service.kill_exports()
        text = service.log.read_text() if service.log.exists() else ""
        shutil.rmtree(service.state, ignore_errors=True)
    assert "Traceback" not in text, text[-4000:]
