"""SPDY/3.1 frames and the compressed name/value header block, as bytes in and bytes out.

kubectl 1.20 does exec/attach/cp/port-forward over SPDY/3.1 only, and newer kubectl still
port-forwards over it (plain, or tunneled inside a WebSocket). No maintained Python SPDY library
exists, so the lab implements the small part of the protocol kubectl uses: this module is the
pure part (no I/O), :mod:`nestlab.api.spdysession` drives it over a connection.

Wire format (SPDY/3.1 draft, section 2.2): a control frame starts with the bit C=1, a 15-bit
version (3) and a 16-bit type, then 8 bits of flags and a 24-bit length; a data frame starts
with C=0 and a 31-bit stream id, then flags and length. Header blocks (SYN_STREAM, SYN_REPLY,
HEADERS) are compressed with ONE zlib stream per direction for the whole connection, primed with
the dictionary below, each block ending with a sync flush (as Go's framer does).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from nestlab.errors import NestlabError

VERSION: Final = 3
HEADER_SIZE: Final = 8
MAX_LENGTH: Final = 0xFFFFFF
"""The 24-bit length field's limit: no frame can carry more."""
MAX_HEADER_BLOCK: Final = 64 * 1024
"""Decompressed header block limit: kubectl's blocks are a few dozen bytes; this stops zlib bombs."""
FLAG_FIN: Final = 0x01
FLAG_UNIDIRECTIONAL: Final = 0x02
DEFAULT_WINDOW: Final = 64 * 1024
"""SPDY/3.1 section 2.6.8: every stream and the connection start with a 64 KiB window."""


class FrameType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    """RST_STREAM status codes (section 2.6.3)."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class GoAwayStatus(IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SpdyError(NestlabError):
    """The peer sent bytes that are not SPDY/3.1 as this server speaks it."""


def _words(*words: str) -> bytes:
    return b"".join(struct.pack(">I", len(word)) + word.encode("ascii") for word in words)


# The SPDY/3 header compression dictionary: a protocol constant, SPDY Protocol draft 3,
# section 2.6.10.1 "Compression" (http://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3).
# It is length-prefixed header names and common values, then a run of status codes, reason phrases,
# dates and media types. The peer's zlib header names its adler32 (FDICT); a unit test checks ours
# against the one in a header block captured from real kubectl.
HEADER_DICTIONARY: Final = _words(
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
) + (
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    b"203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    b"403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    b"chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)  # fmt: skip

Headers = Mapping[str, Sequence[str]]
"""Header names (lower case on the wire) to their values (NUL-separated on the wire)."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    fin: bool = False
    unidirectional: bool = False
    associated_to: int = 0
    priority: int = 0


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()
    """(flags, id, value) per setting."""
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GoAwayStatus.OK


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


Frame = SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway | WindowUpdate | Data


class HeaderCompressor:
    """One direction's header zlib stream: blocks must be compressed in the order they are sent."""

    def __init__(self) -> None:
        # Level 9 and a sync flush per block, as Go's framer (kubectl's side) does.
        self._zlib = zlib.compressobj(level=9, zdict=HEADER_DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        block = [struct.pack(">I", len(headers))]
        for name, values in headers.items():
            raw_name = name.lower().encode()
            raw_value = b"\0".join(value.encode() for value in values)
            block += [
                struct.pack(">I", len(raw_name)),
                raw_name,
                struct.pack(">I", len(raw_value)),
                raw_value,
            ]
        return self._zlib.compress(b"".join(block)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The other direction's header zlib stream: blocks must be fed in the order they arrive."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def decompress(self, compressed: bytes) -> dict[str, list[str]]:
        try:
            raw = self._zlib.decompress(compressed, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyError(f"cannot decompress a SPDY header block: {exc}") from exc
        if self._zlib.unconsumed_tail:
            raise SpdyError(f"a SPDY header block is larger than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(raw)


def parse_header_block(raw: bytes) -> dict[str, list[str]]:
    """The uncompressed name/value block: count, then (length, name, length, values) pairs."""
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        offset = 4
        headers: dict[str, list[str]] = {}
        for _ in range(count):
            (length,) = struct.unpack_from(">I", raw, offset)
            name = raw[offset + 4 : offset + 4 + length].decode().lower()
            offset += 4 + length
            (length,) = struct.unpack_from(">I", raw, offset)
            value = raw[offset + 4 : offset + 4 + length].decode()
            offset += 4 + length
            if offset > len(raw):
                raise SpdyError("a SPDY header block is truncated")
            headers.setdefault(name, []).extend(value.split("\0"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"a SPDY header block is malformed: {exc}") from exc
    return headers


def _control(frame_type: FrameType, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise SpdyError(f"a SPDY frame cannot carry {len(payload)} bytes")
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload


def encode(frame: Frame, compressor: HeaderCompressor) -> bytes:  # noqa: PLR0911 - one per frame type
    """The frame's bytes; header blocks go through ``compressor`` (call in sending order)."""
    match frame:
        case Data(stream_id, data, fin):
            if len(data) > MAX_LENGTH:
                raise SpdyError(f"a SPDY data frame cannot carry {len(data)} bytes")
            flags = FLAG_FIN if fin else 0
            return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data
        case SynStream(stream_id, headers, fin, unidirectional, associated_to, priority):
            flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
            head = struct.pack(">IIBB", stream_id, associated_to, (priority & 7) << 5, 0)
            return _control(FrameType.SYN_STREAM, flags, head + compressor.compress(headers))
        case SynReply(stream_id, headers, fin):
            payload = struct.pack(">I", stream_id) + compressor.compress(headers)
            return _control(FrameType.SYN_REPLY, FLAG_FIN if fin else 0, payload)
        case HeadersFrame(stream_id, headers, fin):
            payload = struct.pack(">I", stream_id) + compressor.compress(headers)
            return _control(FrameType.HEADERS, FLAG_FIN if fin else 0, payload)
        case RstStream(stream_id, status):
            return _control(FrameType.RST_STREAM, 0, struct.pack(">II", stream_id, status))
        case Settings(entries, clear):
            payload = struct.pack(">I", len(entries)) + b"".join(
                struct.pack(">II", (flags << 24) | ident, value) for flags, ident, value in entries
            )
            return _control(FrameType.SETTINGS, 1 if clear else 0, payload)
        case Ping(ping_id):
            return _control(FrameType.PING, 0, struct.pack(">I", ping_id))
        case GoAway(last_good, status):
            return _control(FrameType.GOAWAY, 0, struct.pack(">II", last_good, status))
        case WindowUpdate(stream_id, delta):
            return _control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))
    raise SpdyError(f"cannot encode {frame!r}")  # pragma: no cover - the match is exhaustive


@dataclass(frozen=True)
class FrameHeader:
    """The first 8 bytes of a frame: enough to know how many more to read."""

    control: bool
    frame_type: int
    """The control frame type, or the data frame's stream id."""
    flags: int
    length: int


def parse_header(head: bytes) -> FrameHeader:
    first, second = struct.unpack(">II", head)
    flags, length = second >> 24, second & MAX_LENGTH
    if first & 0x80000000:
        version = (first >> 16) & 0x7FFF
        if version != VERSION:
            raise SpdyError(f"SPDY version {version} is not supported (this server speaks SPDY/3.1)")
        return FrameHeader(True, first & 0xFFFF, flags, length)
    return FrameHeader(False, first & 0x7FFFFFFF, flags, length)


def decode(header: FrameHeader, payload: bytes, decompressor: HeaderDecompressor) -> Frame | None:
    """The frame; None for a control frame type this server ignores (as the spec asks)."""
    try:
        return _decode(header, payload, decompressor)
    except struct.error as exc:
        raise SpdyError(f"a SPDY frame of type {header.frame_type} is too short: {exc}") from exc


def _decode(  # noqa: PLR0911 - one return per frame type
    header: FrameHeader, payload: bytes, decompressor: HeaderDecompressor
) -> Frame | None:
    fin = bool(header.flags & FLAG_FIN)
    if not header.control:
        return Data(header.frame_type, payload, fin)
    kind = header.frame_type
    if kind == FrameType.SYN_STREAM:
        stream_id, associated, priority = struct.unpack_from(">IIB", payload)
        headers = decompressor.decompress(payload[10:])
        return SynStream(
            stream_id & 0x7FFFFFFF,
            headers,
            fin,
            bool(header.flags & FLAG_UNIDIRECTIONAL),
            associated & 0x7FFFFFFF,
            priority >> 5,
        )
    if kind in (FrameType.SYN_REPLY, FrameType.HEADERS):
        (stream_id,) = struct.unpack_from(">I", payload)
        headers = decompressor.decompress(payload[4:])
        if kind == FrameType.SYN_REPLY:
            return SynReply(stream_id & 0x7FFFFFFF, headers, fin)
        return HeadersFrame(stream_id & 0x7FFFFFFF, headers, fin)
    if kind == FrameType.RST_STREAM:
        stream_id, status = struct.unpack_from(">II", payload)
        return RstStream(stream_id & 0x7FFFFFFF, status)
    if kind == FrameType.SETTINGS:
        (count,) = struct.unpack_from(">I", payload)
        entries = []
        for index in range(count):
            word, value = struct.unpack_from(">II", payload, 4 + 8 * index)
            entries.append((word >> 24, word & 0xFFFFFF, value))
        return Settings(tuple(entries), bool(header.flags & 1))
    if kind == FrameType.PING:
        return Ping(struct.unpack_from(">I", payload)[0])
    if kind == FrameType.GOAWAY:
        last_good, status = struct.unpack_from(">II", payload)
        return GoAway(last_good & 0x7FFFFFFF, status)
    if kind == FrameType.WINDOW_UPDATE:
        stream_id, delta = struct.unpack_from(">II", payload)
        return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
    return None
