"""The one client for node agents: API server and controller -> ``https://<node>:10250`` with mutual TLS.

The API server (``pods/log``) and the controller (attestation) both talk to the agent a Node
advertises, the way a kube-apiserver talks to kubelets: the Node's ``InternalIP`` and
``status.daemonEndpoints.kubeletEndpoint.Port``, a server certificate from the lab CA, and the
caller's own lab-CA client certificate (agents answer no one else). Everything that can go wrong
is a :class:`NodeAgentError` naming the node or URL and what to check, with the HTTP status the
API server should answer with (``code``), so no caller catches aiohttp or ssl types.

This module is the only place that opens HTTP connections to agents.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

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
    return AgentUnreachableError(f"the node agent at {url} did not answer ({hint}): {exc!r}")


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
