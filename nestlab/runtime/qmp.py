"""A minimal QMP (QEMU Machine Protocol) client: enough to stop, query and inspect a pod VM.

QMP is JSON over a unix socket: a greeting, ``qmp_capabilities`` to leave negotiation mode, then
one ``{"execute": ...}`` per request answered by ``{"return": ...}`` or ``{"error": ...}``, with
asynchronous ``{"event": ...}`` messages interleaved (kept in :attr:`Qmp.events`). No retries and
no threads: the launcher owns one connection per VM.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from nestlab.errors import NestlabError

CONNECT_TIMEOUT_S = 10.0  # QEMU creates its QMP socket within milliseconds of starting


class QmpError(NestlabError):
    """QMP could not be reached or a command failed; the message carries QEMU's error."""


class Qmp:
    """One QMP connection."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    @classmethod
    def connect(cls, path: Path, timeout: float = CONNECT_TIMEOUT_S) -> Qmp:
        """Connect (retrying until QEMU has created the socket), read the greeting, negotiate."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"no QMP socket at {path} after {timeout:g}s (did QEMU start?)") from exc
                time.sleep(0.05)
        sock.settimeout(timeout)
        qmp = cls(sock)
        greeting = qmp._read()
        if "QMP" not in greeting:
            raise QmpError(f"{path} did not greet with QMP: {greeting}")
        qmp.execute("qmp_capabilities")
        return qmp

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise QmpError("QMP did not answer in time") from exc
            if not chunk:
                raise QmpError("QEMU closed the QMP connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise QmpError(f"QMP sent a non-object: {line!r}")
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run ``command``; its ``return`` value, or QmpError with QEMU's description."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self._read()
            if "event" in message:
                self.events.append(message)
                continue
            if "error" in message:
                raise QmpError(f"QMP {command}: {message['error'].get('desc', message['error'])}")
            return message.get("return")

    def close(self) -> None:
        """Close the connection (QEMU keeps running)."""
        self._sock.close()
