"""Measure a thing: extend its digest into the TPM and append the matching event to the log.

The extend and the log append happen under one exclusive lock on the log, so two pod launches on a
host cannot interleave (their events would be logged in one order and extended in another, and the
host would fail attestation). Order inside the lock: extend, then write the log atomically (temp
file + rename). If the log write fails after the extend, the PCR holds a measurement the log lacks
and the host fails attestation until it reboots: failing closed is the point. The log must start
empty at every TPM reset (keep it on a tmpfs such as /run, or call :meth:`Measurer.reset`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nestlab.trust import eventlog, pcrs
from nestlab.trust.errors import MeasurementError
from nestlab.trust.eventlog import Event, EventLog

_CHUNK = 1 << 20  # bytes read per step when hashing a file: kernels are tens of MB


class Extender(Protocol):
    """What measure() needs from a TPM (nestlab.trust.tpm.Tpm satisfies it)."""

    def pcr_extend(self, index: int, digest: bytes) -> None: ...


def file_digest(path: Path) -> str:
    """sha256 of a file's content, lowercase hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class PodLaunch:
    """What a pod microVM boots with."""

    pod: str
    """namespace/name of the pod."""
    kernel: Path
    initramfs: Path
    cmdline: str


class Measurer:
    """Measurements of one host: its TPM and its event log file."""

    def __init__(self, tpm: Extender, log_path: Path) -> None:
        self._tpm = tpm
        self.log_path = log_path

    def reset(self) -> None:
        """Start an empty log: call right after the TPM was reset (host boot)."""
        with self.locked():
            _write_atomic(self.log_path, EventLog().dumps())

    def read(self) -> EventLog:
        """The log as it is now (an empty log when the file does not exist yet)."""
        if not self.log_path.exists():
            return EventLog()
        return eventlog.parse(self.log_path.read_text())

    def measure(self, type_: str, description: str, data: Mapping[str, Any]) -> Event:
        """Extend the event's template digest into the PCR assigned to ``type_`` and log it."""
        pcr = pcrs.ASSIGNMENT.get(type_)
        if pcr is None:
            raise MeasurementError(f"no PCR is assigned to event type {type_!r} (see nestlab.trust.pcrs)")
        with self.locked():
            log = self.read()
            event = log.next_event(pcr, type_, description, data)
            self._tpm.pcr_extend(pcr, bytes.fromhex(event.digest))
            try:
                _write_atomic(self.log_path, log.with_event(event).dumps())
            except OSError as exc:
                raise MeasurementError(
                    f"extended PCR {pcr} but could not log it in {self.log_path} ({exc}); "
                    "this host will fail attestation until it reboots"
                ) from exc
        return event

    def measure_package(self, name: str, version: str, deb: Path) -> Event:
        """A host boot component: the .deb a package was installed from."""
        data = {"name": name, "version": version, "sha256": file_digest(deb)}
        return self.measure("package", f"{name} {version}", data)

    def measure_config(self, path: Path) -> Event:
        """The agent's configuration file."""
        return self.measure("config", f"config {path}", {"path": str(path), "sha256": file_digest(path)})

    def measure_pod_launch(self, launch: PodLaunch) -> tuple[Event, Event, Event]:
        """Kernel, initramfs and command line of a pod, before its microVM starts."""
        pod = launch.pod
        kernel = self.measure(
            "pod-kernel",
            f"pod {pod} kernel",
            {"pod": pod, "path": str(launch.kernel), "sha256": file_digest(launch.kernel)},
        )
        initramfs = self.measure(
            "pod-initramfs",
            f"pod {pod} initramfs",
            {"pod": pod, "path": str(launch.initramfs), "sha256": file_digest(launch.initramfs)},
        )
        cmdline = self.measure("pod-cmdline", f"pod {pod} cmdline", {"pod": pod, "cmdline": launch.cmdline})
        return kernel, initramfs, cmdline

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log lock: no measurement happens meanwhile (a quote and the log must agree)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.log_path.with_name(self.log_path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
