"""Pod logs (and attestation answers), served by the agent over HTTPS the way a kubelet serves logs.

The endpoint is the kubelet's: ``GET /containerLogs/{namespace}/{pod}/{container}`` with the
``PodLogOptions`` query (``follow``, ``previous``, ``timestamps``, ``tailLines``, ``sinceSeconds``,
``sinceTime``, ``limitBytes``), on the port the Node advertises in
``status.daemonEndpoints.kubeletEndpoint``, with the node's certificate; when a client CA is given,
only clients with a certificate from it (the API servers, the controller) are answered. Logs are
read from the per-instance files :mod:`nestlab.agent.logstore` keeps; a followed log streams until
its container instance ends or the client goes away. Errors are 400s worded as the kubelet's, which
the API server passes on as they are. The same server answers ``/exec``, ``/attach`` and
``/portForward`` (:mod:`nestlab.agent.streams`). :func:`serve` is the one place that listens.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from nestlab.agent import logstore, streams
from nestlab.agent.attestation import Attestation, AttestationUnavailableError, BadChallengeError, parse_nonce
from nestlab.api import logfilter

LogLookup = Callable[[str, str], logstore.PodLogs | None]
"""(namespace, pod name) -> that pod's logs, or None for a pod not on this node."""
Refresh = Callable[[logstore.PodLogs], None]
"""Take what is new on a pod's console into its stored logs (the collector's ``ingest``)."""
FOLLOW_POLL_S = 0.25  # a followed log shows a new line at most this late (the collector's own pace)
FOLLOWING = web.AppKey("following", list[tuple[str, str, str]])
"""The (namespace, pod, container) of each log being followed now: what an admin (or a test) checks
to see that a client that went away released its stream."""


def _no_refresh(_pod: logstore.PodLogs) -> None:
    return None


@dataclass
class _Answer:
    """One log answer being written: where it reads from, how far, and what it may still send."""

    request: web.Request
    response: web.StreamResponse
    options: logfilter.LogOptions
    path: Path
    limit: logfilter.Limit
    position: int = 0
    inode: int | None = None

    def more(self) -> list[str]:
        """Complete stored lines written since the last call."""
        lines, self.position, self.inode = logstore.read_from(self.path, self.position, self.inode)
        return lines

    async def send(self, lines: list[str]) -> None:
        if not lines or self.limit.done:
            return
        try:
            await self.response.write(self.limit.cut("".join(lines).encode()))
        except ConnectionError:  # the client went away: a follow loop sees the closed transport
            return

    @property
    def over(self) -> bool:
        return self.limit.done or _gone(self.request)


async def stream_log(
    request: web.Request, lookup: LogLookup, namespace: str, pod: str, container: str, *, refresh: Refresh
) -> web.StreamResponse:
    """Answer one ``containerLogs`` request (see the module docstring)."""
    source = lookup(namespace, pod)
    if source is None:
        raise web.HTTPNotFound(text=f"pod {namespace}/{pod} is not on this node\n")
    try:
        options = logfilter.parse_options(request.query, time.time_ns())
    except logfilter.OptionError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    view = source.containers.get(container)
    if view is None:
        raise web.HTTPBadRequest(text=f'container "{container}" in pod "{pod}" is not available')
    try:
        instance = logstore.instance_to_read(view, pod, options.previous)
    except logstore.LogUnavailableError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    refresh(source)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    answer = _Answer(
        request, response, options, source.log_file(container, instance), logfilter.Limit(options.limit_bytes)
    )
    await answer.send(logfilter.select(answer.more(), options))
    if options.follow and not options.previous:
        following = request.app.get(FOLLOWING, [])
        following.append((namespace, pod, container))
        try:
            going_on = True
            while going_on and not answer.over:
                await asyncio.sleep(FOLLOW_POLL_S)
                source = lookup(namespace, pod)
                if source is not None:
                    refresh(source)
                going_on = logstore.still_writing(source, container, instance)
                rendered = (logfilter.render(line, options) for line in answer.more())
                await answer.send([out for out in rendered if out is not None])
        finally:
            following.remove((namespace, pod, container))
    if not _gone(request):
        await response.write_eof()
    return response


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def app(
    lookup: LogLookup,
    attestation: Attestation | None = None,
    refresh: Refresh = _no_refresh,
    sessions: streams.StreamLookup | None = None,
) -> web.Application:
    """The HTTP application (no TLS): routes only; ``POST /attestation`` when ``attestation`` is given,
    ``/exec``, ``/attach`` and ``/portForward`` (:mod:`nestlab.agent.streams`) when ``sessions`` is."""

    async def logs(request: web.Request) -> web.StreamResponse:
        namespace, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        return await stream_log(request, lookup, namespace, pod, container, refresh=refresh)

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
    application[FOLLOWING] = []
    application.router.add_get("/containerLogs/{namespace}/{pod}/{container}", logs)
    if attestation is not None:
        application.router.add_post("/attestation", functools.partial(attest, attestation=attestation))
    if sessions is not None:
        streams.add_routes(application, sessions)
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
    *,
    refresh: Refresh = _no_refresh,
    sessions: streams.StreamLookup | None = None,
) -> web.AppRunner:
    """Start serving; ``await runner.cleanup()`` stops it."""
    runner = web.AppRunner(app(lookup, attestation, refresh, sessions), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner
