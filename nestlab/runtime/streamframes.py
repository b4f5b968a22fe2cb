"""The pod stream protocol's frames: what the host and pod-init say on virtio-serial port ``nestlab.stream``.

``kubectl exec``, ``attach`` and ``port-forward`` reach a process or a port inside the pod VM
through one byte stream per pod (a virtio-serial port, a unix socket on the host), so every
session is multiplexed on it as frames: a 4-byte big-endian session id, a 1-byte type, a 4-byte
big-endian payload length (at most :data:`MAX_PAYLOAD`), the payload. The host picks the session
ids. pod-init's side is ``nestlab/runtime/podinit/streams.c``; this module is pure (bytes in,
frames out and back), so the codec is tested without a VM, and :mod:`nestlab.runtime.streams`
is the one place that touches the socket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from nestlab.errors import NestlabError
from nestlab.runtime.poddesc import quote

MAX_PAYLOAD = 65536  # pod-init's per-frame buffer; bigger writes are split into several DATA frames
HEADER = struct.Struct(">IBI")  # session id, type, payload length


class StreamProtocolError(NestlabError):
    """The other end sent something that is not a valid frame; the connection cannot be trusted."""


class FrameType(IntEnum):
    """Frame types: host -> pod below 16, pod -> host from 16."""

    OPEN = 1
    """Payload: the session's request (:func:`exec_request`, :func:`attach_request`, :func:`port_request`)."""
    DATA = 2
    """stdin of the process, or bytes for the forwarded socket."""
    EOF = 3
    """No more DATA: close the process's stdin, or shut the socket down for writing."""
    RESIZE = 4
    """Payload ascii ``COLS ROWS``: the terminal's new size (TTY sessions)."""
    CLOSE = 5
    """The host abandons the session: pod-init kills what it started, or closes the socket."""
    OPENED = 16
    """The session runs."""
    ERROR = 17
    """Payload: a message for the user; the session is over (or never started)."""
    STDOUT = 18
    """Output of the process (or of the attached container), or bytes from the forwarded socket."""
    STDERR = 19
    EXIT = 20
    """Payload ascii ``CODE SIGNAL``: the process (or the attached container, or the socket) ended."""


@dataclass(frozen=True)
class Frame:
    """One frame of the pod stream protocol."""

    session: int
    type: FrameType
    payload: bytes = b""


def encode(frame: Frame) -> bytes:
    """The frame's bytes on the wire."""
    if not 0 < frame.session <= 0xFFFFFFFF:
        raise ValueError(f"session id {frame.session} is out of range (1..2^32-1)")
    if len(frame.payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(frame.session, frame.type, len(frame.payload)) + frame.payload


def encode_data(session: int, kind: FrameType, data: bytes) -> list[bytes]:
    """``data`` as frames of ``kind``, split at :data:`MAX_PAYLOAD` (no frame for no data)."""
    return [encode(Frame(session, kind, data[i : i + MAX_PAYLOAD])) for i in range(0, len(data), MAX_PAYLOAD)]


class FrameDecoder:
    """Bytes in, complete frames out; keeps a partial frame for the next chunk."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Frame]:
        """The frames completed by ``chunk``; StreamProtocolError for a frame no peer may send."""
        self._buffer += chunk
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER.size:
            session, kind, length = HEADER.unpack_from(self._buffer)
            if length > MAX_PAYLOAD:
                raise StreamProtocolError(
                    f"frame of session {session} announces {length} bytes (max {MAX_PAYLOAD})"
                )
            if session == 0:
                raise StreamProtocolError("frame with session id 0")
            try:
                frame_type = FrameType(kind)
            except ValueError:
                raise StreamProtocolError(f"frame of session {session} has unknown type {kind}") from None
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(Frame(session, frame_type, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames


def _token(value: str) -> str:
    """One space-free token; an empty value travels as ``%00`` (pod-init's decode ends it there)."""
    return quote(value) or "%00"


def _flag(value: bool) -> str:
    return "1" if value else "0"


def exec_request(container: str, argv: tuple[str, ...] | list[str], *, tty: bool, stdin: bool) -> bytes:
    """OPEN payload: run ``argv`` in ``container`` (PATH lookup, the container's env and cwd)."""
    if not argv:
        raise ValueError("exec needs a command")
    words = ["exec", _token(container), _flag(tty), _flag(stdin), *(_token(a) for a in argv)]
    return " ".join(words).encode()


def attach_request(container: str, *, tty: bool, stdin: bool) -> bytes:
    """OPEN payload: follow the output of ``container``'s main process (and feed its stdin)."""
    return " ".join(["attach", _token(container), _flag(tty), _flag(stdin)]).encode()


def port_request(port: int) -> bytes:
    """OPEN payload: a TCP connection to ``port`` on the pod's localhost."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port (1..65535)")
    return f"port {port}".encode()


def resize_payload(cols: int, rows: int) -> bytes:
    """RESIZE payload: ``COLS ROWS`` (values clamped to what a winsize holds)."""
    return f"{max(0, min(cols, 0xFFFF))} {max(0, min(rows, 0xFFFF))}".encode()


def parse_exit(payload: bytes) -> tuple[int, int]:
    """(exit code, signal) of an EXIT payload; a process killed by signal S exits 128+S, as a shell says."""
    try:
        code_text, signal_text = payload.decode("ascii").split()
        code, signal = int(code_text), int(signal_text)
    except ValueError:
        raise StreamProtocolError(f"EXIT payload {payload!r} is not 'CODE SIGNAL'") from None
    if code == 0 and signal:
        code = 128 + signal
    return code, signal
