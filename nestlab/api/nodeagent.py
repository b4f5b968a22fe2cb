"""The one client for node agents: API server and controller -> ``https://<node>:10250`` with mutual TLS.

The API server (``pods/log``) and the controller (attestation) both talk to the agent a Node
advertises, the way a kube-apiserver talks to kubelets: the Node's ``InternalIP`` and
``status.daemonEndpoints.kubeletEndpoint.Port``, a server certificate from the lab CA, and the
caller's own lab-CA client certificate (agents answer no one else). Everything that can go wrong
is a :class:`NodeAgentError` naming the node or URL and what to check, with the HTTP status the
API server should answer with (``code``), so no caller catches aiohttp or ssl types.

The interactive sessions (``pods/exec``, ``attach``, ``portforward``) are WebSockets to the agent's
``/exec``, ``/attach`` and ``/portForward`` endpoints, returned as the stream backends of
:mod:`nestlab.api.streamtypes` so the API server's protocol adapters never see aiohttp.

This module is the only place that opens HTTP connections to agents.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from nestlab.api.streamtypes import ByteBackend, ChannelBackend, StreamError, StreamOptions
from nestlab.errors import NestlabError

Obj = dict[str, Any]
CONNECT_TIMEOUT_S: Final = 10.0  # a TLS handshake with a loaded host; longer means the host is away
CALL_TIMEOUT_S: Final = 30.0  # a TPM quote on a loaded host's swtpm takes well under a second; TCG margin
_BODY_IN_ERRORS: Final = 300  # characters of an agent's error answer kept in our message


class NodeAgentError(NestlabError):
    """A node agent could not be asked, or did not give a usable answer."""

    code: int = 503
    """The HTTP status an API server answers its own client with (503: try again later)."""


class NoEndpointError(NodeAgentError):
    """The Node advertises no agent address or port: its agent never registered it."""


class AgentUnreachableError(NodeAgentError):
    """Connection refused, timed out, or TLS failed (wrong CA, our certificate refused)."""


class AgentAnswerError(NodeAgentError):
    """The agent answered with an error status; ``status`` and ``text`` are its answer."""

    def __init__(self, message: str, status: int, text: str) -> None:
        super().__init__(message)
        self.status = status
        self.text = text
        self.code = status if status in (400, 404) else 502


class BadAnswerError(NodeAgentError):
    """The agent answered 200 with something that is not what was asked for (not JSON)."""

    code = 502


def client_tls(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """Client TLS towards agents: trust the lab CA (system CAs when None); ours proves who we are.

    OSError or ssl.SSLError when a file cannot be loaded: a start-up mistake, which each program
    reports as a usage error naming its own flags.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=None if ca is None else str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


def base_url(node: Mapping[str, Any]) -> str:
    """``https://<InternalIP>:<kubeletEndpoint port>`` of ``node``; NoEndpointError when it has none."""
    status = node.get("status") or {}
    addresses = [a for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not addresses or not port:
        name = (node.get("metadata") or {}).get("name")
        raise NoEndpointError(
            f"node {name} advertises no agent endpoint (InternalIP and kubeletEndpoint): "
            "is nestlab-agent running there?"
        )
    address = str(addresses[0]["address"])
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{int(port)}"


def _ssl(context: ssl.SSLContext | None) -> ssl.SSLContext | bool:
    return context if context is not None else True


def _transport_error(url: str, exc: BaseException) -> AgentUnreachableError:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLError):
        hint = "TLS failed: check that the agent's certificate and ours come from the lab CA"
    elif isinstance(exc, TimeoutError):
        hint = "timed out: is the host up and not overloaded?"
    else:
        hint = "is nestlab-agent running on that node?"
    return AgentUnreachableError(f"the node agent at {url} did not answer ({hint}): {_detail(exc)}")


def _detail(exc: BaseException) -> str:
    """What went wrong, without aiohttp's connection-key noise (``connection refused``)."""
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientConnectorCertificateError
    ):
        error = exc.os_error
        return error.strerror.lower() if error.strerror else repr(error)
    return repr(exc)


def _answer_error(url: str, status: int, text: str) -> AgentAnswerError:
    body = text.strip()[:_BODY_IN_ERRORS]
    return AgentAnswerError(f"the node agent at {url} answered {status}: {body}", status, body)


async def post_json(url: str, body: Obj, context: ssl.SSLContext | None) -> object:
    """POST ``body`` as JSON and decode the JSON answer; NodeAgentError on any failure."""
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=body, ssl=_ssl(context)) as response,
        ):
            text = await response.text()
            code = response.status
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
        raise _transport_error(url, exc) from exc
    if code != 200:
        raise _answer_error(url, code, text)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadAnswerError(
            f"the node agent at {url} answered something that is not JSON: {text[:120]!r}"
        ) from exc


@dataclass(frozen=True)
class Stream:
    """An open 200 answer whose body arrives in chunks (a log, possibly followed)."""

    url: str
    response: aiohttp.ClientResponse

    async def chunks(self, size: int = 64 * 1024) -> AsyncGenerator[bytes, None]:
        """The body as it arrives; AgentUnreachableError when the agent goes away mid-answer."""
        try:
            async for chunk in self.response.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise _transport_error(self.url, exc) from exc


@asynccontextmanager
async def stream(
    node: Mapping[str, Any],
    path: str,
    params: Mapping[str, str],
    context: ssl.SSLContext | None,
    *,
    idle_timeout: float | None = CALL_TIMEOUT_S,
) -> AsyncIterator[Stream]:
    """GET ``path`` on ``node``'s agent and hold the answer open while the caller reads it.

    ``idle_timeout``: the longest wait for the next bytes (None for a followed log, which may be
    quiet for hours). A non-200 answer raises AgentAnswerError before anything is yielded, so the
    caller can still answer its own client with an error status.
    """
    url = base_url(node) + path
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=idle_timeout)
    try:
        session = aiohttp.ClientSession(timeout=timeout)
    except Exception as exc:  # pragma: no cover - aiohttp only fails here without an event loop
        raise AgentUnreachableError(f"cannot open a session to {url}: {exc!r}") from exc
    async with session:
        try:
            response = await session.get(url, params=dict(params), ssl=_ssl(context))
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise _transport_error(url, exc) from exc
        async with response:
            if response.status != 200:
                try:
                    text = await response.text()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    text = f"(answer unreadable: {exc!r})"
                raise _answer_error(url, response.status, text)
            yield Stream(url, response)


# -- interactive sessions (pods/exec, pods/attach, pods/portforward) -------------------------------
EXEC_PROTOCOL: Final = "v5.channel.k8s.io"
"""The agent's exec/attach framing: binary messages, first byte the channel (streamtypes)."""
PORT_PROTOCOL: Final = "nestlab.portforward.v1"
"""The agent's port-forward framing: binary messages are raw bytes, one TEXT message is an error."""
SESSION_HEARTBEAT_S: Final = 30.0  # a ping every 30 s: a dead agent ends a silent shell within ~45 s
SESSION_MAX_MESSAGE: Final = 4 * 1024 * 1024  # the agent frames at most 64 KiB; generous margin


def _flag(value: bool) -> str:
    return "1" if value else "0"


def exec_query(options: StreamOptions) -> list[tuple[str, str]]:
    """The agent's ``/exec`` (or ``/attach``, without commands) query for ``options``."""
    query = [("command", part) for part in options.command]
    query += [
        ("stdin", _flag(options.stdin)),
        ("stdout", _flag(options.stdout)),
        ("stderr", _flag(options.stderr)),
        ("tty", _flag(options.tty)),
    ]
    return query


async def _open_ws(
    node: Mapping[str, Any],
    path: str,
    params: list[tuple[str, str]],
    protocol: str,
    context: ssl.SSLContext | None,
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """Open one WebSocket to ``node``'s agent; NodeAgentError (with the agent's own words) on failure.

    aiohttp's handshake error carries no body, so the answer to a refused upgrade is read as it
    arrives (``on_request_end``): the agent's 404/400 text is what the user needs to act on.
    """
    url = base_url(node) + path
    refused: dict[str, str] = {}

    async def keep_refusal(
        _session: aiohttp.ClientSession, _ctx: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status != 101:
            try:
                refused["text"] = (await params.response.read()).decode(errors="replace")
            except (aiohttp.ClientError, TimeoutError) as exc:
                refused["text"] = f"(answer unreadable: {exc!r})"

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(keep_refusal)
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=CALL_TIMEOUT_S)
    session = aiohttp.ClientSession(timeout=timeout, trace_configs=[trace])
    try:
        ws = await session.ws_connect(
            url,
            params=params,
            protocols=(protocol,),
            ssl=_ssl(context),
            heartbeat=SESSION_HEARTBEAT_S,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CONNECT_TIMEOUT_S),
            max_msg_size=SESSION_MAX_MESSAGE,
        )
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        if exc.status == 101:
            raise BadAnswerError(f"the node agent at {url} did not speak {protocol}: {exc.message}") from exc
        raise _answer_error(url, exc.status, refused.get("text", exc.message)) from exc
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
        await session.close()
        raise _transport_error(url, exc) from exc
    except BaseException:
        await session.close()
        raise
    if ws.protocol != protocol:
        await ws.close()
        await session.close()
        raise BadAnswerError(f"the node agent at {url} answered subprotocol {ws.protocol!r}, not {protocol}")
    return session, ws


class _AgentSocket:
    """One open WebSocket to an agent and the client session that owns it."""

    def __init__(self, url: str, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.url = url
        self.session = session
        self.ws = ws

    async def _send(self, payload: bytes) -> None:
        try:
            await self.ws.send_bytes(payload)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise StreamError(f"the session with the node agent at {self.url} broke: {exc!r}") from exc

    async def _next(self) -> aiohttp.WSMessage | None:
        """The next data message; None once the agent closed (or the connection went away)."""
        while True:
            try:
                message = await self.ws.receive()
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                return None
            if message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                return message
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return None
            if message.type is aiohttp.WSMsgType.ERROR:
                return None

    async def close(self) -> None:
        """Close the WebSocket and its session (idempotent)."""
        with suppress(aiohttp.ClientError, ConnectionError):
            await self.ws.close()
        await self.session.close()


class AgentChannels(_AgentSocket):
    """A :class:`~nestlab.api.streamtypes.ChannelBackend` over the agent's ``/exec`` or ``/attach``."""

    async def send(self, channel: int, data: bytes) -> None:
        await self._send(bytes([channel]) + data)

    async def receive(self) -> tuple[int, bytes] | None:
        while True:
            message = await self._next()
            if message is None:
                return None
            data = message.data if isinstance(message.data, bytes) else str(message.data).encode()
            if data:
                return data[0], data[1:]


class AgentPort(_AgentSocket):
    """A :class:`~nestlab.api.streamtypes.ByteBackend` over the agent's ``/portForward``."""

    async def send(self, data: bytes) -> None:
        await self._send(data)

    async def receive(self) -> bytes | None:
        while True:
            message = await self._next()
            if message is None:
                return None
            if message.type is aiohttp.WSMsgType.TEXT:
                raise StreamError(str(message.data))
            if message.data:
                return bytes(message.data)


def _part(value: str) -> str:
    return quote(value, safe="")


async def exec_session(
    node: Mapping[str, Any],
    namespace: str,
    pod: str,
    options: StreamOptions,
    context: ssl.SSLContext | None,
    *,
    attach: bool = False,
) -> ChannelBackend:
    """Open an exec (or, with ``attach``, an attach) session in ``options.container`` of the pod."""
    verb = "attach" if attach else "exec"
    path = f"/{verb}/{_part(namespace)}/{_part(pod)}/{_part(options.container)}"
    params = exec_query(replace(options, command=()) if attach else options)
    session, ws = await _open_ws(node, path, params, EXEC_PROTOCOL, context)
    return AgentChannels(base_url(node) + path, session, ws)


async def port_session(
    node: Mapping[str, Any], namespace: str, pod: str, port: int, context: ssl.SSLContext | None
) -> ByteBackend:
    """Open one forwarded connection to ``port`` inside the pod."""
    path = f"/portForward/{_part(namespace)}/{_part(pod)}"
    session, ws = await _open_ws(node, path, [("port", str(port))], PORT_PROTOCOL, context)
    return AgentPort(base_url(node) + path, session, ws)
