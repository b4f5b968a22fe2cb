"""Pod logs (and attestation answers), served by the agent over HTTPS the way a kubelet serves logs.

A container's output reaches the pod's serial console as ``[container] line`` (pod-init prefixes
every line), so a container's log is the console filtered by that prefix. The endpoint is the
kubelet's: ``GET /containerLogs/{namespace}/{pod}/{container}?tailLines=N``, on the port the Node
advertises in ``status.daemonEndpoints.kubeletEndpoint``, with the node's certificate; when a
client CA is given, only clients with a certificate from it (the API servers) are answered.
:func:`container_log` is pure; :func:`serve` is the one place that listens.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from nestlab.agent.attestation import Attestation, AttestationUnavailableError, BadChallengeError, parse_nonce
from nestlab.errors import NestlabError

LogLookup = Callable[[str, str], Path | None]
"""(namespace, pod name) -> that pod's console log, or None for a pod not on this node."""
MAX_LOG_BYTES = 8 * 1024 * 1024  # the tail of a long console is what anyone reads
FETCH_TIMEOUT_S = 20.0


class LogFetchError(NestlabError):
    """The node's agent could not be asked for a log (node without endpoint, agent down, 404)."""

    def __init__(self, message: str, code: int = 503) -> None:
        super().__init__(message)
        self.code = code


def container_log(console: str, container: str, tail: int | None = None) -> str:
    """The lines ``container`` wrote, from the pod's console text."""
    prefix = f"[{container}] "
    lines = [line[len(prefix) :] for line in console.splitlines() if line.startswith(prefix)]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return "".join(line + "\n" for line in lines)


def _read_tail(path: Path) -> str:
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - MAX_LOG_BYTES))
        return handle.read().decode(errors="replace")


def app(lookup: LogLookup, attestation: Attestation | None = None) -> web.Application:
    """The HTTP application (no TLS): routes only; ``POST /attestation`` when ``attestation`` is given."""

    async def logs(request: web.Request) -> web.Response:
        namespace, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        console = lookup(namespace, pod)
        if console is None:
            raise web.HTTPNotFound(text=f"pod {namespace}/{pod} is not on this node\n")
        tail_text = request.query.get("tailLines")
        try:
            tail = None if tail_text is None else int(tail_text)
        except ValueError:
            raise web.HTTPBadRequest(text=f"tailLines {tail_text!r} is not a number\n") from None
        text = _read_tail(console) if console.exists() else ""
        return web.Response(text=container_log(text, container, tail), content_type="text/plain")

    async def attest(request: web.Request, attestation: Attestation) -> web.Response:
        try:
            nonce = parse_nonce(await request.json())
        except (BadChallengeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        try:
            answer = await asyncio.to_thread(attestation.answer, nonce)
        except AttestationUnavailableError as exc:
            raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None
        return web.json_response(answer)

    application = web.Application()
    application.router.add_get("/containerLogs/{namespace}/{pod}/{container}", logs)
    if attestation is not None:
        application.router.add_post("/attestation", functools.partial(attest, attestation=attestation))
    return application


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """Server TLS with the node's certificate; client certificates required when ``client_ca`` is set."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.load_verify_locations(str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def serve(
    lookup: LogLookup,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    attestation: Attestation | None = None,
) -> web.AppRunner:
    """Start serving; ``await runner.cleanup()`` stops it."""
    runner = web.AppRunner(app(lookup, attestation), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner


def log_url(node: dict[str, Any], namespace: str, pod: str, container: str) -> str:
    """Where ``node``'s agent serves a container's log (InternalIP and kubeletEndpoint port)."""
    status = node.get("status") or {}
    addresses = [a for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not addresses or not port:
        name = (node.get("metadata") or {}).get("name")
        raise LogFetchError(f"node {name} advertises no log endpoint (is nestlab-agent running there?)")
    return f"https://{addresses[0]['address']}:{port}/containerLogs/{namespace}/{pod}/{container}"


async def fetch(
    node: dict[str, Any],
    namespace: str,
    pod: str,
    container: str,
    *,
    context: ssl.SSLContext,
    tail: int | None = None,
) -> str:
    """A container's log from its node's agent (what the API server's pods/log proxies to).

    ``context`` must carry a client certificate from the lab CA (the API server's node certificate).
    """
    url = log_url(node, namespace, pod, container)
    params = {} if tail is None else {"tailLines": str(tail)}
    try:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, params=params, ssl=context) as response,
        ):
            text = await response.text()
            code = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise LogFetchError(f"the agent at {url} did not answer: {exc!r}") from exc
    if code != 200:
        raise LogFetchError(f"{url} answered {code}: {text.strip()[:200]}", code)
    return text
