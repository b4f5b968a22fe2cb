"""The server side of one SPDY/3.1 connection from kubectl, over any byte channel.

kubectl's SPDY (Go's spdystream) opens every stream itself (odd ids), waits for a SYN_REPLY on each
(30 s), sends data and half-closes with FIN, pings, and ends with GOAWAY; the server only replies,
writes, half-closes and resets. That is all this session does, over a :class:`ByteChannel` (the raw
upgraded HTTP connection, a WebSocket tunnel, or an in-memory pipe in tests).

Flow control: spdystream never sends WINDOW_UPDATE and ignores the ones it gets, and it writes
without looking at any window. So this session does not wait for send windows (it would stall
every transfer above 64 KiB), and it does not enforce receive windows (kubectl would be cut off).
What bounds memory is TCP: each stream buffers at most :data:`STREAM_BUFFER` bytes the consumer
has not read, and while one is full the session stops reading the connection (as spdystream's
unbuffered channel does), so the peer's writes block in its kernel. The session still sends
WINDOW_UPDATE for what consumers read, so a client that does honour SPDY/3.1 windows never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Protocol

from nestlab.api import spdy

log = logging.getLogger(__name__)

STREAM_BUFFER: Final = 256 * 1024
"""Unread bytes one stream may hold before the session stops reading the connection."""
WRITE_CHUNK: Final = 32 * 1024
"""Largest DATA frame written: Go's io.Copy buffer size, so no stream hogs the connection."""
MAX_STREAMS: Final = 1000
"""Open streams per connection; kubectl uses 2 per port-forwarded connection and <= 5 per exec."""
LINGER_S: Final = 5.0
"""After GOAWAY, how long to wait for the client to hang up before closing (so it reads our tail)."""


class ByteChannel(Protocol):
    """Both directions of the connection's bytes."""

    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it closed its side."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes to the client, waiting while the transport's buffer is full."""
        ...

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        ...


class StreamClosed(spdy.SpdyError):
    """Writing to a stream the client reset, or after this side half-closed it or the connection ended."""


class _FrameReader:
    """Exact-length reads over a channel that returns arbitrary chunks."""

    def __init__(self, channel: ByteChannel) -> None:
        self._channel = channel
        self._buffer = bytearray()

    async def read_exactly(self, size: int, *, inside_frame: bool = False) -> bytes | None:
        """``size`` bytes; None on a clean end between frames; SpdyError on an end inside one."""
        while len(self._buffer) < size:
            chunk = await self._channel.read()
            if not chunk:
                if self._buffer or inside_frame:
                    raise spdy.SpdyError("the SPDY connection ended in the middle of a frame")
                return None
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


class SpdyStream:
    """One client-initiated stream: its headers, its incoming data, and our half of it."""

    def __init__(self, session: SpdySession, stream_id: int, headers: Mapping[str, Sequence[str]]) -> None:
        self.stream_id = stream_id
        self.headers = {name.lower(): list(values) for name, values in headers.items()}
        self._session = session
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.remote_closed = False
        """The client sent FIN or RST, or the connection ended: no more data will come."""
        self.local_closed = False
        """We sent FIN or RST: we write no more."""
        self.was_reset = False
        self._discard = False
        self._unacknowledged = 0

    def header(self, name: str) -> str:
        """The first value of a header ("" when absent); names are case-insensitive as on the wire."""
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    async def read(self) -> bytes:
        """The next data the client sent; b"" once it half-closed, reset, or the connection ended."""
        while not self._chunks:
            if self.remote_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._buffered < STREAM_BUFFER:
            self._room.set()
        self._unacknowledged += len(data)
        if self._unacknowledged >= spdy.DEFAULT_WINDOW // 2 and not self.remote_closed:
            delta, self._unacknowledged = self._unacknowledged, 0
            self._session.acknowledge(self.stream_id, delta)
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the client in DATA frames (none for empty data)."""
        for start in range(0, len(data), WRITE_CHUNK):
            if self.local_closed:
                raise StreamClosed(f"SPDY stream {self.stream_id} is closed")
            await self._session.send(spdy.Data(self.stream_id, data[start : start + WRITE_CHUNK]))

    async def close(self) -> None:
        """Half-close: an empty DATA frame with FIN (idempotent)."""
        if self.local_closed:
            return
        self.local_closed = True
        with contextlib.suppress(StreamClosed):
            await self._session.send(spdy.Data(self.stream_id, b"", fin=True))
        if self.remote_closed:
            self._session.forget(self)

    async def reset(self, status: int = spdy.RstStatus.CANCEL) -> None:
        """End both directions now (RST_STREAM), dropping what the client still sends."""
        already = self.local_closed and self.remote_closed
        self.local_closed = True
        self.abandon()
        if not already:
            with contextlib.suppress(StreamClosed):
                await self._session.send(spdy.RstStream(self.stream_id, status))
        self._session.forget(self)

    def abandon(self) -> None:
        """Stop reading: whatever the client still sends on this stream is dropped."""
        self._discard = True
        self._chunks.clear()
        self._buffered = 0
        self._room.set()
        self._finish_remote()
        if self.local_closed:
            self._session.forget(self)

    def _feed(self, data: bytes) -> None:
        if self._discard or self.remote_closed or not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._readable.set()
        if self._buffered >= STREAM_BUFFER:
            self._room.clear()

    async def _wait_room(self) -> None:
        await self._room.wait()

    def _finish_remote(self, *, reset: bool = False) -> None:
        self.remote_closed = True
        self.was_reset = self.was_reset or reset
        self._readable.set()
        if reset:
            self.local_closed = True


StreamCheck = Callable[[SpdyStream], str | None]
"""Decides on a new stream before its reply: None accepts it, a message rejects it (RST)."""


class SpdySession:
    """Serve one SPDY/3.1 connection: use as ``async with SpdySession(channel) as session``."""

    def __init__(self, channel: ByteChannel, check: StreamCheck | None = None) -> None:
        self._channel = channel
        self._check = check
        self._reader = _FrameReader(channel)
        self._compressor = spdy.HeaderCompressor()
        self._decompressor = spdy.HeaderDecompressor()
        self._write_lock = asyncio.Lock()
        self._streams: dict[int, SpdyStream] = {}
        self._accepted: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._last_stream_id = 0
        self._going_away = False
        self._closing = False
        self._broken = False
        self._background: set[asyncio.Task[None]] = set()
        self._unacknowledged = 0
        self._task: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()
        """Set once the client closed the connection (or it broke)."""

    async def __aenter__(self) -> SpdySession:
        self._task = asyncio.create_task(self._read_loop(), name="spdy-reader")
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def accept(self) -> SpdyStream | None:
        """The next stream the client opened (already replied to); None once the connection ended."""
        if self.ended.is_set() and self._accepted.empty():
            return None
        return await self._accepted.get()

    async def send(self, frame: spdy.Frame) -> None:
        """Write one frame; header blocks are compressed here, in sending order."""
        async with self._write_lock:
            if self._broken:
                raise StreamClosed("the SPDY connection is closed")
            data = spdy.encode(frame, self._compressor)
            try:
                await self._channel.write(data)
            except (ConnectionError, RuntimeError) as exc:
                self._broken = True
                raise StreamClosed(f"the SPDY connection is closed: {exc}") from exc

    def acknowledge(self, stream_id: int, delta: int) -> None:
        """WINDOW_UPDATE for data a consumer read (stream, and connection), for SPDY/3.1 clients.

        Sent in the background: a consumer's read never waits behind a write stuck on a full socket.
        """
        frames = [spdy.WindowUpdate(stream_id, delta)]
        self._unacknowledged += delta
        if self._unacknowledged >= spdy.DEFAULT_WINDOW // 2:
            frames.append(spdy.WindowUpdate(0, self._unacknowledged))
            self._unacknowledged = 0

        async def send_all() -> None:
            with contextlib.suppress(StreamClosed):
                for frame in frames:
                    await self.send(frame)

        task = asyncio.create_task(send_all())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def forget(self, stream: SpdyStream) -> None:
        self._streams.pop(stream.stream_id, None)

    async def close(self) -> None:
        """GOAWAY, give the client :data:`LINGER_S` to hang up, then close the connection.

        Also when cancelled meanwhile (aiohttp cancels a handler whose client hung up).
        """
        try:
            if not self._closing:
                self._closing = self._going_away = True
                for stream in list(self._streams.values()):
                    stream.abandon()
                with contextlib.suppress(StreamClosed):
                    await self.send(spdy.GoAway(self._last_stream_id, spdy.GoAwayStatus.OK))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ended.wait(), LINGER_S)
        finally:
            tasks = [*self._background, *([self._task] if self._task is not None else [])]
            for task in tasks:
                task.cancel()
            self._end()
            await self._channel.close()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _end(self) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        for stream in self._streams.values():
            stream._finish_remote()
        self._accepted.put_nowait(None)

    async def _read_loop(self) -> None:
        try:
            while True:
                head = await self._reader.read_exactly(spdy.HEADER_SIZE)
                if head is None:
                    return
                header = spdy.parse_header(head)
                payload = await self._reader.read_exactly(header.length, inside_frame=True)
                frame = spdy.decode(header, payload or b"", self._decompressor)
                if frame is not None:
                    await self._handle(frame)
        except spdy.SpdyError as exc:
            log.warning("SPDY connection from kubectl broken: %s", exc)
            with contextlib.suppress(StreamClosed):
                await self.send(spdy.GoAway(self._last_stream_id, spdy.GoAwayStatus.PROTOCOL_ERROR))
        except (ConnectionError, OSError) as exc:
            log.info("SPDY connection lost: %s", exc)
        finally:
            self._end()

    async def _handle(self, frame: spdy.Frame) -> None:
        match frame:
            case spdy.SynStream():
                await self._open(frame)
            case spdy.Data(stream_id, data, fin):
                stream = self._streams.get(stream_id)
                if stream is None:
                    return  # a stream we reset or forgot: drop, as spdystream does
                stream._feed(data)
                if fin:
                    stream._finish_remote()
                    self._forget_if_done(stream)
                await stream._wait_room()
            case spdy.RstStream(stream_id, _):
                stream = self._streams.pop(stream_id, None)
                if stream is not None:
                    stream._finish_remote(reset=True)
            case spdy.HeadersFrame(stream_id, _, fin) if fin:
                stream = self._streams.get(stream_id)
                if stream is not None:
                    stream._finish_remote()
            case spdy.Ping(ping_id) if ping_id % 2 == 1:
                await self.send(frame)  # client pings are odd; answer with the same id
            case spdy.GoAway():
                self._going_away = True
            case _:
                pass  # SETTINGS, WINDOW_UPDATE, replies to pings we never send: nothing to do

    async def _open(self, frame: spdy.SynStream) -> None:
        stream_id = frame.stream_id
        if stream_id % 2 == 0 or stream_id <= self._last_stream_id:
            await self.send(spdy.RstStream(stream_id, spdy.RstStatus.PROTOCOL_ERROR))
            return
        self._last_stream_id = stream_id
        if self._going_away or len(self._streams) >= MAX_STREAMS:
            await self.send(spdy.RstStream(stream_id, spdy.RstStatus.REFUSED_STREAM))
            return
        stream = SpdyStream(self, stream_id, frame.headers)
        problem = self._check(stream) if self._check is not None else None
        if problem is not None:
            log.info("SPDY stream %d rejected: %s", stream_id, problem)
            await self.send(spdy.RstStream(stream_id, spdy.RstStatus.CANCEL))
            return
        self._streams[stream_id] = stream
        if frame.fin:
            stream._finish_remote()
        if frame.unidirectional:
            stream.local_closed = True
        await self.send(spdy.SynReply(stream_id, {}))
        self._accepted.put_nowait(stream)

    def _forget_if_done(self, stream: SpdyStream) -> None:
        if stream.remote_closed and stream.local_closed:
            self._streams.pop(stream.stream_id, None)
