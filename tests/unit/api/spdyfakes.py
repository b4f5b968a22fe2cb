"""In-memory SPDY plumbing for unit tests: a byte pipe and a scripted kubectl-like client."""

from __future__ import annotations

import asyncio

from nestlab.api import spdy


class MemoryChannel:
    """The server's side of an in-memory connection (a ``ByteChannel``)."""

    def __init__(self) -> None:
        self.to_server: asyncio.Queue[bytes] = asyncio.Queue()
        self.to_client: asyncio.Queue[bytes] = asyncio.Queue()
        self.reads = 0
        self.closed = False

    async def read(self) -> bytes:
        self.reads += 1
        return await self.to_server.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        await self.to_client.put(data)

    async def close(self) -> None:
        self.closed = True


class FakeClient:
    """Speaks SPDY/3.1 to a :class:`MemoryChannel` as kubectl would (odd stream ids)."""

    def __init__(self, channel: MemoryChannel) -> None:
        self.channel = channel
        self.compressor = spdy.HeaderCompressor()
        self.decompressor = spdy.HeaderDecompressor()
        self.buffer = b""
        self.next_id = 1

    def send(self, frame: spdy.Frame) -> None:
        self.channel.to_server.put_nowait(spdy.encode(frame, self.compressor))

    def open(self, fin: bool = False, **headers: str) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        self.send(spdy.SynStream(stream_id, {k.lower(): [v] for k, v in headers.items()}, fin=fin))
        return stream_id

    def hang_up(self) -> None:
        self.channel.to_server.put_nowait(b"")

    async def frame(self, timeout: float = 5.0) -> spdy.Frame:
        """The next frame the server sent (ignoring WINDOW_UPDATE)."""
        while True:
            while (
                len(self.buffer) < spdy.HEADER_SIZE
                or len(self.buffer)
                < spdy.HEADER_SIZE + spdy.parse_header(self.buffer[: spdy.HEADER_SIZE]).length
            ):
                self.buffer += await asyncio.wait_for(self.channel.to_client.get(), timeout)
            header = spdy.parse_header(self.buffer[: spdy.HEADER_SIZE])
            end = spdy.HEADER_SIZE + header.length
            payload, self.buffer = self.buffer[spdy.HEADER_SIZE : end], self.buffer[end:]
            frame = spdy.decode(header, payload, self.decompressor)
            if frame is not None and not isinstance(frame, spdy.WindowUpdate):
                return frame

    async def data_until_fin(self, stream_id: int, timeout: float = 5.0) -> bytes:
        """Everything the server writes on ``stream_id`` until its FIN (other streams' data dropped)."""
        received = b""
        while True:
            frame = await self.frame(timeout)
            if isinstance(frame, spdy.Data) and frame.stream_id == stream_id:
                received += frame.data
                if frame.fin:
                    return received
