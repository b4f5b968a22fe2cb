"""``pods/exec`` and ``pods/attach`` over SPDY/3.1, relayed to a :class:`ChannelBackend`.

kubectl 1.20 execs only over SPDY, and newer kubectl falls back to it when WebSocket fails (or
``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``). It negotiates ``X-Stream-Protocol-Version`` (v5/v4
carry a JSON v1 Status on the error stream; v3/v2/channel.k8s.io its message as text), then opens
one stream per pipe, each with a ``streamType`` header: ``error``, ``stdin``, ``stdout``,
``stderr``, ``resize`` (tty, v3+). As the kubelet does (``createStreams``/``waitForStreams``), the
server waits up to :data:`STREAM_CREATION_TIMEOUT_S` for the streams the query asked for, then
starts the session: stdin data -> channel 0, stdin FIN -> channel 255 ``[0]``, resize JSON lines
-> channel 4; channel 1/2 -> stdout/stderr; channel 3 (the final Status) -> the error stream, and
then every stream is closed and the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from nestlab.api import rawupgrade
from nestlab.api.spdysession import SpdySession, SpdyStream, StreamClosed
from nestlab.api.streamtypes import (
    CLOSE,
    ERROR,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    ChannelBackend,
    StreamError,
    StreamOptions,
)

log = logging.getLogger(__name__)

PROTOCOLS: Final = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
"""What the kubelet accepts over SPDY (v5 is v4 there: the CLOSE signal is WebSocket-only)."""
JSON_STATUS: Final = frozenset({"v5.channel.k8s.io", "v4.channel.k8s.io"})
RESIZABLE: Final = frozenset({"v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"})
STREAM_CREATION_TIMEOUT_S: Final = 30.0
"""The kubelet's default ``streamCreationTimeout``."""
RESIZE_LINE_MAX: Final = 4096
"""A resize message is ``{"Width":W,"Height":H}``; a longer line is not one."""


def wants_spdy(request: web.BaseRequest) -> bool:
    """The request asks for ``Upgrade: SPDY/3.1`` (kubectl's SPDY executor and port-forward)."""
    return rawupgrade.is_upgrade(request, rawupgrade.SPDY_31)


def expected_streams(options: StreamOptions, protocol: str) -> frozenset[str]:
    """The ``streamType``s the client opens for this query (the kubelet's ``expectedStreams``)."""
    kinds = {"error"}
    if options.stdin:
        kinds.add("stdin")
    if options.stdout:
        kinds.add("stdout")
    if options.stderr and not options.tty:
        kinds.add("stderr")  # a tty has no separate stderr (the kubelet drops it too)
    if options.tty and protocol in RESIZABLE:
        kinds.add("resize")
    return frozenset(kinds)


def failure_status(message: str) -> bytes:
    """Upstream's Status for an exec that could not run (``apierrors.NewInternalError``)."""
    status = {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }
    return json.dumps(status, separators=(",", ":")).encode()


def error_stream_payload(protocol: str, status: bytes) -> bytes:
    """What goes on the error stream: the Status itself (v4+), or its message on failure (v1-v3)."""
    if protocol in JSON_STATUS:
        return status
    try:
        decoded: Any = json.loads(status)
    except ValueError:
        return status
    if not isinstance(decoded, dict) or decoded.get("status") == "Success":
        return b""
    return str(decoded.get("message", "")).encode()


def resize_messages(buffer: bytearray, data: bytes) -> list[bytes]:
    """Complete resize lines in ``buffer + data`` as channel-4 payloads (the rest stays buffered)."""
    buffer += data
    found = []
    while b"\n" in buffer:
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        try:
            size: Any = json.loads(line)
            width, height = int(size["Width"]), int(size["Height"])
        except (ValueError, KeyError, TypeError):
            log.info("ignoring a malformed terminal resize message %r", line[:100])
            continue
        found.append(json.dumps({"Width": width, "Height": height}, separators=(",", ":")).encode())
    if len(buffer) > RESIZE_LINE_MAX:
        buffer.clear()
    return found


async def wait_for_streams(
    session: SpdySession, expected: frozenset[str], timeout: float
) -> dict[str, SpdyStream] | None:
    """The streams by type once all ``expected`` ones arrived; None on timeout or hang-up."""
    streams: dict[str, SpdyStream] = {}

    async def collect() -> None:
        while not expected <= streams.keys():
            stream = await session.accept()
            if stream is None:
                return
            kind = stream.header("streamType")
            if kind not in expected or kind in streams:
                log.info("unexpected exec stream type %r: resetting it", kind)
                await stream.reset()
                continue
            streams[kind] = stream

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        log.warning("timed out waiting for client to create streams (have %s)", sorted(streams))
        return None
    return streams if expected <= streams.keys() else None


async def _pump_stdin(stream: SpdyStream, backend: ChannelBackend) -> None:
    while data := await stream.read():
        await backend.send(STDIN, data)
    await backend.send(CLOSE, bytes([STDIN]))


async def _pump_resize(stream: SpdyStream, backend: ChannelBackend) -> None:
    buffer = bytearray()
    while data := await stream.read():
        for message in resize_messages(buffer, data):
            await backend.send(RESIZE, message)


async def _pump_output(streams: dict[str, SpdyStream], backend: ChannelBackend) -> bytes | None:
    """Pod output to the client until the final Status (returned) or the end of the session."""
    targets = {STDOUT: streams.get("stdout"), STDERR: streams.get("stderr")}
    while (message := await backend.receive()) is not None:
        channel, data = message
        if channel == ERROR:
            return data
        target = targets.get(channel)
        if target is not None and not target.local_closed:
            await target.write(data)
    return None


async def relay(
    session: SpdySession, streams: dict[str, SpdyStream], backend: ChannelBackend, protocol: str
) -> None:
    """Run one exec/attach session between the client's streams and the backend."""
    inputs = []
    if "stdin" in streams:
        inputs.append(asyncio.create_task(_pump_stdin(streams["stdin"], backend)))
    if "resize" in streams:
        inputs.append(asyncio.create_task(_pump_resize(streams["resize"], backend)))
    output = asyncio.create_task(_pump_output(streams, backend))
    hangup = asyncio.create_task(session.ended.wait())
    status: bytes | None = None
    try:
        await asyncio.wait({output, hangup}, return_when=asyncio.FIRST_COMPLETED)
        if output.done():
            try:
                status = output.result()
            except (StreamError, StreamClosed) as exc:
                status = failure_status(str(exc))
            if status is None:
                status = failure_status("the session to the pod ended without an exit status")
    finally:
        for task in (*inputs, output, hangup):
            task.cancel()
        for task in (*inputs, output, hangup):
            with contextlib.suppress(asyncio.CancelledError, StreamError, StreamClosed):
                await task
        await backend.close()
    if status is not None:
        await finish(streams, protocol, status)


async def finish(streams: dict[str, SpdyStream], protocol: str, status: bytes) -> None:
    """Write the Status to the error stream, then half-close every stream we write to."""
    with contextlib.suppress(StreamClosed):
        payload = error_stream_payload(protocol, status)
        if payload:
            await streams["error"].write(payload)
    for stream in streams.values():
        await stream.close()


async def serve_spdy_exec(
    request: web.Request,
    open_backend: Callable[[], Awaitable[ChannelBackend]],
    options: StreamOptions,
) -> web.StreamResponse:
    """Answer an exec/attach request that asked for ``Upgrade: SPDY/3.1`` (checks already done)."""
    if not wants_spdy(request):
        return rawupgrade.missing_upgrade(request)
    protocol = rawupgrade.negotiate(request, PROTOCOLS)
    if isinstance(protocol, web.Response):
        return protocol
    response, channel = await rawupgrade.upgrade(
        request, rawupgrade.SPDY_31, {rawupgrade.PROTOCOL_VERSION: protocol}
    )
    async with SpdySession(channel) as session:
        streams = await wait_for_streams(
            session, expected_streams(options, protocol), STREAM_CREATION_TIMEOUT_S
        )
        if streams is None:
            return response
        try:
            backend = await open_backend()
            await relay(session, streams, backend, protocol)
        except StreamError as exc:
            await finish(streams, protocol, failure_status(str(exc)))
        except Exception as exc:
            # After the upgrade no HTTP status can say it: without a Status on the error stream,
            # kubectl would exit 0 as if the command had succeeded.
            log.exception("exec over SPDY failed")
            await finish(streams, protocol, failure_status(f"{type(exc).__name__}: {exc}"))
    return response
