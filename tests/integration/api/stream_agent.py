"""A stand-in node agent for the API server's interactive subresources (tests only).

It speaks the agent's session protocol (STREAMS.md: ``/exec`` and ``/attach`` as WebSocket
``v5.channel.k8s.io``, ``/portForward`` as ``nestlab.portforward.v1``) over mutual TLS and runs the
asked command as a local process, so output, stdin, stderr and exit codes are real; a plain HTTP
server stands for a port inside the pod. No VM boots.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import ssl
import struct
import termios
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

PAGE = "hello through the tunnel\n" * 2000  # ~50 KB: several frames each way


def final_status(code: int, command: list[str]) -> bytes:
    """The agent's channel-3 Status (STREAMS.md), as a kubelet shapes it."""
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


@dataclass
class FakeAgent:
    """Pods the agent runs ((namespace, pod) -> containers) and the queries it received."""

    port: int
    """The agent's (TLS) port."""
    web_port: int
    """A local HTTP server standing for a port inside the pod (serves PAGE)."""
    pods: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    queries: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    async def exec(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        refused = self.refuse(info["namespace"], info["pod"], info["container"])
        if refused is not None:
            return refused
        self.queries.append((request.path, list(request.query.items())))
        command = request.query.getall("command", [])
        stdin = request.query.get("stdin") == "1"
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io",))
        await ws.prepare(request)
        if request.query.get("tty") == "1":
            return await self.terminal(ws, command)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            failure = {"metadata": {}, "status": "Failure", "message": f'exec: "{command[0]}": not found'}
            await ws.send_bytes(b"\x03" + json.dumps(failure).encode())
            await ws.close()
            return ws

        async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
            assert stream is not None
            while chunk := await stream.read(65536):
                await ws.send_bytes(bytes([channel]) + chunk)

        async def feed() -> None:
            async for message in ws:
                data = message.data
                if process.stdin is None or not isinstance(data, bytes) or not data:
                    continue
                if data[0] == 0:
                    process.stdin.write(data[1:])
                    await process.stdin.drain()
                elif data[0] == 255:
                    process.stdin.close()
            if process.returncode is None:  # the API server went away: stop the command
                process.kill()

        feeder = asyncio.create_task(feed())
        await asyncio.gather(pump(process.stdout, 1), pump(process.stderr, 2))
        code = await process.wait()
        await ws.send_bytes(b"\x03" + final_status(code, command))
        await ws.close()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        return ws

    async def terminal(self, ws: web.WebSocketResponse, command: list[str]) -> web.WebSocketResponse:
        """The command on a pseudo-terminal (its controlling terminal), resized as the client asks."""
        master, slave = os.openpty()
        try:
            process = await asyncio.create_subprocess_exec(
                "setsid", "-c", *command, stdin=slave, stdout=slave, stderr=slave
            )
        finally:
            os.close(slave)
        loop = asyncio.get_running_loop()
        output: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last process is gone
                data = b""
            if not data:
                loop.remove_reader(master)
            output.put_nowait(data)

        async def feed() -> None:
            async for message in ws:
                data = message.data
                if not isinstance(data, bytes) or not data:
                    continue
                if data[0] == 0:
                    os.write(master, data[1:])
                elif data[0] == 4:
                    size = json.loads(data[1:])
                    rows_cols = struct.pack("HHHH", size["Height"], size["Width"], 0, 0)
                    fcntl.ioctl(master, termios.TIOCSWINSZ, rows_cols)
            if process.returncode is None:
                process.kill()

        loop.add_reader(master, readable)
        feeder = asyncio.create_task(feed())
        try:
            while chunk := await output.get():
                await ws.send_bytes(b"\x01" + chunk)
            code = await process.wait()
            await ws.send_bytes(b"\x03" + final_status(code, command))
            await ws.close()
        finally:
            loop.remove_reader(master)
            os.close(master)
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        return ws

    async def attach(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        refused = self.refuse(info["namespace"], info["pod"], info["container"])
        if refused is not None:
            return refused
        self.queries.append((request.path, list(request.query.items())))
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io",))
        await ws.prepare(request)
        await ws.send_bytes(b"\x01output of the main process\n")
        await ws.send_bytes(b"\x03" + final_status(0, []))
        await ws.close()
        return ws

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        refused = self.refuse(request.match_info["namespace"], request.match_info["pod"], None)
        if refused is not None:
            return refused
        port = int(request.query["port"])
        ws = web.WebSocketResponse(protocols=("nestlab.portforward.v1",))
        await ws.prepare(request)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            await ws.send_str(f"error forwarding port {port} to pod: {exc.strerror}")
            await ws.close()
            return ws

        async def back() -> None:
            while chunk := await reader.read(65536):
                await ws.send_bytes(chunk)
            await ws.close()

        answer = asyncio.create_task(back())
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.BINARY:
                    writer.write(message.data)
                    await writer.drain()
        finally:  # close first: a cancelled handler (server shutdown) must not leak the socket
            writer.close()
            answer.cancel()
            await asyncio.gather(answer, writer.wait_closed(), return_exceptions=True)
        return ws

    def refuse(self, namespace: str, pod: str, container: str | None) -> web.Response | None:
        containers = self.pods.get((namespace, pod))
        if containers is None or (container is not None and container not in containers):
            what = f"container {container!r} of pod" if container else "pod"
            return web.Response(status=404, text=f"{what} {namespace}/{pod} is not running on this node")
        return None


async def serve(fake: FakeAgent, context: ssl.SSLContext) -> list[web.AppRunner]:
    """The agent's endpoints on ``fake.port`` (TLS) and the pod's web server on ``fake.web_port``."""
    app = web.Application()
    app.router.add_get("/exec/{namespace}/{pod}/{container}", fake.exec)
    app.router.add_get("/attach/{namespace}/{pod}/{container}", fake.attach)
    app.router.add_get("/portForward/{namespace}/{pod}", fake.port_forward)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", fake.port, ssl_context=context).start()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE)

    web_app = web.Application()
    web_app.router.add_get("/", page)
    web_runner = web.AppRunner(web_app)
    await web_runner.setup()
    await web.TCPSite(web_runner, "127.0.0.1", fake.web_port).start()
    return [runner, web_runner]
