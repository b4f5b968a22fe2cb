"""The pod control channel: pod-init's events, one JSON object per line, over virtio-serial.

pod-init writes ``init``, ``started``, ``exited``, ``failed`` and ``pod`` events (and, for probes,
lifecycle hooks and activeDeadlineSeconds, ``probe``, ``killing``, ``hook`` and ``deadline``) to the port
``nestlab.control``; QEMU connects that port to a unix socket the host listens on *before* QEMU
starts, so no event is lost however early pod-init writes it. The host writes ``stop`` to ask for
a graceful stop, and ``update``/``file``/``commit`` lines to give a ``files`` volume a new
generation (:func:`encode_update`), which pod-init acknowledges with a ``volume`` event.
Parsing is pure (:func:`parse_event`, :class:`LineSplitter`); :class:`Channel`
is the one place that touches the socket.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nestlab.errors import NestlabError
from nestlab.runtime import poddesc

MAX_LINE = 4096  # pod-init's events are under 512 bytes; anything longer is a broken peer


class ControlProtocolError(NestlabError):
    """pod-init sent something that is not a valid event line."""


@dataclass(frozen=True)
class Init:
    """pod-init is running (PID 1) and found the control port."""

    version: int


@dataclass(frozen=True)
class Started:
    """A container process was started."""

    container: str
    pid: int
    restarts: int


@dataclass(frozen=True)
class Exited:
    """A container process ended; ``code`` is 128+signal when killed, as a shell reports it."""

    container: str
    code: int
    signal: int
    restarts: int


@dataclass(frozen=True)
class Failed:
    """A container could not be started (``reason``: rootfs)."""

    container: str
    reason: str


@dataclass(frozen=True)
class PodDone:
    """Every container is done; pod-init powers the VM off next."""

    pod: str
    phase: Literal["Succeeded", "Failed"]
    reason: str = ""


@dataclass(frozen=True)
class VolumeUpdated:
    """pod-init swapped a ``files`` volume to the generation the host sent (``ok`` False: it kept the
    old one; the console says why)."""

    volume: str
    ok: bool


@dataclass(frozen=True)
class ProbeResult:
    """A probe attempt that failed, or one that changed the probe's state (thresholds applied)."""

    container: str
    probe: Literal["liveness", "readiness", "startup"]
    ok: bool
    """This attempt passed."""
    state: bool
    """The probe's state after it: readiness -> ready, startup -> started."""
    message: str = ""


@dataclass(frozen=True)
class Killing:
    """pod-init is stopping a container (preStop, SIGTERM, grace, SIGKILL) because ``reason``
    (liveness, startup, poststart) failed; ``restart``: the restart policy starts it again."""

    container: str
    reason: str
    restart: bool


@dataclass(frozen=True)
class HookFailed:
    """A lifecycle hook (postStart, preStop) failed."""

    container: str
    hook: str
    message: str


@dataclass(frozen=True)
class DeadlineExceeded:
    """The pod ran past its activeDeadlineSeconds: pod-init is stopping every container now (preStop,
    SIGTERM, grace period, SIGKILL) and sends :class:`PodDone` (reason DeadlineExceeded) once all
    are dead. Sent at the deadline, before any of those exits, because the kubelet reports the pod
    Failed at the deadline, not after the grace period; no container of it is started again."""

    pod: str


Event = (
    Init
    | Started
    | Exited
    | Failed
    | PodDone
    | VolumeUpdated
    | ProbeResult
    | Killing
    | HookFailed
    | DeadlineExceeded
)


def _int(obj: dict[str, object], name: str, line: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ControlProtocolError(f"event {line!r}: field {name!r} must be an integer")
    return value


def _str(obj: dict[str, object], name: str, line: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ControlProtocolError(f"event {line!r}: field {name!r} must be a string")
    return value


def _bool(obj: dict[str, object], name: str, line: str) -> bool:
    value = obj.get(name)
    if not isinstance(value, bool):
        raise ControlProtocolError(f"event {line!r}: field {name!r} must be true or false")
    return value


def _probe(obj: dict[str, object], line: str) -> ProbeResult:
    kinds: dict[str, Literal["liveness", "readiness", "startup"]] = {
        "liveness": "liveness",
        "readiness": "readiness",
        "startup": "startup",
    }
    kind = kinds.get(_str(obj, "probe", line))
    if kind is None:
        raise ControlProtocolError(f"event {line!r}: probe must be liveness, readiness or startup")
    message = _str(obj, "message", line) if "message" in obj else ""
    container = _str(obj, "container", line)
    return ProbeResult(container, kind, _bool(obj, "ok", line), _bool(obj, "state", line), message)


def _killing(obj: dict[str, object], line: str) -> Killing:
    return Killing(_str(obj, "container", line), _str(obj, "reason", line), _bool(obj, "restart", line))


def _hook(obj: dict[str, object], line: str) -> HookFailed:
    return HookFailed(_str(obj, "container", line), _str(obj, "hook", line), _str(obj, "message", line))


def _deadline(obj: dict[str, object], line: str) -> DeadlineExceeded:
    return DeadlineExceeded(_str(obj, "pod", line))


_LIFECYCLE: dict[str, Callable[[dict[str, object], str], Event]] = {
    "probe": _probe,
    "killing": _killing,
    "hook": _hook,
    "deadline": _deadline,
}


def parse_event(line: str) -> Event:  # noqa: PLR0911 - one return per event type
    """One event from one line; ControlProtocolError names what is wrong with it."""
    if len(line) > MAX_LINE:
        raise ControlProtocolError(f"event line of {len(line)} bytes exceeds {MAX_LINE}")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ControlProtocolError(f"event {line!r} is not JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise ControlProtocolError(f"event {line!r} is not a JSON object")
    kind = obj.get("event")
    if kind == "init":
        return Init(_int(obj, "version", line))
    if kind == "started":
        return Started(_str(obj, "container", line), _int(obj, "pid", line), _int(obj, "restarts", line))
    if kind == "exited":
        return Exited(
            _str(obj, "container", line),
            _int(obj, "code", line),
            _int(obj, "signal", line),
            _int(obj, "restarts", line),
        )
    if kind == "volume":
        return VolumeUpdated(_str(obj, "volume", line), _int(obj, "ok", line) == 1)
    if kind in _LIFECYCLE:
        return _LIFECYCLE[kind](obj, line)
    if kind == "failed":
        return Failed(_str(obj, "container", line), _str(obj, "reason", line))
    if kind == "pod":
        phase = _str(obj, "phase", line)
        reason = _str(obj, "reason", line) if "reason" in obj else ""
        if phase == "Succeeded":
            return PodDone(_str(obj, "pod", line), "Succeeded", reason)
        if phase == "Failed":
            return PodDone(_str(obj, "pod", line), "Failed", reason)
        raise ControlProtocolError(f"event {line!r}: phase must be Succeeded or Failed")
    raise ControlProtocolError(f"event {line!r}: unknown event type {kind!r}")


def encode_update(volume: str, files: tuple[poddesc.VolumeFile, ...]) -> bytes:
    """The host->pod message giving ``files`` volume ``volume`` a new generation (swapped atomically)."""
    lines = [f"update {volume}"]
    lines += [f"file {poddesc.quote(f.path)} {f.mode:04o} {poddesc.quote_bytes(f.content)}" for f in files]
    lines.append(f"commit {volume}")
    return ("\n".join(lines) + "\n").encode()


class LineSplitter:
    """Bytes in, complete lines out; keeps the partial tail for the next chunk."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The complete lines in ``chunk`` (plus what was left over before), without newlines."""
        data = self._tail + chunk
        *lines, self._tail = data.split(b"\n")
        if len(self._tail) > MAX_LINE:
            raise ControlProtocolError(f"control channel sent {len(self._tail)} bytes without a newline")
        return [line.decode("utf-8", "replace") for line in lines if line.strip()]


class Channel:
    """The host end: listen before QEMU starts, accept its connection, read events, send stop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._conn: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._split = LineSplitter()
        self._pending: list[Event] = []
        self.closed = False

    def chown(self, uid: int, gid: int) -> None:
        """Let an unprivileged QEMU connect."""
        os.chown(self.path, uid, gid)

    def _connection(self, deadline: float) -> socket.socket:
        if self._conn is None:
            self._server.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                self._conn, _ = self._server.accept()
            except TimeoutError as exc:
                raise ControlProtocolError(f"QEMU did not connect to {self.path}") from exc
        return self._conn

    def next_event(self, timeout: float) -> Event | None:
        """The next event, or None when the VM closed the channel; ControlProtocolError on timeout."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            if self.closed:
                return None
            conn = self._connection(deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ControlProtocolError(f"no event from the pod within {timeout:g}s")
            conn.settimeout(remaining)
            try:
                chunk = conn.recv(4096)
            except TimeoutError as exc:
                raise ControlProtocolError(f"no event from the pod within {timeout:g}s") from exc
            if not chunk:
                self.closed = True
                continue
            self._pending += [parse_event(line) for line in self._split.feed(chunk)]
        return self._pending.pop(0)

    def send_stop(self, timeout: float = 5.0) -> None:
        """Ask pod-init to stop the containers (SIGTERM, grace, SIGKILL) and power off."""
        conn = self._connection(time.monotonic() + timeout)
        conn.sendall(b"stop\n")

    def send_update(self, volume: str, files: tuple[poddesc.VolumeFile, ...], timeout: float = 30.0) -> None:
        """Send a new generation of ``volume``; pod-init answers with a :class:`VolumeUpdated` event."""
        if self._sender is None:  # its own socket object: the reader thread sets the other's timeout
            self._sender = self._connection(time.monotonic() + timeout).dup()
        self._sender.settimeout(timeout)
        self._sender.sendall(encode_update(volume, files))

    def close(self) -> None:
        """Close both sockets and remove the socket file."""
        if self._conn is not None:
            self._conn.close()
        if self._sender is not None:
            self._sender.close()
        self._server.close()
        self.path.unlink(missing_ok=True)
