"""The agent's interactive endpoints: ``/exec``, ``/attach`` and ``/portForward``, as a kubelet serves them.

The API server (``pods/exec``, ``pods/attach``, ``pods/portforward``) reaches the pod through the
agent of the pod's node over one WebSocket per session, on the agent's HTTPS port (mutual TLS):

- ``GET /exec/{namespace}/{pod}/{container}?command=A&command=B&stdin=1&stdout=1&stderr=1&tty=1``
  and ``GET /attach/{namespace}/{pod}/{container}?stdin=..&stdout=..&stderr=..&tty=..``:
  subprotocol ``v5.channel.k8s.io``, binary messages ``[channel] + data`` (0 stdin, 1 stdout,
  2 stderr, 3 the final Status, 4 resize, 255 close); the agent sends exactly one channel-3
  message (upstream's Status shape) and closes.
- ``GET /portForward/{namespace}/{pod}?port=N``: subprotocol ``nestlab.portforward.v1``, binary
  messages are the connection's bytes both ways; a failure to connect inside the pod is one text
  message (upstream's ``error forwarding port ...`` wording), then close.

Each session becomes one session of the pod's stream port (:mod:`nestlab.runtime.streams`): the
agent only translates. Before the upgrade, a pod or container that is not here, or not running,
is a 404 and a bad query a 400, with a text a user can act on. The Status shapes are pure
functions (:func:`exit_status`, :func:`error_status`), tested without a VM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from nestlab.agent import podstate
from nestlab.runtime.streams import (
    Exit,
    Failure,
    Output,
    PodStreamError,
    PodStreams,
    Session,
    SessionRefusedError,
)

EXEC_PROTOCOL = "v5.channel.k8s.io"
PORT_PROTOCOL = "nestlab.portforward.v1"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_MESSAGE = 4 * 1024 * 1024  # the API server's messages are at most 64 KiB; a generous margin
INBOX = 16  # client messages read ahead of the pod; beyond that the WebSocket is not read (backpressure)
Obj = dict[str, Any]
log = logging.getLogger("nestlab.agent")


@dataclass(frozen=True)
class StreamTarget:
    """What the endpoints need of a pod on this node."""

    uid: str
    containers: Mapping[str, str]
    """Container name -> state (``waiting``, ``running``, ``terminated``), init containers included."""
    streams: PodStreams | None
    """The running VM's stream port; None while the pod has no VM."""


StreamLookup = Callable[[str, str], StreamTarget | None]
"""(namespace, pod name) -> that pod's stream target, or None for a pod not on this node."""


def find_target(
    records: Mapping[str, podstate.PodRecord],
    streams_of: Callable[[str], PodStreams | None],
    namespace: str,
    name: str,
) -> StreamTarget | None:
    """The :class:`StreamTarget` of pod ``namespace/name`` among the agent's records (None: not here)."""
    for uid, record in records.items():
        if (record.namespace, record.name) == (namespace, name):
            return StreamTarget(uid, {c.name: c.state for c in record.all()}, streams_of(uid))
    return None


# --- pure: query and Status -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExecQuery:
    """The parsed query of ``/exec`` or ``/attach``."""

    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class QueryError(ValueError):
    """A query the endpoints refuse with 400."""


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "")
    if value in ("1", "true", "True"):
        return True
    if value in ("", "0", "false", "False"):
        return False
    raise QueryError(f"query parameter {name}={value!r} must be 1 or 0")


def parse_exec_query(query: MultiMapping[str], *, attach: bool) -> ExecQuery:
    """The options of an exec (``attach`` False: at least one ``command``) or attach request."""
    command = tuple(query.getall("command", ()))
    if not attach and not command:
        raise QueryError("you must specify at least one command for the container (query parameter command)")
    if attach and command:
        raise QueryError("attach takes no command")
    stdin, stdout, stderr, tty = (_flag(query, n) for n in ("stdin", "stdout", "stderr", "tty"))
    if not (stdin or stdout or stderr):
        raise QueryError("you must specify at least one of stdin, stdout, stderr")
    return ExecQuery(command, stdin, stdout, stderr and not tty, tty)  # a TTY merges stderr (upstream)


def parse_port(query: Mapping[str, str]) -> int:
    """The ``port`` of a ``/portForward`` request (1..65535)."""
    text = query.get("port", "")
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise QueryError(f"query parameter port={text!r} must be a TCP port number (1..65535)")
    return int(text)


def success_status() -> Obj:
    """The final Status of a command that exited 0 (and of every attach that ended)."""
    return {"metadata": {}, "status": "Success"}


def exit_status(command: tuple[str, ...], code: int) -> Obj:
    """The final Status of an exec: Success, or upstream's NonZeroExitCode (kubectl exits ``code``)."""
    if code == 0:
        return success_status()
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: "
            f"error executing command [{' '.join(command)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def error_status(what: str, message: str) -> Obj:
    """Upstream's InternalError Status for a session that could not run (kubectl prints it, exits 1)."""
    cause = f"{what}: {message}"
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {cause}",
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    }


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """(cols, rows) of a channel-4 message ``{"Width": W, "Height": H}``; None if unreadable."""
    try:
        size = json.loads(payload)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, TypeError, KeyError):
        return None


# --- the endpoints ----------------------------------------------------------------------------------


def _target(
    lookup: StreamLookup, namespace: str, pod: str, container: str | None
) -> tuple[StreamTarget, PodStreams]:
    """The pod and its stream port, or the 404 that says why there is none."""
    target = lookup(namespace, pod)
    if target is None:
        raise web.HTTPNotFound(text=f'pod "{pod}" in namespace "{namespace}" is not on this node\n')
    if container is not None:
        state = target.containers.get(container)
        if state is None:
            raise web.HTTPNotFound(text=f'container "{container}" not found in pod "{pod}"\n')
        if state != "running":
            raise web.HTTPNotFound(text=f'container "{container}" in pod "{pod}" is not running\n')
    if target.streams is None:
        raise web.HTTPNotFound(text=f'pod "{pod}" has no running VM on this node\n')
    return target, target.streams


def _offered(request: web.Request, protocol: str) -> None:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if protocol not in offered:
        raise web.HTTPBadRequest(text=f"this endpoint speaks the WebSocket subprotocol {protocol} only\n")


async def _upgrade(request: web.Request, protocol: str) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=MAX_MESSAGE, autoping=True)
    await ws.prepare(request)
    return ws


async def exec_or_attach(request: web.Request, lookup: StreamLookup, *, attach: bool) -> web.StreamResponse:
    """Answer one ``/exec`` or ``/attach`` request (see the module docstring)."""
    namespace, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
    try:
        options = parse_exec_query(request.query, attach=attach)
    except QueryError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    _, streams = _target(lookup, namespace, pod, container)
    _offered(request, EXEC_PROTOCOL)
    ws = await _upgrade(request, EXEC_PROTOCOL)
    client = _Client(ws)  # reading from now on: the client's pings are answered while the pod opens
    what = "error attaching to container" if attach else "error executing command in container"
    try:
        if attach:
            session = await streams.open_attach(container, tty=options.tty, stdin=options.stdin)
        else:
            session = await streams.open_exec(
                container, options.command, tty=options.tty, stdin=options.stdin
            )
    except PodStreamError as exc:
        if not isinstance(exc, SessionRefusedError):  # the stream port itself failed: the admin's business
            log.warning("pod %s/%s: %s", namespace, pod, exc)
        await client.stop()
        await _finish(ws, error_status(what, str(exc)))
        return ws
    try:
        status = await _relay_channels(ws, client, session, options, what, attach=attach)
    finally:
        await client.stop()
        await session.close()
    await _finish(ws, status)
    return ws


class _Client:
    """The client's side of one WebSocket, read from the upgrade on into a small inbox; ``task`` ends
    when the client closes (or breaks) the connection."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue(INBOX)
        self.task = asyncio.create_task(self._read(ws))
        self._feeder: asyncio.Task[None] | None = None

    async def _read(self, ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY and message.data:
                await self.inbox.put(message.data)

    def feed(self, apply: Callable[[bytes], Awaitable[None]]) -> None:
        """Hand every message to ``apply`` (towards the pod); once the pod side broke, input is
        dropped (the session's Failure tells the client why)."""

        async def loop() -> None:
            while True:
                data = await self.inbox.get()
                with contextlib.suppress(PodStreamError):
                    await apply(data)

        self._feeder = asyncio.create_task(loop())

    async def stop(self) -> None:
        """Stop reading (before the final Status and the close, which read the client's answer)."""
        for task in (self.task, self._feeder):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                    await task


async def _finish(ws: web.WebSocketResponse, status: Obj | None) -> None:
    """Send the final Status (None: the client left, nobody to tell) and close."""
    if ws.closed:
        return
    if status is not None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(bytes([ERROR]) + json.dumps(status, separators=(",", ":")).encode())
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close()


def _channels_to(session: Session) -> Callable[[bytes], Awaitable[None]]:
    """A v5.channel.k8s.io client message to the pod: stdin, resize, stdin closed."""

    async def apply(message: bytes) -> None:
        channel, data = message[0], message[1:]
        if channel == STDIN:
            await session.send(data)
        elif channel == RESIZE:
            size = parse_resize(data)
            if size is not None:
                await session.resize(*size)
        elif channel == CLOSE and data[:1] == bytes([STDIN]):
            await session.send_eof()

    return apply


async def _relay_channels(
    ws: web.WebSocketResponse,
    client: _Client,
    session: Session,
    options: ExecQuery,
    what: str,
    *,
    attach: bool,
) -> Obj | None:
    """Relay until the session ends (its final Status) or the client goes away (None)."""
    client.feed(_channels_to(session))
    try:
        while True:
            receiving = asyncio.ensure_future(session.receive())
            done, _ = await asyncio.wait({receiving, client.task}, return_when=asyncio.FIRST_COMPLETED)
            if receiving not in done:  # the client closed the WebSocket (or broke it)
                receiving.cancel()
                return None
            event = receiving.result()
            if isinstance(event, Output):
                wanted = options.stderr if event.stderr else options.stdout
                if wanted:
                    await ws.send_bytes(bytes([STDERR if event.stderr else STDOUT]) + event.data)
            elif isinstance(event, Exit):
                return success_status() if attach else exit_status(options.command, event.code)
            elif isinstance(event, Failure):
                return error_status(what, event.message)
            else:
                return error_status(what, "the session ended without an exit status")
    except (ConnectionError, PodStreamError) as exc:
        return error_status(what, str(exc))


async def port_forward(request: web.Request, lookup: StreamLookup) -> web.StreamResponse:
    """Answer one ``/portForward`` request: one forwarded TCP connection."""
    namespace, pod = request.match_info["namespace"], request.match_info["pod"]
    try:
        port = parse_port(request.query)
    except QueryError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    target, streams = _target(lookup, namespace, pod, None)
    _offered(request, PORT_PROTOCOL)
    ws = await _upgrade(request, PORT_PROTOCOL)
    client = _Client(ws)
    prefix = f"error forwarding port {port} to pod {namespace}/{pod}, uid {target.uid}: "
    try:
        session = await streams.open_port(port)
    except PodStreamError as exc:
        if not isinstance(exc, SessionRefusedError):
            log.warning("pod %s/%s: %s", namespace, pod, exc)
        await client.stop()
        await _refuse(ws, prefix + f"failed to connect to localhost:{port} inside the pod VM: {exc}")
        return ws
    try:
        failure = await _relay_bytes(ws, client, session)
    finally:
        await client.stop()
        await session.close()
    if failure is not None:
        await _refuse(ws, prefix + failure)
    else:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws


async def _refuse(ws: web.WebSocketResponse, message: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(message)
        await ws.close()


async def _relay_bytes(ws: web.WebSocketResponse, client: _Client, session: Session) -> str | None:
    """Relay until either side closes; the failure's message when the pod side broke."""
    client.feed(session.send)
    try:
        while True:
            receiving = asyncio.ensure_future(session.receive())
            done, _ = await asyncio.wait({receiving, client.task}, return_when=asyncio.FIRST_COMPLETED)
            if receiving not in done:
                receiving.cancel()
                return None
            event = receiving.result()
            if isinstance(event, Output):
                await ws.send_bytes(event.data)
            elif isinstance(event, Failure):
                return event.message
            else:  # Exit (the pod side closed) or None
                return None
    except PodStreamError as exc:
        return str(exc)
    except ConnectionError:
        return None


def add_routes(application: web.Application, lookup: StreamLookup) -> None:
    """Register ``/exec``, ``/attach`` and ``/portForward`` on the agent's application."""

    async def exec_handler(request: web.Request) -> web.StreamResponse:
        return await exec_or_attach(request, lookup, attach=False)

    async def attach_handler(request: web.Request) -> web.StreamResponse:
        return await exec_or_attach(request, lookup, attach=True)

    async def port_handler(request: web.Request) -> web.StreamResponse:
        return await port_forward(request, lookup)

    application.router.add_get("/exec/{namespace}/{pod}/{container}", exec_handler)
    application.router.add_get("/attach/{namespace}/{pod}/{container}", attach_handler)
    application.router.add_get("/portForward/{namespace}/{pod}", port_handler)
