"""Assemble and run the API server: aiohttp application, TLS, lifecycle.

``serve()`` is what ``nestlab-apiserver`` runs on each control-plane node; tests may call
``build_app()`` in-process. On SIGTERM the server first reports not-ready (so the load balancer's
``/readyz`` check drains it), then stops accepting, then closes etcd.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from nestlab.api import (
    auth,
    bootstraproles,
    decode,
    escalation,
    identityroutes,
    podlogs,
    registrytoken,
    saadmission,
    satokens,
    schemas,
    status,
    tokenrequest,
)
from nestlab.api.audit import Auditor
from nestlab.api.audit import middleware as audit_middleware
from nestlab.api.authn import Authenticator, StaticTokens, TokenVerifier
from nestlab.api.clusterips import ClusterIPs, ensure_system_services
from nestlab.api.etcd import EtcdClient, TLSFiles
from nestlab.api.handlers import Handlers
from nestlab.api.identityroutes import build as identity_routes
from nestlab.api.limitranger import hooks as limit_ranger
from nestlab.api.meta import json_response
from nestlab.api.registry import Admission, Registry
from nestlab.api.resources import PODS, Resource
from nestlab.api.serviceips import DEFAULT_RANGE, ServiceRange
from nestlab.api.storageclasses import ensure_default_class
from nestlab.api.store import Obj, Store
from nestlab.api.tolerations import default_tolerations
from nestlab.errors import UsageError

log = logging.getLogger(__name__)
_BOOTSTRAP = web.AppKey("bootstrap", asyncio.Task[None])
_BOOTSTRAP_RETRY = 1.0  # seconds between attempts to create the system namespaces while etcd is away
_CLOSE_GRACE = 2.0  # seconds open requests get to finish when the listener closes
_DRAIN = 1.0  # seconds between "not ready" and closing the listener, for load balancers to notice
_WARM = web.AppKey("warm", asyncio.Future[Any])
_WARM_MODELS = ("V1Pod",)
"""Kinds written in bulk whose field tree (for unknown-field checks) is built at start, in a
thread, rather than by the first write: the Pod's takes 1-2 s of CPU, which held every request of
the event loop behind the first pod create."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``nestlab-apiserver`` is told on its command line."""

    etcd_servers: tuple[str, ...]
    bind: str = "0.0.0.0"  # noqa: S104 - an API server listens on all addresses by default
    port: int = 6443
    tls_cert: Path | None = None
    """Serving certificate; without it the server speaks plain HTTP (tests only)."""
    tls_key: Path | None = None
    client_ca: Path | None = None
    """CA whose client certificates authenticate users (CN = user, O = groups)."""
    tokens_file: Path | None = None
    etcd_tls: TLSFiles | None = None
    anonymous_admin: bool = False
    """Treat unauthenticated callers as admins: for throwaway test servers only."""
    drain_seconds: float = field(default=_DRAIN)
    default_not_ready_toleration_seconds: int = 300
    """tolerationSeconds of the not-ready:NoExecute toleration new pods get (DefaultTolerationSeconds)."""
    default_unreachable_toleration_seconds: int = 300
    """tolerationSeconds of the unreachable:NoExecute toleration new pods get (DefaultTolerationSeconds)."""
    service_cluster_ip_range: str = DEFAULT_RANGE
    """The Services CIDR ClusterIPs come from (vSphere: the Supervisor's Services CIDR)."""
    advertise_address: str = ""
    """The address clients reach the API at (the VIP): the ``kubernetes`` Service's endpoint."""
    identity_signing_key: Path | None = None
    """Signs and verifies lab users' login tokens (``/nestlab/v1/login``); None: login not served."""
    registry_tokens: registrytoken.TokenConfig | None = None
    """The depot registry's token service (``/nestlab/v1/registry/token``); None: not served."""
    service_account_key: Path | None = None
    """Signs (and verifies) bound service-account tokens; None: no ServiceAccount tokens, no
    TokenRequest, no ServiceAccount admission (throwaway test servers)."""
    service_account_issuer: str = satokens.ISSUER
    audit_policy_file: Path | None = None
    """audit.k8s.io/v1 Policy: which requests are logged and how much; None: nothing is logged."""
    audit_log_path: str = ""
    """Where the audit Events go (``-``: standard output); empty: nothing is logged."""
    audit_log_maxsize_mb: float = 0
    """Rotate the audit log before it exceeds this many megabytes (0: 100, as upstream)."""
    audit_log_maxbackup: int = 0
    """Rotated audit logs kept (0: all, as upstream)."""


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
    504: "Timeout",
}
"""Status reasons of the HTTP codes aiohttp itself may raise (upstream's StatusReason names)."""


def _one_line(body: dict[str, Any], multiline: bool = False) -> dict[str, Any]:
    """A Status whose message is one line: messages quote client input (a kind, a field name, a
    query value), and a newline or control character in it must not split or forge lines in
    kubectl's output or the server's log. Such characters are shown escaped (``\\n``); a message
    with lines on purpose (:attr:`~nestlab.api.status.ApiError.multiline`) keeps its newlines."""
    message = str(body.get("message", ""))
    if not message.isprintable():
        keep = "\n" if multiline else ""
        body["message"] = "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in message)
    return body


def _http_refusal(request: web.Request, exc: web.HTTPException) -> status.ApiError:
    """aiohttp's own refusals (no route, wrong method, body over client_max_size...) as Status."""
    if isinstance(exc, web.HTTPNotFound):
        return status.path_not_found()
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return status.method_not_allowed(request.method, request.path)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return decode.too_large()
    return status.ApiError(exc.status, _REASONS.get(exc.status, ""), exc.text or exc.reason)


@web.middleware
async def status_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every refusal becomes a Status body; an unexpected failure is logged and is a 500 Status."""
    try:
        return await handler(request)
    except status.ApiError as exc:
        response = json_response(_one_line(exc.status(), exc.multiline), exc.code)
        if exc.code in (503, 504):
            response.headers["Retry-After"] = "1"
        return response
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and successes raised on purpose pass through
            raise
        refusal = _http_refusal(request, exc)
        return json_response(_one_line(refusal.status()), refusal.code)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        # The last resort: the traceback goes to the server's log, never into the answer.
        log.exception("%s %s failed", request.method, request.path)
        body = status.ApiError(
            500,
            "InternalError",
            f"an error on the server ({type(exc).__name__}) has prevented the request from succeeding",
        )
        return json_response(body.status(), 500)


def pod_tolerations(config: ServerConfig) -> Admission:
    """The DefaultTolerationSeconds admission plugin with this server's seconds."""

    def admit(resource: Resource, obj: Obj) -> None:
        if resource is PODS:
            default_tolerations(
                obj,
                config.default_not_ready_toleration_seconds,
                config.default_unreachable_toleration_seconds,
            )

    return admit


def server_ssl(config: ServerConfig) -> ssl.SSLContext | None:
    """The serving TLS context (client certificates optional, verified against the client CA)."""
    if config.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(config.tls_cert), None if config.tls_key is None else str(config.tls_key))
        if config.client_ca is not None:
            context.load_verify_locations(str(config.client_ca))
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot load TLS files ({config.tls_cert}, {config.tls_key}, {config.client_ca}): {exc}"
        ) from exc
    return context


async def _bootstrap(
    registry: Registry, handlers: Handlers, service_range: ServiceRange, config: ServerConfig
) -> None:
    """The start-up objects (system namespaces and Services, the default StorageClass, the bootstrap
    RBAC roles), retried until etcd answers; /readyz passes once they exist."""
    while True:
        try:
            await registry.bootstrap()
            await ensure_system_services(
                registry.create, registry.get, registry.update, service_range, config.advertise_address
            )
            await ensure_default_class(registry.create)
            await bootstraproles.ensure(registry)  # cluster-admin, admin/edit/view, system: roles
        except status.ApiError as exc:
            log.warning("bootstrap (system namespaces) waits for etcd: %s", exc.message)
            await asyncio.sleep(_BOOTSTRAP_RETRY)
        else:
            handlers.meta.bootstrapped = True  # /readyz may pass from now on
            return


def _warm_schemas() -> None:
    for model in _WARM_MODELS:
        started = time.monotonic()
        try:
            schemas.known_fields(model)
        except schemas.SchemaUnavailableError as exc:  # the first write says so to its client
            log.warning("%s", exc)
            return
        log.info("field tree of %s built in %.1f s (unknown-field checks)", model, time.monotonic() - started)


def build_app(config: ServerConfig) -> tuple[web.Application, Handlers]:
    """The application and its handlers (whose ``shutting_down`` flag drives /readyz)."""
    tokens = auth.load_tokens(config.tokens_file) if config.tokens_file is not None else {}
    etcd = EtcdClient(config.etcd_servers, config.etcd_tls)
    service_range = ServiceRange.parse(config.service_cluster_ip_range)
    store = Store(etcd)
    limit_defaults, limit_bounds = limit_ranger(store)  # LimitRanger admission: defaults, then bounds
    signer = (
        None
        if config.service_account_key is None
        else satokens.SigningKey.load(config.service_account_key, config.service_account_issuer)
    )
    service_accounts = () if signer is None else (saadmission.hook(store.get),)  # after LimitRanger
    registry = Registry(
        store,
        (pod_tolerations(config),),
        ClusterIPs(etcd, service_range),
        mutating=(limit_defaults, *service_accounts),
        validating=(
            limit_bounds,
            escalation.hook(lambda u, ns: handlers.authorizer.rules_for(u, ns), store.get),  # noqa: PLW0108 - handlers is built below
        ),
    )
    agent_tls = podlogs.agent_client_tls(config.tls_cert, config.tls_key, config.client_ca)
    verifiers: list[TokenVerifier] = [StaticTokens(tokens)]
    if signer is not None:
        verifiers.append(satokens.ServiceAccountTokens(signer, store.get))
    authenticator = Authenticator(verifiers, anonymous_admin=config.anonymous_admin)
    handlers = Handlers(registry, authenticator, agent_tls)
    auditor = Auditor.from_flags(
        config.audit_policy_file,
        config.audit_log_path,
        config.audit_log_maxsize_mb,
        config.audit_log_maxbackup,
    )
    app = web.Application(
        middlewares=[audit_middleware(auditor), status_errors], client_max_size=decode.MAX_BODY_BYTES
    )
    auditor.install(app)  # Audit-Id on every answer; ResponseStarted of streams
    app.add_routes(handlers.routes())
    identity = identity_routes(
        config.identity_signing_key,
        etcd,
        authenticator,
        handlers.authenticate,
        identityroutes.rbac(handlers.authorizer),
    )
    app.add_routes(identity.routes())  # login, and users for lab administrators
    if signer is not None:
        app[tokenrequest.SIGNER] = signer  # serves serviceaccounts/<name>/token
    if config.registry_tokens is not None:
        decide = registrytoken.authorizer_decision(handlers.authorizer)
        passwords = registrytoken.password_login(identity.store, identity.passwords)  # docker login
        service = registrytoken.TokenService(
            config.registry_tokens, authenticator, registry.store, decide, passwords
        )
        app.add_routes(service.routes())

    async def start(_app: web.Application) -> None:
        app[_BOOTSTRAP] = asyncio.get_running_loop().create_task(
            _bootstrap(registry, handlers, service_range, config)
        )
        handlers.authorizer.start()  # the RBAC cache's watches
        app[_WARM] = asyncio.get_running_loop().run_in_executor(None, _warm_schemas)

    async def close(_app: web.Application) -> None:
        app[_BOOTSTRAP].cancel()
        await asyncio.gather(app[_BOOTSTRAP], return_exceptions=True)
        await handlers.authorizer.stop()
        await asyncio.gather(app[_WARM], return_exceptions=True)
        await registry.close()
        await etcd.close()

    app.on_startup.append(start)
    app.on_cleanup.append(close)
    return app, handlers


async def serve(config: ServerConfig, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then drain and close."""
    app, handlers = build_app(config)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=_CLOSE_GRACE)
    await runner.setup()
    site = web.TCPSite(runner, config.bind, config.port, ssl_context=server_ssl(config))
    await site.start()
    log.info(
        "nestlab-apiserver listening on %s:%d (etcd: %s)",
        config.bind,
        config.port,
        ",".join(config.etcd_servers),
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        handlers.shutting_down = True
        await asyncio.sleep(config.drain_seconds)
    finally:
        await runner.cleanup()
