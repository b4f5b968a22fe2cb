"""The WebSocket relays of pods/exec and pods/portforward, with in-process backends (no agent).

A real aiohttp server runs the relay; a real aiohttp WebSocket client plays kubectl's part.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nestlab.api import podstreams
from nestlab.api.podstreams import EXEC_PROTOCOLS, PORT_PROTOCOLS
from nestlab.api.streamtypes import CLOSE, ERROR, STDIN, STDOUT, ByteBackend, StreamError, StreamOptions

SUCCESS = json.dumps({"metadata": {}, "status": "Success"}).encode()
EXIT_3 = json.dumps(
    {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
).encode()


class EchoShell:
    """``cat``: stdin comes back on stdout; after stdin's close, the given final Status."""

    def __init__(self, final: bytes = SUCCESS) -> None:
        self.final = final
        self.out: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.seen: list[tuple[int, bytes]] = []
        self.closed = asyncio.Event()

    async def send(self, channel: int, data: bytes) -> None:
        self.seen.append((channel, data))
        if channel == STDIN:
            await self.out.put((STDOUT, data))
        elif channel == CLOSE:
            await self.out.put((ERROR, self.final))
            await self.out.put(None)

    async def receive(self) -> tuple[int, bytes] | None:
        if self.closed.is_set():
            return None
        getting = asyncio.ensure_future(self.out.get())
        closing = asyncio.ensure_future(self.closed.wait())
        await asyncio.wait({getting, closing}, return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        if getting.done():
            return getting.result()
        getting.cancel()
        return None

    async def close(self) -> None:
        self.closed.set()


def run(
    test: Callable[[TestClient[web.Request, web.Application]], Awaitable[None]], app: web.Application
) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await test(client)

    asyncio.run(main())


def exec_app(shell: EchoShell, protocol: str) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await podstreams.relay_channels(
            request, shell, EXEC_PROTOCOLS[protocol], StreamOptions("c", ("cat",), stdin=True)
        )

    app = web.Application()
    app.router.add_get("/exec", handler)
    return app


async def everything(ws: aiohttp.ClientWebSocketResponse) -> list[bytes | str]:
    got: list[bytes | str] = []
    async with asyncio.timeout(20):
        async for message in ws:
            got.append(message.data)
    return got


def test_v5_relays_stdin_close_and_the_final_status() -> None:
    shell = EchoShell(EXIT_3)

    async def talk(client: TestClient[web.Request, web.Application]) -> None:
        async with client.ws_connect("/exec", protocols=("v5.channel.k8s.io",)) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b"\x00hello\n")
            await ws.send_bytes(b"\x04" + b'{"Width":80,"Height":24}')
            await ws.send_bytes(bytes([CLOSE, STDIN]))
            got = await everything(ws)
        assert got == [b"\x01", b"\x01hello\n", b"\x03" + EXIT_3]
        assert (4, b'{"Width":80,"Height":24}') in shell.seen
        assert shell.closed.is_set()

    run(talk, exec_app(shell, "v5.channel.k8s.io"))


def test_v4_cannot_close_stdin_and_pre_v4_base64_gets_error_text() -> None:
    shell = EchoShell(EXIT_3)

    async def talk(client: TestClient[web.Request, web.Application]) -> None:
        async with client.ws_connect("/exec", protocols=("base64.channel.k8s.io",)) as ws:
            await ws.send_str("0aGk=")  # "hi" on stdin
            assert (await ws.receive(timeout=20)).data == "1"  # the opening empty stdout message
            assert (await ws.receive(timeout=20)).data == "1aGk="
            await shell.send(CLOSE, b"\x00")  # the pod side ends (the shell exited)
            got = await everything(ws)
        text = json.loads(EXIT_3)["message"].encode()
        assert got == ["3" + base64.b64encode(text).decode()]

    run(talk, exec_app(shell, "base64.channel.k8s.io"))


def test_a_client_that_leaves_ends_the_pod_side() -> None:
    shell = EchoShell()

    async def talk(client: TestClient[web.Request, web.Application]) -> None:
        async with client.ws_connect("/exec", protocols=("v4.channel.k8s.io",)) as ws:
            await ws.send_bytes(bytes([CLOSE, STDIN]))  # v4 has no close channel: ignored
            await ws.send_bytes(b"\x00x")
            assert (await ws.receive(timeout=20)).data == b"\x01"
            assert (await ws.receive(timeout=20)).data == b"\x01x"
        async with asyncio.timeout(20):
            await shell.closed.wait()
        assert (CLOSE, bytes([STDIN])) not in shell.seen

    run(talk, exec_app(shell, "v4.channel.k8s.io"))


class EchoPort:
    """A forwarded connection to an echo server that closes after its first answer."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False

    async def send(self, data: bytes) -> None:
        await self.queue.put(data.upper())
        await self.queue.put(None)

    async def receive(self) -> bytes | None:
        return await self.queue.get()

    async def close(self) -> None:
        self.closed = True


def test_websocket_port_forward_uses_upstreams_channel_pairs() -> None:
    opened: list[EchoPort] = []

    async def connect(port: int) -> ByteBackend:
        if port == 81:
            raise StreamError("error forwarding port 81 to pod ns/p: connection refused")
        opened.append(EchoPort())
        return opened[-1]

    async def handler(request: web.Request) -> web.StreamResponse:
        ports = podstreams.ports_of(request.query)
        return await podstreams.relay_ports(request, ports, connect, PORT_PROTOCOLS["v4.channel.k8s.io"])

    app = web.Application()
    app.router.add_get("/pf", handler)

    async def talk(client: TestClient[web.Request, web.Application]) -> None:
        async with client.ws_connect("/pf?ports=80,81", protocols=("v4.channel.k8s.io",)) as ws:
            await ws.send_bytes(b"\x00ping")
            got = await everything(ws)
        port80, port81 = (80).to_bytes(2, "little"), (81).to_bytes(2, "little")
        assert got[:4] == [b"\x00" + port80, b"\x01" + port80, b"\x02" + port81, b"\x03" + port81]
        assert got[4] == b"\x03error forwarding port 81 to pod ns/p: connection refused"
        assert got[5:] == [b"\x00PING"]
        assert opened
        assert opened[0].closed

    run(talk, app)
