"""``pods/portforward`` over SPDY/3.1, plain or tunneled in a WebSocket, to :class:`ByteBackend`s.

kubectl keeps one SPDY connection for the whole ``kubectl port-forward`` and, per local TCP
connection, opens an ``error`` stream then a ``data`` stream, both with headers ``port`` and
``requestID``. As the kubelet does (``httpStreamHandler``), streams with a missing or bad ``port``
or ``streamType`` are refused (RST), a pair waits :data:`PAIR_TIMEOUT_S` for its second stream,
and each complete pair gets its own connection in the pod (``open_port(port)``); bytes flow both
ways; a failure is written as text to the error stream; at the end both streams are closed.

kubectl 1.31+ (1.30 with ``KUBECTL_PORT_FORWARD_WEBSOCKETS=true``) sends the same SPDY bytes
inside binary WebSocket messages, subprotocol ``SPDY/3.1+portforward.k8s.io``, with no framing of
its own (client-go ``tunneling_connection.go``): message boundaries mean nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSMsgType, hdrs, web

from nestlab.api import rawupgrade
from nestlab.api.spdysession import ByteChannel, SpdySession, SpdyStream, StreamClosed
from nestlab.api.streamtypes import ByteBackend, StreamError

log = logging.getLogger(__name__)

PROTOCOL: Final = "portforward.k8s.io"
TUNNEL_PREFIX: Final = "SPDY/3.1+"
"""client-go's ``WebsocketsSPDYTunnelingPrefix``."""
TUNNEL_PROTOCOL: Final = TUNNEL_PREFIX + PROTOCOL
PAIR_TIMEOUT_S: Final = 30.0
"""The kubelet's default ``streamCreationTimeout`` for the second stream of a pair."""
HALF_CLOSE_GRACE_S: Final = 1.0
"""After the client stops sending, how long the pod side may still answer before the connection is
closed (containerd waits 1 s the same way; ByteBackend has no half-close)."""
TUNNEL_MAX_MESSAGE: Final = 1 << 20
"""Largest tunneled WebSocket message: spdystream writes frames of at most ~32 KiB."""

OpenPort = Callable[[int], Awaitable[ByteBackend]]


def wants_tunneled_portforward(request: web.BaseRequest) -> bool:
    """A WebSocket upgrade offering the SPDY tunneling subprotocol (kubectl 1.31+)."""
    if not rawupgrade.is_upgrade(request, "websocket"):
        return False
    offered = ",".join(request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, []))
    return any(token.strip().startswith(TUNNEL_PREFIX) for token in offered.split(","))


def check_stream(stream: SpdyStream) -> str | None:
    """Upstream's ``httpStreamReceived`` checks: a port 1-65535 and a known stream type."""
    port = stream.header("port")
    if not port:
        return '"port" header is required'
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"unable to parse {port!r} as a port"
    if int(port) < 1:
        return f"port {port!r} must be > 0"
    kind = stream.header("streamType")
    if not kind:
        return '"streamType" header is required'
    if kind not in ("error", "data"):
        return f"invalid stream type {kind!r}"
    return None


def request_id(stream: SpdyStream) -> str:
    """The pair's id; for clients without ``requestID`` upstream's guess from the stream ids."""
    given = stream.header("requestID")
    if given:
        return given
    offset = 0 if stream.header("streamType") == "error" else 2
    return str(stream.stream_id - offset)


@dataclass
class _Pair:
    request_id: str
    streams: dict[str, SpdyStream] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)


async def _report(pair: _Pair, message: str) -> None:
    error = pair.streams.get("error")
    if error is not None:
        with contextlib.suppress(StreamClosed):
            await error.write(message.encode())


async def _to_pod(data: SpdyStream, backend: ByteBackend) -> None:
    while chunk := await data.read():
        await backend.send(chunk)


async def _to_client(data: SpdyStream, backend: ByteBackend) -> None:
    while (chunk := await backend.receive()) is not None:
        await data.write(chunk)
    await data.close()


async def forward(pair: _Pair, open_port: OpenPort) -> None:
    """One forwarded connection: the pod's socket <-> the pair's data stream."""
    data, error = pair.streams["data"], pair.streams["error"]
    port = int(data.header("port"))
    backend: ByteBackend | None = None
    try:
        backend = await open_port(port)
        upstream = asyncio.create_task(_to_pod(data, backend))
        downstream = asyncio.create_task(_to_client(data, backend))
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
            if upstream.done() and not upstream.exception() and not downstream.done():
                await asyncio.wait({downstream}, timeout=HALF_CLOSE_GRACE_S)
            for task in (upstream, downstream):
                if task.done() and isinstance(failure := task.exception(), StreamError):
                    raise failure
        finally:
            for task in (upstream, downstream):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StreamError, StreamClosed):
                    await task
    except StreamError as exc:
        log.info("port-forward to port %d: %s", port, exc)
        await _report(pair, str(exc))
    finally:
        if backend is not None:
            await backend.close()
        for stream in (data, error):
            await stream.close()
            stream.abandon()


async def serve_pairs(session: SpdySession, open_port: OpenPort) -> None:
    """Pair streams by request id and forward each pair until the client hangs up."""
    pairs: dict[str, _Pair] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def expire(pair: _Pair) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pair.complete.wait(), PAIR_TIMEOUT_S)
            return
        message = f"(request={pair.request_id}) timed out waiting for streams"
        log.info("port-forward %s", message)
        await _report(pair, message)
        pairs.pop(pair.request_id, None)
        for stream in pair.streams.values():
            await stream.reset()

    def spawn(coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        while (stream := await session.accept()) is not None:
            ident, kind = request_id(stream), stream.header("streamType")
            pair = pairs.get(ident)
            if pair is None:
                pair = pairs[ident] = _Pair(ident)
                spawn(expire(pair))
            if kind in pair.streams:
                await _report(
                    pair, f"error processing stream for request {ident}: {kind} stream already assigned"
                )
                await stream.reset()
                continue
            pair.streams[kind] = stream
            if len(pair.streams) == 2:
                pair.complete.set()
                del pairs[ident]
                spawn(forward(pair, open_port))
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve_spdy_portforward(request: web.Request, open_port: OpenPort) -> web.StreamResponse:
    """Answer a port-forward request that asked for ``Upgrade: SPDY/3.1`` (checks already done)."""
    if not rawupgrade.is_upgrade(request, rawupgrade.SPDY_31):
        return rawupgrade.missing_upgrade(request)
    protocol = rawupgrade.negotiate(request, (PROTOCOL,))
    if isinstance(protocol, web.Response):
        return protocol
    response, channel = await rawupgrade.upgrade(
        request, rawupgrade.SPDY_31, {rawupgrade.PROTOCOL_VERSION: protocol}
    )
    async with SpdySession(channel, check_stream) as session:
        await serve_pairs(session, open_port)
    return response


class WebSocketChannel:
    """SPDY bytes in binary WebSocket messages (a :class:`ByteChannel`)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def read(self) -> bytes:
        message = await self._ws.receive()
        if message.type == WSMsgType.BINARY:
            return bytes(message.data) or await self.read()
        if message.type == WSMsgType.TEXT:
            log.info("tunneled port-forward: a text message is not SPDY; closing")
        return b""

    async def write(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def close(self) -> None:
        await self._ws.close()


async def serve_tunneled_portforward(request: web.Request, open_port: OpenPort) -> web.StreamResponse:
    """Answer kubectl's WebSocket upgrade with ``SPDY/3.1+portforward.k8s.io`` and serve SPDY in it."""
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=TUNNEL_MAX_MESSAGE)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol != TUNNEL_PROTOCOL:
        offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
        return web.Response(
            status=400,
            text=f"unable to upgrade: subprotocol {TUNNEL_PROTOCOL} is required (offered: {offered!r})\n",
        )
    await ws.prepare(request)
    channel: ByteChannel = WebSocketChannel(ws)
    async with SpdySession(channel, check_stream) as session:
        await serve_pairs(session, open_port)
    return ws
