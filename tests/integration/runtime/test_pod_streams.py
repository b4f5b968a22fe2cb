"""Exec, attach and port-forward into a REAL pod microVM (TCG) through its stream port.

One pod (booted once for the module) runs three containers: ``main`` (a shell that sleeps),
``ticker`` (prints a numbered line every second, for attach) and ``web`` (busybox httpd on 8080).
The host side is the real multiplexer (:mod:`nestlab.runtime.streams`) on one event loop running in
a thread, as in the agent; pod-init's side is ``podinit/streams.c``. The agent's WebSocket
endpoints are exercised against the same VM through aiohttp's test server. The last test stops
listening and listens again at the same path, as a restarted agent does: QEMU (unprivileged by
then, when the tests run as root) must reconnect, and pod-init must serve the new connection.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from nestlab.agent import logs
from nestlab.agent.streams import EXEC_PROTOCOL, PORT_PROTOCOL, StreamTarget
from nestlab.runtime import disks, pod, qemu
from nestlab.runtime.accel import Accel
from nestlab.runtime.control import Started
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription
from nestlab.runtime.streams import (
    Exit,
    Failure,
    Output,
    PodStreams,
    Session,
    SessionEvent,
    SessionRefusedError,
)

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 240.0  # generous: two cores shared with every other job; never asserted on
KILL_WAIT_S = 60.0  # pod-init kills an abandoned exec at once; the bound only ends a failing test
IMAGE = DiskSerial("img-streams")
APPLETS = ("sh", "echo", "cat", "sleep", "stty", "nc", "httpd", "wc", "mkdir", "true", "kill", "ls", "head")
TICKER = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"
WEB = "mkdir -p /tmp/www; echo hello-from-pod > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"
SLEEPER = "trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done"
PROCESSES = "for p in /proc/[0-9]*; do cat $p/cmdline; echo; done 2>/dev/null"
T = TypeVar("T")


class Loop:
    """One event loop in a thread, as the agent has: every stream call runs on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(BOOT_TIMEOUT_S)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def running(boot_files: pod.BootFiles) -> Iterator[tuple[pod.PodVm, Loop]]:
    # Not under pytest's tmp dir (mode 0700): QEMU, unprivileged once started as root, must reach
    # the sockets again to reconnect, as it does in the agent's state dir (mode 0755).
    base = Path(tempfile.mkdtemp(prefix="nestlab-streams-"))
    base.chmod(0o755)
    image = disks.make_image(disks.busybox_root(base / "root", applets=APPLETS), base / "image.erofs")
    description = PodDescription(
        "streams",
        (
            Container(ContainerName("main"), IMAGE, ("sh", "-c", SLEEPER)),
            Container(ContainerName("ticker"), IMAGE, ("sh", "-c", TICKER)),
            Container(ContainerName("web"), IMAGE, ("sh", "-c", WEB)),
        ),
        grace_s=2,
    )
    loop = Loop()
    vm = pod.launch(
        description, {IMAGE: image}, base / "vm", boot_files, Accel("tcg", "integration tests run under TCG")
    )
    try:
        started: set[str] = set()
        while started != {"main", "ticker", "web"}:
            event = vm.next_event(BOOT_TIMEOUT_S)
            assert event is not None, "the VM closed the control channel before its containers started"
            if isinstance(event, Started):
                started.add(event.container)
        yield vm, loop
    finally:
        try:
            vm.stop()
        finally:
            loop.stop()
            print(f"--- console ---\n{vm.console_log.read_text(errors='replace')}")
            shutil.rmtree(base)


def streams_of(vm: pod.PodVm) -> PodStreams:
    assert vm.streams is not None
    return vm.streams


async def collect(session: Session) -> list[SessionEvent]:
    events = []
    while (event := await session.receive()) is not None:
        events.append(event)
    return events


def output(events: list[SessionEvent], *, stderr: bool = False) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Output) and e.stderr == stderr)


def test_exec_output_stderr_and_exit_codes(running: tuple[pod.PodVm, Loop]) -> None:
    vm, loop = running
    streams = streams_of(vm)

    async def scenario() -> None:
        session = await streams.open_exec("main", ["sh", "-c", "echo out; echo err >&2; exit 3"])
        events = await collect(session)
        assert output(events) == b"out\n"
        assert output(events, stderr=True) == b"err\n"
        assert events[-1] == Exit(3, 0)
        assert await collect(await streams.open_exec("main", ["true"])) == [Exit(0, 0)]
        killed = await collect(await streams.open_exec("main", ["sh", "-c", "kill -9 $$"]))
        assert killed[-1] == Exit(137, 9)
        assert streams.open_sessions == 0

    loop.run(scenario())


def test_exec_failures_are_worded_for_the_user(running: tuple[pod.PodVm, Loop]) -> None:
    vm, loop = running
    streams = streams_of(vm)

    async def message_of(container: str, argv: list[str]) -> str:
        try:
            session = await streams.open_exec(container, argv)
        except SessionRefusedError as exc:
            return str(exc)
        events = await collect(session)  # refused after OPENED: a Failure, never an Exit
        assert isinstance(events[-1], Failure), events
        return events[-1].message

    async def scenario() -> None:
        missing = await message_of("main", ["nope"])
        assert "nope" in missing
        assert "executable file not found" in missing
        assert "ghost" in await message_of("ghost", ["true"])

    loop.run(scenario())


def test_exec_with_stdin_both_ways_at_once(running: tuple[pod.PodVm, Loop]) -> None:
    vm, loop = running
    streams = streams_of(vm)
    data = bytes(range(256)) * 1200  # 300 KiB: more than pod-init's per-session buffers

    async def scenario() -> None:
        cat = await streams.open_exec("main", ["cat"], stdin=True)

        async def feed() -> None:
            await cat.send(data)
            await cat.send_eof()

        feeding = asyncio.create_task(feed())
        events = await collect(cat)  # read while writing: neither side may wait for the other
        await feeding
        assert output(events) == data
        assert events[-1] == Exit(0, 0)
        counted = await streams.open_exec("main", ["wc", "-c"], stdin=True)
        await counted.send(data)
        await counted.send_eof()
        events = await collect(counted)
        assert output(events).split() == [str(len(data)).encode()]

    loop.run(scenario())


def test_tty_exec_has_a_terminal_and_follows_resize(running: tuple[pod.PodVm, Loop]) -> None:
    vm, loop = running
    streams = streams_of(vm)

    async def scenario() -> None:
        script = "test -t 0 && echo is-a-tty; read go; stty size; echo to-stderr >&2"
        session = await streams.open_exec("main", ["sh", "-c", script], tty=True, stdin=True)
        await session.resize(132, 43)
        await session.send(b"go\n")
        events = await collect(session)
        text = output(events)
        assert b"is-a-tty" in text
        assert b"43 132" in text  # stty size: rows columns
        assert b"to-stderr" in text  # a TTY has one output stream
        assert output(events, stderr=True) == b""
        assert events[-1] == Exit(0, 0)

    loop.run(scenario())


def test_attach_follows_a_containers_output(running: tuple[pod.PodVm, Loop]) -> None:
    vm, loop = running
    streams = streams_of(vm)

    async def scenario() -> None:
        session = await streams.open_attach("ticker")
        seen = b""
        while b"tick" not in seen:
            event = await session.receive()
            assert isinstance(event, Output), event
            seen += event.data
        await session.close()
        assert streams.open_sessions == 0

    loop.run(scenario())


async def listening(streams: PodStreams, port: int) -> Session:
    """A port session to ``port`` once something listens there (refused until then)."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while True:
        try:
            return await streams.open_port(port)
        except SessionRefusedError:
            assert time.monotonic() < deadline, f"nothing listened on {port} in the pod"
            await asyncio.sleep(0.2)


async def port_exchange(streams: PodStreams, port: int, request: bytes) -> bytes:
    session = await streams.open_port(port)
    await session.send(request)
    events = await collect(session)
    assert events[-1] == Exit(0, 0), events  # the server closed the connection
    return output(events)


def test_port_sessions_to_httpd_and_to_nc(running: tuple[pod.PodVm, Loop]) -> None:
    vm, loop = running
    streams = streams_of(vm)

    async def scenario() -> None:
        await (await listening(streams, 8080)).close()  # httpd starts right after the container
        answer = await port_exchange(streams, 8080, b"GET /index.html HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.")
        assert b" 200 " in answer.split(b"\r\n")[0]
        assert b"hello-from-pod" in answer
        with pytest.raises(SessionRefusedError, match="refused"):
            await streams.open_port(9)
        listener = await streams.open_exec("main", ["nc", "-l", "-p", "7000"])
        client = await listening(streams, 7000)  # nc listens once it runs
        await client.send(b"through the port\n")
        await client.send_eof()
        heard = b""
        while b"through the port\n" not in heard:
            event = await listener.receive()
            assert isinstance(event, Output), event
            heard += event.data
        await client.close()
        await listener.close()

    loop.run(scenario())


def test_agent_endpoints_against_the_vm(running: tuple[pod.PodVm, Loop]) -> None:
    vm, loop = running
    streams = streams_of(vm)
    containers = {"main": "running", "ticker": "running", "web": "running"}

    def lookup(namespace: str, name: str) -> StreamTarget | None:
        return (
            StreamTarget("uid-1", containers, streams) if (namespace, name) == ("demo", "streams") else None
        )

    async def scenario() -> None:
        client = TestClient(TestServer(logs.app(lambda ns, name: None, sessions=lookup)))
        await client.start_server()
        try:
            query = [("command", "sh"), ("command", "-c"), ("command", "cat; exit 4"), ("stdin", "1"),
                     ("stdout", "1"), ("stderr", "1")]  # fmt: skip
            async with client.ws_connect(
                "/exec/demo/streams/main", params=query, protocols=(EXEC_PROTOCOL,)
            ) as ws:
                await ws.send_bytes(b"\x00via websocket\n")
                await ws.send_bytes(b"\xff\x00")
                received = [(m.data[0], m.data[1:]) async for m in ws]
            assert b"".join(data for channel, data in received if channel == 1) == b"via websocket\n"
            assert received[-1][0] == 3
            status = json.loads(received[-1][1])
            assert status["reason"] == "NonZeroExitCode"
            assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]
            params = {"port": "8080"}
            async with client.ws_connect(
                "/portForward/demo/streams", params=params, protocols=(PORT_PROTOCOL,)
            ) as ws:
                await ws.send_bytes(b"GET /index.html HTTP/1.0\r\n\r\n")
                answer = b""
                async for message in ws:
                    assert message.type == aiohttp.WSMsgType.BINARY
                    answer += message.data
            assert b"hello-from-pod" in answer
        finally:
            await client.close()

    loop.run(scenario())


def test_a_new_listener_at_the_same_path_is_served_again(running: tuple[pod.PodVm, Loop]) -> None:
    """What a restarted agent does (vms.AdoptedVm): QEMU reconnects, pod-init serves the new host."""
    vm, loop = running
    old = streams_of(vm)

    async def hang() -> Session:
        return await old.open_exec("main", ["sleep", "600"])

    abandoned = loop.run(hang())
    old.close()  # the agent dies: its connection closes, its sessions with it
    assert isinstance(loop.run(collect(abandoned))[-1], Failure)
    vm.streams = PodStreams.listen(old.path, owner=pod.runas_ids(qemu.default_runas()))

    async def scenario() -> None:
        session = await streams_of(vm).open_exec("main", ["echo", "back again"])
        assert await collect(session) == [Output(b"back again\n"), Exit(0, 0)]
        deadline = time.monotonic() + KILL_WAIT_S
        while True:  # pod-init ended the old host's sessions: their processes are killed
            found = output(await collect(await streams_of(vm).open_exec("main", ["sh", "-c", PROCESSES])))
            if b"sleep\x00600" not in found:
                break
            assert time.monotonic() < deadline, "the abandoned exec (sleep 600) still runs"
            await asyncio.sleep(0.2)

    loop.run(scenario())
