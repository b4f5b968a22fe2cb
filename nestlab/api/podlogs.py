"""``pods/log``: the API server streams a container's log from the agent on the pod's node.

As in Kubernetes, the API server does not hold logs: it validates the ``PodLogOptions``
(422 ``PodLogOptions "p" is invalid`` as upstream), picks the container (the only one, or the one
named by ``?container=``: 400 with upstream's words otherwise), finds the pod's node and asks that
node's agent through the shared client (:mod:`nestlab.api.nodeagent`, mutual TLS), passing the
options on. The agent's own 400s (``previous terminated container "c" in pod "p" not found``,
``... is waiting to start: ContainerCreating``) reach the user as they are, as the kubelet's do.
A followed log (``follow=true``) streams until the agent ends it or the client goes away.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from nestlab.api import logfilter, nodeagent, status
from nestlab.api.registry import Registry
from nestlab.api.resources import NODES, PODS

log = logging.getLogger(__name__)
PASSED_ON = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes")
"""The ``PodLogOptions`` query parameters the agent applies (the kubelet's ``containerLogs`` query)."""
CLIENT_CHECK_S = 1.0  # how long a followed log may hold the agent's stream after its client left


def agent_client_tls(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext | None:
    """The TLS context the API server uses towards agents; None when it has no certificate."""
    if cert is None or ca is None:
        return None
    return nodeagent.client_tls(ca, cert, key)


@dataclass(frozen=True)
class LogTarget:
    """Where one log request goes: the node's agent, the path there and the options to pass on."""

    node: dict[str, Any] | None
    """None: the pod has no node yet, and its log is empty (as upstream answers)."""
    path: str
    params: dict[str, str]
    follow: bool
    what: str
    """``namespace/pod/container``, for messages."""


def container_of(pod: Mapping[str, Any], requested: str) -> str:
    """The container a log request means; 400 in upstream's words when it cannot be told."""
    spec, name = pod.get("spec") or {}, (pod.get("metadata") or {}).get("name", "")
    every = [
        str(c.get("name", ""))
        for group in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(group) or []
    ]
    if requested:
        if requested not in every:
            raise status.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    regular = [str(c.get("name", "")) for c in spec.get("containers") or []]
    if len(regular) == 1:
        return regular[0]
    if not regular:
        raise status.bad_request(f"a container name must be specified for pod {name}")
    raise status.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(every)}]"
    )


def check_options(name: str, query: Mapping[str, str], now_ns: int) -> logfilter.LogOptions:
    """The options; 400 for a value of the wrong type, 422 ``PodLogOptions "name" is invalid`` for one
    out of range (as upstream decodes, then validates)."""
    try:
        return logfilter.parse_options(query, now_ns)
    except logfilter.OptionError as exc:
        if exc.unreadable:
            raise status.bad_request(str(exc)) from None
        reason = "FieldValueForbidden" if exc.message.startswith("Forbidden") else "FieldValueInvalid"
        raise status.invalid(
            "PodLogOptions", "", name, [status.Cause(exc.field, exc.message, reason)]
        ) from None


async def locate(
    registry: Registry, namespace: str, name: str, query: Mapping[str, str], now_ns: int
) -> LogTarget:
    """Validate a ``pods/log`` request and find where its log is (the pod's node's agent)."""
    options = check_options(name, query, now_ns)
    pod = await registry.get(PODS, namespace, name)
    container = container_of(pod, query.get("container", ""))
    what = f"{namespace}/{name}/{container}"
    params = {key: query[key] for key in PASSED_ON if query.get(key)}
    path = "/containerLogs/" + "/".join(quote(part, safe="") for part in (namespace, name, container))
    node_name = (pod.get("spec") or {}).get("nodeName")
    node = await registry.get(NODES, "", node_name) if node_name else None
    return LogTarget(node, path, params, options.follow, what)


def api_error(target: LogTarget, exc: nodeagent.NodeAgentError) -> status.ApiError:
    """What the user sees when the agent could not give the log."""
    if isinstance(exc, nodeagent.AgentAnswerError) and exc.status == 400:
        return status.bad_request(exc.text)  # the kubelet's own words (previous not found, waiting)
    if isinstance(exc, nodeagent.AgentAnswerError) and exc.status == 404:
        return status.ApiError(
            404,
            "NotFound",
            f"the log of {target.what} is not on its node (yet): {exc.text}",
            status.Details(),
        )
    return status.unavailable(f"cannot get the log of {target.what}: {exc}")


async def serve_log(
    request: web.Request,
    registry: Registry,
    namespace: str,
    name: str,
    tls: ssl.SSLContext | None,
    *,
    now_ns: int | None = None,
) -> web.StreamResponse:
    """Answer ``GET pods/{name}/log``: the agent's answer streamed through as it comes."""
    target = await locate(registry, namespace, name, request.query, now_ns or time.time_ns())
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    if target.node is None:
        await response.prepare(request)
        await response.write_eof()
        return response
    if tls is None:
        raise status.unavailable("this API server has no client certificate to reach node agents")
    idle = None if target.follow else nodeagent.CALL_TIMEOUT_S
    try:
        async with nodeagent.stream(
            target.node, target.path, target.params, tls, idle_timeout=idle
        ) as answer:
            await response.prepare(request)
            await _pipe(answer, request, response)
    except nodeagent.NodeAgentError as exc:
        if not response.prepared:
            raise api_error(target, exc) from exc
        log.warning("the log of %s ended early: %s", target.what, exc)
        return response  # the answer has begun: it can only end here
    except ConnectionError:
        return response  # our client went away; leaving the block closed the agent's stream
    await response.write_eof()
    return response


async def _pipe(answer: nodeagent.Stream, request: web.Request, response: web.StreamResponse) -> None:
    """Copy the agent's answer to our client until it ends or our client goes away.

    A followed log can be quiet for a long time: the client's connection is checked every
    ``CLIENT_CHECK_S`` while waiting, so a gone ``kubectl logs -f`` releases the agent's stream.
    """
    chunks = answer.chunks()
    waiting: asyncio.Future[bytes] | None = None
    try:
        while True:
            waiting = asyncio.ensure_future(anext(chunks))
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=CLIENT_CHECK_S)
                if not waiting.done() and (request.transport is None or request.transport.is_closing()):
                    return
            try:
                chunk = waiting.result()
            except StopAsyncIteration:
                return
            await response.write(chunk)
    finally:  # also when our handler is cancelled (the client left): stop reading, then close
        if waiting is not None and not waiting.done():
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        await chunks.aclose()
