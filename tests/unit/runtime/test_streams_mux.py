"""The host's stream multiplexer against an in-test pod side (tests/unit/runtime/fakepod.py).

Real unix sockets and a real event loop; only pod-init is replaced by a small scripted fake.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from nestlab.runtime import streams as streams_module
from nestlab.runtime.streamframes import FrameType
from nestlab.runtime.streams import (
    Exit,
    Failure,
    Output,
    PodStreamError,
    PodStreams,
    Session,
    SessionEvent,
    SessionRefusedError,
)
from tests.unit.runtime.fakepod import FakePod

WAIT_S = 10.0  # a bound for the poll loops below, never reached when things work


@pytest.fixture
def sock() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="nls-"))  # short: sun_path holds 108 bytes
    yield directory / "stream.sock"
    shutil.rmtree(directory)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), WAIT_S * 3))


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not predicate():
            await asyncio.sleep(0.01)


async def drain(session: Session) -> list[SessionEvent]:
    events = []
    while (event := await session.receive()) is not None:
        events.append(event)
    return events


def test_exec_output_and_exit_code(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock)
        pod = FakePod()
        await pod.connect(sock)
        ok = await streams.open_exec("web", ["echo", "hello", "world"])
        assert await drain(ok) == [Output(b"hello world\n"), Exit(0, 0)]
        failing = await streams.open_exec("web", ["fail", "3"])
        assert await drain(failing) == [Output(b"failing\n", stderr=True), Exit(3, 0)]
        assert pod.requests[ok.id] == ["exec", "web", "0", "0", "echo", "hello", "world"]
        assert ok.id != failing.id
        assert streams.open_sessions == 0
        streams.close()
        await pod.close()

    run(scenario)


def test_refused_exec_raises_with_pod_inits_message(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock)
        pod = FakePod()
        await pod.connect(sock)
        with pytest.raises(SessionRefusedError, match=r'exec: "nope": executable file not found in \$PATH'):
            await streams.open_exec("web", ["nope"])
        with pytest.raises(SessionRefusedError, match="connection refused"):
            await streams.open_port(9)
        assert streams.open_sessions == 0
        streams.close()
        await pod.close()

    run(scenario)


def test_stdin_resize_and_eof(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock)
        pod = FakePod()
        await pod.connect(sock)
        session = await streams.open_exec("web", ["cat"], tty=True, stdin=True)
        assert pod.requests[session.id][2:4] == ["1", "1"]
        await session.send(b"line one\n")
        assert await session.receive() == Output(b"line one\n")
        await session.resize(132, 43)
        assert await session.receive() == Output(b"size 43 132\n")
        big = bytes(range(256)) * 1024  # 256 KiB: several DATA frames, reassembled in order
        await session.send(big)
        got = b""
        while len(got) < len(big):
            event = await session.receive()
            assert isinstance(event, Output)
            got += event.data
        assert got == big
        await session.send_eof()
        assert await drain(session) == [Exit(0, 0)]
        await session.send(b"after the end is dropped")
        streams.close()
        await pod.close()

    run(scenario)


def test_close_abandons_the_session_once_and_late_frames_are_ignored(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock)
        pod = FakePod()
        await pod.connect(sock)
        session = await streams.open_exec("web", ["hang"])
        await session.close()
        await session.close()  # idempotent
        await until(lambda: any(f.type == FrameType.CLOSE for f in pod.received))
        assert await session.receive() is None
        pod.send(session.id, FrameType.STDOUT, b"late")  # pod-init had not seen the CLOSE yet
        pod.send(4242, FrameType.STDOUT, b"a session of an earlier agent")
        pod.send(4242, FrameType.STDOUT, b"more of it")
        after = await streams.open_exec("web", ["echo", "next"])  # the connection is still fine
        assert await drain(after) == [Output(b"next\n"), Exit(0, 0)]
        closes = [f.session for f in pod.received if f.type == FrameType.CLOSE]
        assert closes == [session.id, 4242]  # one CLOSE each, none for the late frame
        streams.close()
        await pod.close()

    run(scenario)


def test_lost_connection_fails_sessions_and_the_next_connection_serves(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock)
        pod = FakePod()
        await pod.connect(sock)
        session = await streams.open_exec("web", ["hang"])
        await pod.close()  # QEMU exited (or the VM's chardev reconnects)
        events = await drain(session)
        assert events == [Failure("the pod VM closed its stream port (QEMU exited)")]
        again = FakePod()
        await again.connect(sock)
        assert await drain(await streams.open_exec("web", ["echo", "back"])) == [
            Output(b"back\n"),
            Exit(0, 0),
        ]
        streams.close()
        await again.close()

    run(scenario)


def test_a_full_session_queue_stops_reading_until_it_drains(sock: Path) -> None:
    limit = 100_000

    async def scenario() -> None:
        streams = PodStreams.listen(sock, queue_limit=limit)
        pod = FakePod()
        await pod.connect(sock)
        total = 1_000_000
        session = await streams.open_exec("web", ["flood", str(total)])
        await until(lambda: session.queued >= limit)
        for _ in range(200):  # give the reader every chance to read on: it must not
            await asyncio.sleep(0)
        assert session.queued < limit + 65536  # at most one frame past the limit
        got = 0
        while (event := await session.receive()) is not None:
            if isinstance(event, Output):
                got += len(event.data)
            else:
                assert event == Exit(0, 0)
        assert got == total
        streams.close()
        await pod.close()

    run(scenario)


def test_open_times_out_without_an_answer_and_without_qemu(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock, open_timeout_s=0.3)
        with pytest.raises(PodStreamError, match="did not connect to its stream port"):
            await streams.open_exec("web", ["echo"])
        pod = FakePod()
        pod.hold_reading.clear()  # pod-init never answers
        await pod.connect(sock)
        with pytest.raises(PodStreamError, match="did not answer on the stream port"):
            await streams.open_exec("web", ["echo"])
        assert streams.open_sessions == 0
        streams.close()
        await pod.close()

    run(scenario)


def test_a_silent_port_is_reconnected_once_and_the_session_then_opens(
    sock: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QEMU may leave a port throttled after the previous host end closed: pod-init never hears
    # the OPEN on that connection; a reconnection (QEMU's reconnect=1) clears it.
    monkeypatch.setattr(streams_module, "STALL_S", 0.2)

    async def scenario() -> None:
        streams = PodStreams.listen(sock, open_timeout_s=WAIT_S)
        stuck, fresh = FakePod(), FakePod()
        stuck.hold_reading.clear()
        await stuck.connect(sock)

        async def qemu_reconnects() -> None:
            await until(lambda: streams._conn is not None)  # the host took the first connection
            await until(lambda: streams._conn is None)  # ... and dropped it, silent
            await fresh.connect(sock)

        reconnecting = asyncio.create_task(qemu_reconnects())
        session = await streams.open_exec("web", ["echo", "again"])
        assert await drain(session) == [Output(b"again\n"), Exit(0, 0)]
        await reconnecting
        assert [f.type for f in fresh.received] == [FrameType.OPEN]
        streams.close()
        await stuck.close()
        await fresh.close()

    run(scenario)


def test_close_from_another_thread_ends_sessions_and_keeps_a_newer_socket(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock)
        pod = FakePod()
        await pod.connect(sock)
        session = await streams.open_exec("web", ["hang"])
        closer = threading.Thread(target=streams.close)
        closer.start()
        events = await drain(session)
        closer.join()
        assert len(events) == 1
        assert isinstance(events[0], Failure)
        assert not sock.exists()
        with pytest.raises(PodStreamError, match="is closed"):
            await streams.open_exec("web", ["echo"])
        newer = PodStreams.listen(sock)  # the pod's next VM, at the same path
        streams.close()
        assert sock.exists()
        newer.close()
        assert not sock.exists()
        await pod.close()

    run(scenario)


def test_a_port_stays_writable_after_the_pod_side_closed_and_ends_with_eof(sock: Path) -> None:
    async def scenario() -> None:
        streams = PodStreams.listen(sock)
        pod = FakePod()
        await pod.connect(sock)
        port = await streams.open_port(5)
        assert await drain(port) == [Exit(0, 0)]  # the server shut its side at once
        await port.send(b"request after the half-close")
        await port.close()
        await until(lambda: any(f.type == FrameType.EOF for f in pod.received))
        kinds = [(f.type, f.payload) for f in pod.received if f.session == port.id]
        assert kinds[1:] == [(FrameType.DATA, b"request after the half-close"), (FrameType.EOF, b"")]
        exec_session = await streams.open_exec("web", ["echo", "x"])
        assert await drain(exec_session) == [Output(b"x\n"), Exit(0, 0)]
        await exec_session.send(b"an ended exec takes no more input")
        await exec_session.close()
        assert not [f for f in pod.received if f.session == exec_session.id and f.type != FrameType.OPEN]
        streams.close()
        await pod.close()

    run(scenario)
