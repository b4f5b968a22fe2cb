"""Answer ``101 Switching Protocols`` to ``Upgrade: SPDY/3.1`` and take over the connection's bytes.

aiohttp upgrades only to WebSocket; it has no public way to hand a handler the raw connection.
This is the ONE module that touches aiohttp internals for it, doing what aiohttp's own
``web_ws.WebSocketResponse`` does when it takes over a connection: install a payload parser with
``request.protocol.set_parser()`` (aiohttp then feeds every byte the client sends to it, not to the
HTTP parser) and turn keep-alive off (``request.protocol.keep_alive(False)``), so aiohttp closes
the connection once the handler returns. Writes go through the prepared response's public
``write()`` (which waits while the transport's buffer is full); reads are paused on the transport
while :data:`READ_BUFFER` bytes are unread. ``tests/unit/api/test_rawupgrade.py`` drives a real
aiohttp server through this module and fails if aiohttp changes under it.

The set of internals used: ``request.protocol.set_parser(parser)`` calling ``parser.feed_data(data)``
(expecting ``(eof, tail)``) and ``parser.feed_eof()``; ``request.protocol.keep_alive(False)``;
``request.transport.pause_reading()/resume_reading()``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, cast

from aiohttp import hdrs, web

SPDY_31: Final = "SPDY/3.1"
PROTOCOL_VERSION: Final = "X-Stream-Protocol-Version"
ACCEPTED_PROTOCOL_VERSIONS: Final = "X-Accepted-Stream-Protocol-Versions"
READ_BUFFER: Final = 256 * 1024
"""Unread client bytes held before reading from the socket pauses (TCP then slows the client)."""


def is_upgrade(request: web.BaseRequest, protocol: str) -> bool:
    """``Connection: Upgrade`` and ``Upgrade: <protocol>``, compared as upstream's upgrader does."""
    connection = ",".join(request.headers.getall(hdrs.CONNECTION, [])).lower()
    upgrade = ",".join(request.headers.getall(hdrs.UPGRADE, [])).lower()
    return "upgrade" in connection and protocol.lower() in upgrade


class RawChannel:
    """The upgraded connection's bytes, both ways (a :class:`nestlab.api.spdysession.ByteChannel`)."""

    def __init__(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        self._request = request
        self._response = response
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._paused = False
        self._readable = asyncio.Event()
        self._closed = False

    # The payload parser interface aiohttp's RequestHandler calls after set_parser().
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data and not self._eof:
            self._chunks.append(bytes(data))
            self._buffered += len(data)
            self._readable.set()
            if self._buffered >= READ_BUFFER and not self._paused:
                self._set_reading(paused=True)
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._readable.set()

    def _set_reading(self, *, paused: bool) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            return
        self._paused = paused
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof or self._closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered < READ_BUFFER // 2:
            self._set_reading(paused=False)
        return data

    async def write(self, data: bytes) -> None:
        transport = self._request.transport
        if self._closed or transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        await self._response.write(data)

    async def close(self) -> None:
        """Stop using the connection; aiohttp closes it when the handler returns the response."""
        self._closed = True
        self._readable.set()
        transport = self._request.transport
        if transport is not None:
            transport.close()


async def upgrade(
    request: web.BaseRequest, protocol: str, headers: Mapping[str, str]
) -> tuple[web.StreamResponse, RawChannel]:
    """Send ``101`` with ``Upgrade: <protocol>`` and ``headers``; the handler must return the response."""
    response = web.StreamResponse(status=101, reason="Switching Protocols")
    response.headers[hdrs.CONNECTION] = "Upgrade"
    response.headers[hdrs.UPGRADE] = protocol
    response.headers.update(headers)
    response.force_close()
    channel = RawChannel(request, response)
    handler: Any = request.protocol
    # Before the 101 leaves: the client sends its first frame as soon as it reads it, and from
    # then on no byte may reach aiohttp's HTTP parser.
    handler.set_parser(cast(Any, channel))
    handler.keep_alive(False)
    await response.prepare(request)
    return response, channel


def negotiate(request: web.BaseRequest, server_protocols: tuple[str, ...]) -> str | web.Response:
    """The client's first ``X-Stream-Protocol-Version`` this server speaks (upstream's
    ``httpstream.Handshake``), or the 400/403 response to send instead."""
    offered = [
        token.strip()
        for value in request.headers.getall(PROTOCOL_VERSION, [])
        for token in value.split(",")
        if token.strip()
    ]
    if not offered:
        return web.Response(status=400, text=f"unable to upgrade: {PROTOCOL_VERSION} is required\n")
    for protocol in offered:
        if protocol in server_protocols:
            return protocol
    response = web.Response(
        status=403,
        text=(
            "unable to upgrade: unable to negotiate protocol: "
            f"client supports [{' '.join(offered)}], server accepts [{' '.join(server_protocols)}]\n"
        ),
    )
    for protocol in server_protocols:
        response.headers.add(ACCEPTED_PROTOCOL_VERSIONS, protocol)
    return response


def missing_upgrade(request: web.BaseRequest) -> web.Response:
    """Upstream's 400 for a streaming request that does not ask for ``Upgrade: SPDY/3.1``."""
    return web.Response(
        status=400,
        text=(
            "unable to upgrade: missing upgrade headers in request: "
            f"Connection={request.headers.get(hdrs.CONNECTION, '')!r} "
            f"Upgrade={request.headers.get(hdrs.UPGRADE, '')!r}\n"
        ),
    )
