"""The datastore's HTTPS API (aiohttp, mutual TLS with the lab CA), the wire side of :class:`Volumes`.

Routes (JSON both ways; errors are ``{"message": ...}`` with the status of
:mod:`nestlab.datastore.errors`):

- ``POST /volumes {name, sizeBytes, fsType}`` -> 201 ``{id, name, sizeBytes, fsType}`` (200 with
  the existing volume when the name was created before with the same size and filesystem);
- ``GET /volumes`` -> ``{"volumes": [...]}``; ``GET /volumes/{id}``; ``DELETE /volumes/{id}`` -> 204;
- ``PUT /volumes/{id}/attachment {node}`` -> ``{node, nbd}``; ``DELETE /volumes/{id}/attachment`` -> 204;
- ``GET /healthz`` -> ``ok``.

Who may call: TLS demands a client certificate from the lab CA, and the handler also demands that
its common name be one of ``allowed`` (the controller's): a node's certificate is from the same CA
but a node has no business deleting volumes. A listing never shows export names: they are handed
out only in the answer to the attach that made them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from nestlab.datastore import store
from nestlab.datastore.errors import DatastoreError, DatastoreForbiddenError, DatastoreRequestError, status_of
from nestlab.datastore.volumes import Volumes

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
VOLUMES = web.AppKey("volumes", Volumes)
MAX_BODY = 64 * 1024  # a request body is a few fields


def describe(volumes: Volumes, volume: store.Volume) -> dict[str, Any]:
    """A volume as the API shows it (no export name, no PID)."""
    out = store.to_json(volume)
    if volume.attachment is not None:
        out["attachment"] = {"node": volume.attachment.node, "serving": volumes.serving(volume)}
    return out


def peer_name(request: web.Request) -> str | None:
    """The common name of the client certificate, if any."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _error(exc: DatastoreError) -> web.Response:
    return web.json_response({"message": str(exc)}, status=status_of(exc))


def app(volumes: Volumes, allowed: Iterable[str] = ()) -> web.Application:
    """The application; ``allowed`` empty: any client the TLS layer let in (tests, plain HTTP)."""
    permitted = frozenset(allowed)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if permitted and request.path != "/healthz":
            who = peer_name(request)
            if who not in permitted:
                return _error(
                    DatastoreForbiddenError(
                        f"client certificate {who or '(none)'} may not use the datastore: only "
                        f"{', '.join(sorted(permitted))} may (nestlab-datastore --allow-client)"
                    )
                )
        try:
            return await handler(request)
        except DatastoreError as exc:
            if status_of(exc) >= 500:
                log.error("%s %s: %s", request.method, request.path, exc)  # noqa: TRY400
            return _error(exc)

    async def body(request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise DatastoreRequestError(f"the body is larger than {MAX_BODY} bytes")
        try:
            return json.loads(await request.read())
        except ValueError as exc:
            raise DatastoreRequestError(f"the body is not JSON: {exc}") from exc

    async def create(request: web.Request) -> web.Response:
        volume, created = await asyncio.to_thread(volumes.create, await body(request))
        return web.json_response(describe(volumes, volume), status=201 if created else 200)

    async def listing(_request: web.Request) -> web.Response:
        found = await asyncio.to_thread(volumes.list)
        return web.json_response({"volumes": [describe(volumes, v) for v in found]})

    async def get(request: web.Request) -> web.Response:
        volume = await asyncio.to_thread(volumes.get, request.match_info["id"])
        return web.json_response(describe(volumes, volume))

    async def delete(request: web.Request) -> web.Response:
        await asyncio.to_thread(volumes.delete, request.match_info["id"])
        return web.Response(status=204)

    async def attach(request: web.Request) -> web.Response:
        wanted = await body(request)
        node = wanted.get("node") if isinstance(wanted, dict) else None
        if not isinstance(node, str):
            raise DatastoreRequestError('the body must be {"node": "<node name>"}')
        url = await asyncio.to_thread(volumes.attach, request.match_info["id"], node)
        return web.json_response({"node": node, "nbd": url})

    async def detach(request: web.Request) -> web.Response:
        await asyncio.to_thread(volumes.detach, request.match_info["id"])
        return web.Response(status=204)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    application[VOLUMES] = volumes
    application.router.add_post("/volumes", create)
    application.router.add_get("/volumes", listing)
    application.router.add_get("/volumes/{id}", get)
    application.router.add_delete("/volumes/{id}", delete)
    application.router.add_put("/volumes/{id}/attachment", attach)
    application.router.add_delete("/volumes/{id}/attachment", detach)
    application.router.add_get("/healthz", healthz)
    return application


def tls_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """Server TLS with the depot's certificate; client certificates from ``client_ca`` required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def serve(
    volumes: Volumes, host: str, port: int, context: ssl.SSLContext | None, allowed: Iterable[str] = ()
) -> web.AppRunner:
    """Start serving; ``await runner.cleanup()`` stops it."""
    runner = web.AppRunner(app(volumes, allowed), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner
