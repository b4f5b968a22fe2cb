"""A small in-test pod-init for the stream protocol: connects to the host's socket as QEMU would.

It answers OPEN requests with scripted behaviour, enough to drive the host multiplexer and the
agent's endpoints without a VM:

- ``exec C T S echo WORDS...``: STDOUT of the words, EXIT ``0 0``;
- ``exec C T S fail N``: STDERR ``failing``, EXIT ``N 0``;
- ``exec C T S cat``: echoes DATA as STDOUT; EOF ends it with EXIT ``0 0``; RESIZE is echoed
  as STDOUT ``size ROWS COLS`` (what ``stty size`` prints);
- ``exec C T S flood N``: N bytes of STDOUT in 64 KiB frames, then EXIT ``0 0``;
- ``exec C T S hang``: OPENED, then nothing (until CLOSE);
- ``exec C T S nope``: ERROR ``exec: "nope": executable file not found in $PATH``;
- ``attach C ...``: OPENED, STDOUT ``attached``, then EXIT ``0 0`` when the test calls
  :meth:`FakePod.end_attach`;
- ``port 7``: an echo connection; ``port 9``: ERROR connection refused; ``port 5``: a server that
  half-closes at once (EXIT ``0 0`` right after OPENED) and still takes DATA (kept in ``received``).

Every frame it received is kept in ``received`` (what a test checks, e.g. a CLOSE).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from nestlab.runtime import streamframes as sf
from nestlab.runtime.poddesc import unquote
from nestlab.runtime.streamframes import Frame, FrameType


class FakePod:
    """The pod side of one connection."""

    def __init__(self) -> None:
        self.received: list[Frame] = []
        self.requests: dict[int, list[str]] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.attached: list[int] = []
        self.half_closed: set[int] = set()
        self.hold_reading = asyncio.Event()
        self.hold_reading.set()

    async def connect(self, path: Path) -> None:
        """Connect to the host's socket (QEMU's role) and start answering."""
        self.reader, self.writer = await asyncio.open_unix_connection(str(path))
        self.task = asyncio.create_task(self._serve())

    async def close(self) -> None:
        """Drop the connection, as QEMU exiting would."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()

    def send(self, session: int, kind: FrameType, payload: bytes = b"") -> None:
        assert self.writer is not None
        for chunk in [payload[i : i + sf.MAX_PAYLOAD] for i in range(0, len(payload), sf.MAX_PAYLOAD)] or [
            b""
        ]:
            self.writer.write(sf.encode(Frame(session, kind, chunk)))

    async def end_attach(self) -> None:
        for session in self.attached:
            self.send(session, FrameType.EXIT, b"0 0")
        assert self.writer is not None
        await self.writer.drain()

    async def _serve(self) -> None:
        assert self.reader is not None
        decoder = sf.FrameDecoder()
        while chunk := await self.reader.read(65536):
            for frame in decoder.feed(chunk):
                await self.hold_reading.wait()
                self.received.append(frame)
                await self._answer(frame)

    async def _answer(self, frame: Frame) -> None:
        assert self.writer is not None
        sid = frame.session
        if frame.type == FrameType.OPEN:
            words = [unquote(w) for w in frame.payload.decode().split(" ")]
            self.requests[sid] = words
            await self._open(sid, words)
        elif frame.type == FrameType.DATA and sid in self.requests and sid not in self.half_closed:
            self.send(sid, FrameType.STDOUT, frame.payload)
        elif frame.type == FrameType.EOF and sid in self.requests:
            self.send(sid, FrameType.EXIT, b"0 0")
        elif frame.type == FrameType.RESIZE and sid in self.requests:
            cols, rows = frame.payload.decode().split()
            self.send(sid, FrameType.STDOUT, f"size {rows} {cols}\n".encode())
        await self.writer.drain()

    async def _open(self, sid: int, words: list[str]) -> None:
        if words[0] == "port":
            if words[1] == "9":
                self.send(sid, FrameType.ERROR, b"dial tcp4 127.0.0.1:9: connect: connection refused")
            else:
                self.send(sid, FrameType.OPENED)
            if words[1] == "5":
                self.half_closed.add(sid)
                self.send(sid, FrameType.EXIT, b"0 0")
            return
        if words[0] == "attach":
            self.send(sid, FrameType.OPENED)
            self.send(sid, FrameType.STDOUT, b"attached\n")
            self.attached.append(sid)
            return
        argv = words[4:]
        if argv[0] == "nope":
            self.send(sid, FrameType.ERROR, b'exec: "nope": executable file not found in $PATH')
            return
        self.send(sid, FrameType.OPENED)
        if argv[0] == "echo":
            self.send(sid, FrameType.STDOUT, (" ".join(argv[1:]) + "\n").encode())
            self.send(sid, FrameType.EXIT, b"0 0")
        elif argv[0] == "fail":
            self.send(sid, FrameType.STDERR, b"failing\n")
            self.send(sid, FrameType.EXIT, f"{argv[1]} 0".encode())
        elif argv[0] == "flood":
            self.send(sid, FrameType.STDOUT, b"x" * int(argv[1]))
            self.send(sid, FrameType.EXIT, b"0 0")
