"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: the API server's interactive subresources.

As upstream, the API server does not run anything itself: it checks the request the way
kube-apiserver's pod registry does (``ExecLocation``/``AttachLocation``/``PortForwardLocation``:
404 for a missing pod, 400 ``container x is not valid for pod y``, ``pod p does not have a host
assigned``...), then relays between its client and one session on the pod's node agent
(:mod:`nestlab.api.nodeagent`, mutual TLS). Which protocol the client speaks decides the relay:

- WebSocket ``v5.channel.k8s.io`` (kubectl 1.30+ exec/attach/cp) and its predecessors
  (``v4.channel.k8s.io``, ``channel.k8s.io``, their ``base64`` forms): relayed here, frame by frame;
- ``Upgrade: SPDY/3.1`` (kubectl 1.20 everything, modern port-forward) and SPDY tunneled in a
  WebSocket (``SPDY/3.1+portforward.k8s.io``): the SPDY adapters (:mod:`nestlab.api.spdyexec`,
  :mod:`nestlab.api.spdyportforward`);
- a plain request: 400 ``Upgrade request required``, as upstream's upgrade-aware proxy answers.

A pod on a host that is gone must not leave ``kubectl exec`` hanging: a Node the node lifecycle
controller marked unreachable (Ready=Unknown) is answered at once, and every other dial to an
agent gets :data:`DIAL_TIMEOUT_S` to connect (a host stopped a moment ago is still Ready: its
address simply stops answering), both as 503 with upstream's ``error dialing backend`` wording.

The checks and the negotiation are pure functions (unit-tested); the relays are small loops.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from nestlab.api import nodeagent, podlogs, spdyexec, spdyportforward, status
from nestlab.api.registry import Registry
from nestlab.api.resources import NODES, PODS
from nestlab.api.streamtypes import (
    CLOSE,
    ERROR,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    ByteBackend,
    ChannelBackend,
    StreamError,
    StreamOptions,
)

SUBRESOURCES: Final = frozenset({"exec", "attach", "portforward"})
TUNNEL_PROTOCOL: Final = "SPDY/3.1+portforward.k8s.io"
HEARTBEAT_S: Final = 30.0  # ping the client every 30 s: a vanished kubectl releases its session
# TCP connect to a node agent. Hosts share a bridge with the control plane: an answer takes
# milliseconds, and 3 s still covers a lost SYN (retried after 1 s). Longer means the host is gone.
DIAL_TIMEOUT_S: Final = 3.0
# A dial that timed out is remembered this long: kubectl 1.30+ retries a refused WebSocket exec
# over SPDY at once, and that second request must not wait the whole timeout again.
DIAL_MEMORY_S: Final = 5.0
_silent: dict[str, float] = {}
"""agent ``host:port`` -> when (monotonic) a dial to it last timed out."""
UNREACHABLE_TAINT: Final = "node.kubernetes.io/unreachable"
MAX_MESSAGE: Final = 4 * 1024 * 1024  # kubectl cp sends 32 KiB stdin frames; generous margin
Connect = Callable[[int], Awaitable[ByteBackend]]
"""Open one forwarded connection to a port in the pod (StreamError when that fails)."""


@dataclass(frozen=True)
class WsProtocol:
    """One WebSocket subprotocol of the channel family and what it changes on the wire."""

    name: str
    binary: bool = True
    """False: TEXT messages, the channel as an ASCII digit, then the data in base64."""
    json_status: bool = True
    """v4+: the error channel carries a JSON v1 Status; before: the error text alone."""
    close_channel: bool = False
    """v5: the client may half-close stdin with a CLOSE (255) message."""

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """One message on ``channel``."""
        if self.binary:
            return bytes([channel]) + data
        return chr(ord("0") + channel) + base64.b64encode(data).decode()

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """(channel, data) of a client message; None for one that carries nothing usable."""
        if isinstance(message, bytes):
            return (message[0], message[1:]) if message else None
        if not message or not message[0].isdigit():
            return None
        try:
            return ord(message[0]) - ord("0"), base64.b64decode(message[1:])
        except ValueError:
            return None


EXEC_PROTOCOLS: Final = {
    p.name: p
    for p in (
        WsProtocol("v5.channel.k8s.io", close_channel=True),
        WsProtocol("v4.channel.k8s.io"),
        WsProtocol("v4.base64.channel.k8s.io", binary=False),
        WsProtocol("channel.k8s.io", json_status=False),
        WsProtocol("base64.channel.k8s.io", binary=False, json_status=False),
        WsProtocol("", json_status=False),
    )
}
PORT_PROTOCOLS: Final = {
    p.name: p for p in (WsProtocol("v4.channel.k8s.io"), WsProtocol("v4.base64.channel.k8s.io", binary=False))
} | {"": WsProtocol("")}


@dataclass(frozen=True)
class Plan:
    """How to serve one request, from its upgrade headers."""

    kind: str
    """``websocket`` (relayed here), ``spdy`` or ``tunnel`` (the SPDY adapters)."""
    protocol: WsProtocol | None = None
    """The negotiated WebSocket subprotocol (``websocket`` only)."""


# -- checks (pure) ---------------------------------------------------------------------------------
def flag(values: list[str], default: bool) -> bool:
    """A boolean query parameter as upstream decodes one: ``0`` or ``false`` is false, anything else
    (even empty) true; absent keeps the default."""
    if not values:
        return default
    return not (values[0] == "0" or values[0].lower() == "false")


def stream_options(query: MultiMapping[str], *, attach: bool) -> StreamOptions:
    """The ``PodExecOptions``/``PodAttachOptions`` of a query (container still as asked, maybe "");
    400 in upstream's words when it cannot run."""
    command = () if attach else tuple(query.getall("command", []))
    if not attach and not command:
        raise status.bad_request("you must specify at least 1 command")
    tty = flag(query.getall("tty", []), False)
    stdin = flag(query.getall("stdin", []), False)
    stdout = flag(query.getall("stdout", []), True)
    stderr = flag(query.getall("stderr", []), True) and not tty  # a terminal has one output stream
    if not (stdin or stdout or stderr):
        raise status.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return StreamOptions(query.get("container", ""), command, stdin, stdout, stderr, tty)


def ports_of(query: MultiMapping[str]) -> tuple[int, ...]:
    """The ``ports`` of a WebSocket port-forward (``?ports=80&ports=8080`` or ``?ports=80,8080``)."""
    asked = query.getall("ports", []) or query.getall("port", [])
    if not asked:
        raise status.bad_request('query parameter "ports" is required')
    ports = []
    for value in asked:
        for part in value.split(","):
            if not part.isdigit() or not 0 < int(part) < 65536:
                raise status.bad_request(f"invalid port {part!r}: a port is a number from 1 to 65535")
            ports.append(int(part))
    return tuple(ports)


def node_of(pod: Mapping[str, Any], subresource: str) -> str:
    """The node a pod runs on; 400 when it has none or has completed (nothing left to reach)."""
    name = str((pod.get("metadata") or {}).get("name", ""))
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    if not node:
        raise status.bad_request(f"pod {name} does not have a host assigned")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        if subresource == "portforward":
            raise status.bad_request(
                f"unable to forward port because pod is not running. Current status={phase}"
            )
        verb = "exec into" if subresource == "exec" else "attach"
        raise status.bad_request(f"cannot {verb} a container in a completed pod; current phase is {phase}")
    return node


def _tokens(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def negotiate(headers: Mapping[str, str], subresource: str) -> Plan:
    """Which protocol serves a request; 400 when it asks for no upgrade or none we speak."""
    upgrade = headers.get("Upgrade", "").lower()
    connection = [token.lower() for token in _tokens(headers.get("Connection", ""))]
    if "upgrade" not in connection or not upgrade:
        raise status.bad_request("Upgrade request required")
    if upgrade.startswith("spdy/"):
        return Plan("spdy")
    if upgrade != "websocket":
        raise status.bad_request(f"unable to upgrade: unsupported protocol {headers.get('Upgrade')!r}")
    offered = _tokens(headers.get("Sec-WebSocket-Protocol", "")) or [""]
    known = PORT_PROTOCOLS if subresource == "portforward" else EXEC_PROTOCOLS
    for name in offered:
        if subresource == "portforward" and name == TUNNEL_PROTOCOL:
            return Plan("tunnel")
        if name in known:
            return Plan("websocket", known[name])
    supported = sorted(n for n in known if n) + ([TUNNEL_PROTOCOL] if subresource == "portforward" else [])
    raise status.bad_request(f"requested protocol(s) are not supported: {offered}; supports {supported}")


def status_text(data: bytes) -> bytes:
    """The error channel's payload for a pre-v4 client: the message of a failed Status, else nothing."""
    try:
        answer = json.loads(data)
    except ValueError:
        return data
    if not isinstance(answer, dict) or answer.get("status") == "Success":
        return b""
    return str(answer.get("message", "")).encode()


def backend_unavailable(message: str) -> status.ApiError:
    """503 without Retry-After, as :func:`agent_failure` answers: a client must not loop on it."""
    return status.ApiError(503, "ServiceUnavailable", message)


def unreachable(node: Mapping[str, Any]) -> str | None:
    """Why ``node``'s agent cannot be reached, from what the node lifecycle controller wrote
    (Ready=Unknown, the unreachable taint); None when nothing says so."""
    name = str((node.get("metadata") or {}).get("name", ""))
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    taints = (node.get("spec") or {}).get("taints") or []
    if ready is not None and ready.get("status") == "Unknown":
        said = str(ready.get("message") or "its agent stopped posting status")
    elif any(t.get("key") == UNREACHABLE_TAINT for t in taints):
        said = f"it is tainted {UNREACHABLE_TAINT}"
    else:
        return None
    return (
        f"error dialing backend: node {name} is NotReady ({said.rstrip('.')}): the host is down or "
        "unreachable, so nothing on it can be reached (see `kubectl describe node "
        f"{name}`; its pods are replaced elsewhere once the eviction timeout passes)"
    )


async def dial(node: Mapping[str, Any], timeout: float = DIAL_TIMEOUT_S) -> None:
    """Connect to ``node``'s agent once, within ``timeout``: 503 with upstream's ``i/o timeout``
    wording when it does not answer. A refused or unroutable connection is left to the session
    itself, which fails as fast and names the cause."""
    name = str((node.get("metadata") or {}).get("name", ""))
    try:
        url = urlsplit(nodeagent.base_url(node))
    except nodeagent.NodeAgentError:
        return  # the session reports the missing endpoint
    host, port = url.hostname or "", url.port or 0
    loop = asyncio.get_running_loop()
    timed_out = backend_unavailable(
        f"error dialing backend: node {name}: dial tcp {url.netloc}: i/o timeout "
        f"(no answer within {timeout:g}s: is the host up? `kubectl get node {name}`)"
    )
    if loop.time() - _silent.get(url.netloc, -DIAL_MEMORY_S) < DIAL_MEMORY_S:
        raise timed_out
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        _silent[url.netloc] = loop.time()
        raise timed_out from None
    except OSError:
        return
    _silent.pop(url.netloc, None)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def agent_failure(node: str, exc: nodeagent.NodeAgentError) -> status.ApiError:
    """What the client sees when the node's agent refused or could not be reached."""
    if isinstance(exc, nodeagent.AgentAnswerError) and exc.status in (400, 404):
        reason = "BadRequest" if exc.status == 400 else "NotFound"
        return status.ApiError(exc.status, reason, f"{exc.text} (node {node})")
    reason = "ServiceUnavailable" if exc.code == 503 else "InternalError"
    return status.ApiError(exc.code, reason, f"error dialing backend: node {node}: {exc}")


# -- serving ----------------------------------------------------------------------------------------
async def serve(
    request: web.Request,
    registry: Registry,
    *,
    namespace: str,
    name: str,
    subresource: str,
    tls: ssl.SSLContext | None,
) -> web.StreamResponse:
    """Answer ``GET|POST pods/{name}/{exec,attach,portforward}`` (already authorized: create)."""
    if request.method not in ("GET", "POST"):
        raise status.method_not_allowed(request.method, f"pods/{subresource}")
    attach = subresource == "attach"
    asked = None if subresource == "portforward" else stream_options(request.query, attach=attach)
    pod = await registry.get(PODS, namespace, name)
    container = "" if asked is None else podlogs.container_of(pod, asked.container)
    node_name = node_of(pod, subresource)
    node = await registry.get(NODES, "", node_name)
    plan = negotiate(request.headers, subresource)
    if tls is None:
        raise status.unavailable("this API server has no client certificate to reach node agents")
    gone = unreachable(node)
    if gone is not None:
        raise backend_unavailable(gone)
    await dial(node)
    if asked is None:
        return await _portforward(request, plan, node, (namespace, name), tls)
    options = StreamOptions(container, asked.command, asked.stdin, asked.stdout, asked.stderr, asked.tty)
    try:
        backend = await nodeagent.exec_session(node, namespace, name, options, tls, attach=attach)
    except nodeagent.NodeAgentError as exc:
        raise agent_failure(node_name, exc) from exc
    try:
        if plan.kind == "spdy":

            async def opened() -> ChannelBackend:
                return backend  # opened before the upgrade, so a refusal is still an HTTP status

            return await spdyexec.serve_spdy_exec(request, opened, options)
        assert plan.protocol is not None  # noqa: S101 - negotiate() gives exec a WebSocket protocol
        return await relay_channels(request, backend, plan.protocol, options)
    finally:
        await backend.close()


async def _portforward(
    request: web.Request, plan: Plan, node: Mapping[str, Any], pod: tuple[str, str], tls: ssl.SSLContext
) -> web.StreamResponse:
    namespace, name = pod
    node_name = str((node.get("metadata") or {}).get("name", ""))

    async def connect(port: int) -> ByteBackend:
        try:
            return await nodeagent.port_session(node, namespace, name, port, tls)
        except nodeagent.NodeAgentError as exc:
            text = exc.text if isinstance(exc, nodeagent.AgentAnswerError) else str(exc)
            raise StreamError(
                f"error forwarding port {port} to pod {namespace}/{name} (node {node_name}): {text}"
            ) from exc

    if plan.kind == "spdy":
        return await spdyportforward.serve_spdy_portforward(request, connect)
    if plan.kind == "tunnel":
        return await spdyportforward.serve_tunneled_portforward(request, connect)
    assert plan.protocol is not None  # noqa: S101 - negotiate() gives a WebSocket plan a protocol
    return await relay_ports(request, ports_of(request.query), connect, plan.protocol)


async def _accept(request: web.Request, protocol: WsProtocol) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(
        protocols=(protocol.name,) if protocol.name else (), heartbeat=HEARTBEAT_S, max_msg_size=MAX_MESSAGE
    )
    await ws.prepare(request)
    return ws


async def _send(ws: web.WebSocketResponse, message: bytes | str) -> None:
    if isinstance(message, bytes):
        await ws.send_bytes(message)
    else:
        await ws.send_str(message)


async def _client_messages(
    ws: web.WebSocketResponse, protocol: WsProtocol
) -> AsyncIterator[tuple[int, bytes]]:
    """The client's (channel, data) messages until it closes."""
    async for message in ws:
        if message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
            decoded = protocol.decode(message.data)
            if decoded is not None:
                yield decoded


async def relay_channels(
    request: web.Request, backend: ChannelBackend, protocol: WsProtocol, options: StreamOptions
) -> web.WebSocketResponse:
    """Serve one exec/attach over a channel WebSocket until the pod side ends or the client leaves."""
    ws = await _accept(request, protocol)
    first = STDOUT if options.stdout else (STDERR if options.stderr else ERROR)
    await _send(ws, protocol.encode(first, b""))  # as the kubelet: "the session is open"

    async def to_pod() -> None:
        try:
            async for channel, data in _client_messages(ws, protocol):
                if channel in (STDIN, RESIZE) or (channel == CLOSE and protocol.close_channel):
                    await backend.send(channel, data)
        except StreamError:
            pass
        finally:  # the client left (or its half is unusable): end the pod side, which ends the loop below
            await backend.close()

    reader = asyncio.create_task(to_pod())
    try:
        while (item := await backend.receive()) is not None:
            channel, data = item
            if channel == ERROR and not protocol.json_status:
                data = status_text(data)
                if not data:
                    continue
            await _send(ws, protocol.encode(channel, data))
    except (StreamError, ConnectionError):
        pass
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()
    return ws


async def relay_ports(
    request: web.Request, ports: tuple[int, ...], connect: Connect, protocol: WsProtocol
) -> web.WebSocketResponse:
    """Serve a WebSocket port-forward (upstream's channel form: data on 2i, errors on 2i+1, each
    channel's first message the port as two little-endian bytes), one connection per port."""
    ws = await _accept(request, protocol)
    backends: dict[int, ByteBackend] = {}
    for index, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await _send(ws, protocol.encode(2 * index, prefix))
        await _send(ws, protocol.encode(2 * index + 1, prefix))
        try:
            backends[index] = await connect(port)
        except StreamError as exc:
            await _send(ws, protocol.encode(2 * index + 1, str(exc).encode()))

    async def from_pod(index: int, backend: ByteBackend) -> None:
        try:
            while (data := await backend.receive()) is not None:
                await _send(ws, protocol.encode(2 * index, data))
        except StreamError as exc:
            await _send(ws, protocol.encode(2 * index + 1, str(exc).encode()))

    async def to_pod() -> None:
        async for channel, data in _client_messages(ws, protocol):
            backend = backends.get(channel // 2)
            if channel % 2 == 0 and backend is not None:
                try:
                    await backend.send(data)
                except StreamError:
                    continue

    readers = [asyncio.create_task(from_pod(i, b)) for i, b in backends.items()]
    writer = asyncio.create_task(to_pod())
    pod_sides: asyncio.Future[Any] = asyncio.gather(*readers, return_exceptions=True)
    try:
        if readers:  # until the client leaves or every pod side has closed
            await asyncio.wait({writer, pod_sides}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (writer, *readers):
            task.cancel()
        await asyncio.gather(writer, pod_sides, return_exceptions=True)
        for backend in backends.values():
            await backend.close()
        await ws.close()
    return ws
