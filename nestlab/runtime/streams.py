"""The host end of a pod's stream port: exec, attach and port-forward sessions to pod-init.

Every pod VM has a virtio-serial port ``nestlab.stream`` whose host end is a unix socket in the
pod's work directory; the host listens on it *before* QEMU starts (as for the control port) and
QEMU connects with ``reconnect=1``, so an agent that restarts listens again at the same path and
the VM comes back to it. All sessions of a pod share that one connection as frames
(:mod:`nestlab.runtime.streamframes`). :class:`PodStreams` is the multiplexer (asyncio): it
accepts QEMU's connection on first use, opens sessions (``OPEN``, then ``OPENED`` or ``ERROR``),
routes pod-init's frames to them and ends them all with a :class:`Failure` when the connection
drops. A slow reader holds the others back rather than filling memory: while one session has
:data:`QUEUE_LIMIT` bytes unread the multiplexer stops reading the socket, and pod-init in turn
stops reading that process's output (backpressure, no byte dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from nestlab.errors import NestlabError
from nestlab.runtime import streamframes as sf
from nestlab.runtime.streamframes import Frame, FrameType

OPEN_TIMEOUT_S = 60.0  # QEMU connecting + pod-init answering; generous for TCG guests on a busy host
STALL_S = 15.0
"""No answer to an OPEN for this long on a connection with no other session: the connection is
reset once. QEMU (7.2) can leave a virtio-serial port throttled for good when the guest wrote just
as the previous host end closed (an agent restart); a new disconnect clears the throttle."""
QUEUE_LIMIT = 1 << 20  # unread bytes per session before the multiplexer stops reading the port
READ_CHUNK = sf.MAX_PAYLOAD + sf.HEADER.size
log = logging.getLogger(__name__)
_REMEMBERED = 256  # unknown session ids already told to CLOSE (old sessions of a previous agent)


class PodStreamError(NestlabError):
    """A stream session could not be opened or used; the message says what to check."""


class SessionRefusedError(PodStreamError):
    """pod-init refused the session (container not found or not running, exec failed, connect refused)."""


@dataclass(frozen=True)
class Output:
    """Bytes the process wrote (``stderr`` False: stdout, or the forwarded socket's bytes)."""

    data: bytes
    stderr: bool = False


@dataclass(frozen=True)
class Exit:
    """The session ended: the process exited (``code``: 128+signal when killed), or the socket closed."""

    code: int
    signal: int


@dataclass(frozen=True)
class Failure:
    """The session ended without an exit status: pod-init's error, or the connection was lost."""

    message: str


SessionEvent = Output | Exit | Failure


class Session:
    """One exec, attach or port session: :meth:`send` towards the pod, :meth:`receive` from it."""

    def __init__(self, mux: PodStreams, session_id: int, limit: int, *, half_close: bool = False) -> None:
        self.id = session_id
        self._half_close = half_close
        self._writable = True
        self._eof_sent = False
        self._mux = mux
        self._limit = limit
        self._events: deque[SessionEvent] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished = False
        """pod-init ended the session (EXIT, ERROR) or the connection was lost; events may remain."""
        self.closed = False
        """The host closed it (:meth:`close`)."""

    @property
    def queued(self) -> int:
        """Output bytes received and not yet taken by :meth:`receive`."""
        return self._queued

    async def send(self, data: bytes) -> None:
        """stdin, or bytes for the forwarded socket; dropped once the session ended (a port session
        stays writable after the pod's side closed, as a half-closed TCP connection does)."""
        if data and self._writable and not (self._eof_sent or self.closed):
            await self._mux.send_frames(sf.encode_data(self.id, FrameType.DATA, data))

    async def send_eof(self) -> None:
        """No more input: the process's stdin closes, or the socket is shut down for writing."""
        if self._writable and not (self._eof_sent or self.closed):
            self._eof_sent = True
            await self._mux.send_frames([sf.encode(Frame(self.id, FrameType.EOF))])

    async def resize(self, cols: int, rows: int) -> None:
        """The client's terminal has a new size (TTY sessions)."""
        if not (self.finished or self.closed):
            frame = Frame(self.id, FrameType.RESIZE, sf.resize_payload(cols, rows))
            await self._mux.send_frames([sf.encode(frame)])

    async def receive(self) -> SessionEvent | None:
        """The next :class:`Output`, then one :class:`Exit` or :class:`Failure`; None after that."""
        while not self._events:
            if self.finished or self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        event = self._events.popleft()
        if isinstance(event, Output):
            self._queued -= len(event.data)
            if self._queued < self._limit:
                self._space.set()
        return event

    async def close(self) -> None:
        """Abandon the session (idempotent): pod-init kills the process or closes the socket."""
        if self.closed:
            return
        self.closed = True
        self._ready.set()
        self._space.set()
        kind = None
        if self._mux.forget(self.id) and not self.finished:
            kind = FrameType.CLOSE
        elif self._writable and not self._eof_sent and self.finished:
            kind = FrameType.EOF  # a half-closed port: pod-init finishes the socket gracefully
        if kind is not None:
            with contextlib.suppress(PodStreamError):
                await self._mux.send_frames([sf.encode(Frame(self.id, kind))])

    async def deliver(self, event: Output) -> None:
        """Queue output (the multiplexer's reader); waits while the queue is over its limit."""
        while self._queued >= self._limit and not self.closed:
            self._space.clear()
            await self._space.wait()
        if not self.closed:
            self._events.append(event)
            self._queued += len(event.data)
            self._ready.set()

    def end(self, event: Exit | Failure) -> None:
        """The last event: nothing follows it."""
        if not self.opened.done():
            if isinstance(event, Failure):
                self.opened.set_exception(SessionRefusedError(event.message))
                self.opened.exception()  # retrieved: an open that timed out first must not warn
            else:
                self.opened.set_result(None)
        if isinstance(event, Failure) or not self._half_close:
            self._writable = False
        if not self.finished:
            self.finished = True
            self._events.append(event)
            self._ready.set()


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = None


class PodStreams:
    """The stream port of one pod VM: listens before QEMU starts, multiplexes sessions once used."""

    def __init__(
        self,
        listener: socket.socket,
        path: Path,
        *,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self.path = path
        self.open_timeout_s = open_timeout_s
        self._queue_limit = queue_limit
        self._listener = listener
        self._inode = os.stat(path).st_ino
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: _Connection | None = None
        self._sessions: dict[int, Session] = {}
        self._told: deque[int] = deque(maxlen=_REMEMBERED)
        self._next = random.SystemRandom().randrange(1, 1 << 31)  # an earlier agent's ids stay unlikely
        self._connect_lock = asyncio.Lock()  # bound to a loop on first use, not here
        self._write_lock = asyncio.Lock()
        self._closed = False
        self._close_lock = threading.Lock()

    @classmethod
    def listen(
        cls,
        path: Path,
        owner: tuple[int, int] | None = None,
        *,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        queue_limit: int = QUEUE_LIMIT,
    ) -> PodStreams:
        """Bind and listen at ``path`` (replacing a stale socket); ``owner``: let that uid's QEMU connect."""
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(1)
            listener.setblocking(False)
            if owner is not None:
                os.chown(path, *owner)
        except BaseException:
            listener.close()
            raise
        return cls(listener, path, open_timeout_s=open_timeout_s, queue_limit=queue_limit)

    @property
    def open_sessions(self) -> int:
        """Sessions currently open (what a test checks to see that a closed client released its own)."""
        return len(self._sessions)

    async def open_exec(
        self, container: str, argv: tuple[str, ...] | list[str], *, tty: bool = False, stdin: bool = False
    ) -> Session:
        """Run ``argv`` in ``container``; SessionRefusedError with pod-init's message when it cannot."""
        return await self._open(sf.exec_request(container, argv, tty=tty, stdin=stdin))

    async def open_attach(self, container: str, *, tty: bool = False, stdin: bool = False) -> Session:
        """Attach to the output (and stdin, if the container has one) of ``container``'s process."""
        return await self._open(sf.attach_request(container, tty=tty, stdin=stdin))

    async def open_port(self, port: int) -> Session:
        """A TCP connection to ``port`` inside the pod; SessionRefusedError when nothing listens there."""
        return await self._open(sf.port_request(port), half_close=True)

    async def _open(self, request: bytes, *, half_close: bool = False) -> Session:
        self._bind_loop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.open_timeout_s
        for attempt in (1, 2):
            await self._connect()
            session = Session(self, self._new_id(), self._queue_limit, half_close=half_close)
            self._sessions[session.id] = session
            resettable = attempt == 1 and len(self._sessions) == 1
            wait = deadline - loop.time()
            try:
                await self.send_frames([sf.encode(Frame(session.id, FrameType.OPEN, request))])
                async with asyncio.timeout(min(wait, STALL_S) if resettable else wait):
                    await asyncio.shield(session.opened)
            except TimeoutError:
                await session.close()
                if resettable and loop.time() < deadline:
                    log.warning(
                        "%s: no answer from pod-init in %gs: reconnecting the port once", self.path, STALL_S
                    )
                    await self._reset()
                    continue
                raise PodStreamError(
                    f"pod-init did not answer on the stream port {self.path} within {self.open_timeout_s:g}s "
                    "(a pod VM booted before exec support has no stream service: restart the pod)"
                ) from None
            except BaseException:
                await session.close()
                raise
            return session
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _reset(self) -> None:
        """Drop the connection to QEMU; the next session accepts its reconnection (``reconnect=1``)."""
        conn = self._conn
        if conn is None:
            return
        conn.writer.close()
        if conn.task is not None:
            with contextlib.suppress(Exception):
                await conn.task
        self._conn = None

    def _new_id(self) -> int:
        while True:
            self._next = self._next % 0xFFFFFFFF + 1  # 1..2^32-1, never 0
            if self._next not in self._sessions:
                return self._next

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise PodStreamError(f"the pod VM's stream port {self.path} is closed (the VM stopped)")
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(f"{self.path}: PodStreams is used from another event loop")

    async def _connect(self) -> None:
        async with self._connect_lock:
            if self._conn is not None:
                return
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.open_timeout_s):
                    sock, _ = await loop.sock_accept(self._listener)
            except TimeoutError:
                raise PodStreamError(
                    f"the pod VM did not connect to its stream port {self.path} within "
                    f"{self.open_timeout_s:g}s (a VM started before exec support has none: restart the pod)"
                ) from None
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=READ_CHUNK)
            conn = _Connection(reader, writer)
            conn.task = asyncio.create_task(self._read(conn), name=f"streams {self.path}")
            self._conn = conn

    async def send_frames(self, frames: list[bytes]) -> None:
        """Write whole frames in order (waits while QEMU does not take them: backpressure)."""
        conn = self._conn
        if conn is None or conn.writer.is_closing():
            raise PodStreamError(f"no connection to the pod VM on {self.path} (the VM stopped)")
        async with self._write_lock:
            try:
                for frame in frames:
                    conn.writer.write(frame)
                    await conn.writer.drain()
            except (ConnectionError, OSError) as exc:
                raise PodStreamError(f"writing to the pod VM's stream port {self.path}: {exc}") from exc

    def forget(self, session_id: int) -> bool:
        """Drop a session from the table (its late frames are ignored); whether it was there."""
        self._told.append(session_id)
        return self._sessions.pop(session_id, None) is not None

    async def _read(self, conn: _Connection) -> None:
        decoder = sf.FrameDecoder()
        reason = "the pod VM closed its stream port (QEMU exited)"
        try:
            while chunk := await conn.reader.read(READ_CHUNK):
                for frame in decoder.feed(chunk):
                    await self._dispatch(conn, frame)
        except sf.StreamProtocolError as exc:
            reason = f"pod-init broke the stream protocol: {exc}"
        except (ConnectionError, OSError) as exc:
            reason = f"the connection to the pod VM broke: {exc}"
        finally:
            conn.writer.close()
            if self._conn is conn:
                self._conn = None  # the next session accepts QEMU's next connection
            sessions, self._sessions = list(self._sessions.values()), {}
            for session in sessions:
                session.end(Failure(reason))

    async def _dispatch(self, conn: _Connection, frame: Frame) -> None:
        session = self._sessions.get(frame.session)
        if frame.type < FrameType.OPENED:
            raise sf.StreamProtocolError(f"pod-init sent a host frame type {frame.type.name}")
        if session is None:  # closed here, or a session of an earlier agent process
            if frame.type not in (FrameType.EXIT, FrameType.ERROR) and frame.session not in self._told:
                self._told.append(frame.session)
                conn.writer.write(sf.encode(Frame(frame.session, FrameType.CLOSE)))
            return
        if frame.type == FrameType.OPENED:
            if not session.opened.done():
                session.opened.set_result(None)
        elif frame.type in (FrameType.STDOUT, FrameType.STDERR):
            await session.deliver(Output(frame.payload, stderr=frame.type == FrameType.STDERR))
        elif frame.type == FrameType.EXIT:
            self.forget(session.id)
            session.end(Exit(*sf.parse_exit(frame.payload)))
        else:  # ERROR
            self.forget(session.id)
            session.end(
                Failure(frame.payload.decode("utf-8", "replace").strip() or "pod-init: unknown error")
            )

    def close(self) -> None:
        """Stop listening and end every session (idempotent; callable from any thread)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        # The socket's name goes now, in the caller's thread: a new listener bound at the same path
        # right after this call (an agent taking the VM over) must never lose its file to a teardown
        # that runs later on the loop (tmpfs reuses the inode number, so the check could not tell).
        self._unlink()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop and loop.is_running():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._shut)
                    return
        self._shut()

    def _shut(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if conn.task is not None:
                conn.task.cancel()  # its finally ends the sessions
            with contextlib.suppress(RuntimeError):  # the loop is closed: so is the transport
                conn.writer.close()
        self._listener.close()

    def _unlink(self) -> None:
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:  # not a newer VM's socket at the same path
                self.path.unlink()
