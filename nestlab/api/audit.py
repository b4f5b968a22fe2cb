"""The audit middleware: who did what, recorded as kube-apiserver records it.

Every request gets an ``Audit-Id`` (a uuid4) in its answer's headers, as upstream, whether or not
a policy is configured: a user who reports a problem can quote it and the administrator finds the
request in the log. With ``--audit-policy-file`` and ``--audit-log-path`` each request the policy
selects becomes audit.k8s.io/v1 Events (:mod:`nestlab.api.auditevent`) written by
:mod:`nestlab.api.auditlog`: ``RequestReceived`` and ``ResponseComplete`` for every request,
``ResponseStarted`` in between for watches and streams (logs, exec, attach, port-forward), each
stage unless the policy omits it. Without a policy nothing is logged (as upstream).
``RequestReceived`` is written once the handler knows who called (its ``stageTimestamp`` is still
the arrival time), so lines are not strictly in stage order; readers sort by timestamps.

The handlers note who called and what they asked for (:mod:`nestlab.api.auditfacts`); what they
did not note is derived from the URL, so a request refused early (401, 404) is still logged.
The middleware is the outermost one: it sees the final status code and Status body.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from nestlab.api import auditfacts, auth, decode, jsoncodec, status
from nestlab.api.auditevent import (
    Facts,
    Target,
    decide,
    event,
    failed_authentication,
    long_running,
    request_info,
)
from nestlab.api.auditlog import AuditLog
from nestlab.api.auditpolicy import Decision, Level, Policy, load

log = logging.getLogger(__name__)

AUDIT_ID_HEADER = "Audit-Id"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_BODY = 3 * 1024 * 1024  # the server's client_max_size: a body larger was refused anyway

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Context:
    """One request's audit state."""

    audit_id: str
    received: datetime
    facts: Facts | None = None
    decision: Decision | None = None
    received_logged: bool = False
    started: web.StreamResponse | None = None
    completed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


CONTEXT_KEY = web.RequestKey("nestlab.audit.context", _Context)


class Auditor:
    """The policy and the log of one API server; ``enabled`` only with both."""

    def __init__(
        self, policy: Policy | None = None, sink: AuditLog | None = None, clock: Clock = _now
    ) -> None:
        self.policy = policy
        self.sink = sink
        self.clock = clock

    @classmethod
    def from_flags(
        cls, policy_file: Path | None, log_path: str, max_size_mb: float = 0, max_backups: int = 0
    ) -> Auditor:
        """The auditor ``--audit-policy-file`` and ``--audit-log-*`` describe (AuditPolicyError for
        a bad policy)."""
        if policy_file is None or not log_path:
            return cls()
        policy = load(policy_file)
        log.info("audit log %s (policy %s, %d rules)", log_path, policy_file, len(policy.rules))
        return cls(policy, AuditLog.open(log_path, max_size_mb, max_backups))

    @property
    def enabled(self) -> bool:
        return self.policy is not None and self.sink is not None

    def install(self, app: web.Application) -> None:
        """The Audit-Id header and ResponseStarted events (the middleware goes in the app's list)."""
        app.on_response_prepare.append(self.on_prepare)
        app.on_cleanup.append(self.on_cleanup)

    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Give the request its audit ID; log it once it is answered (also when it fails)."""
        context = _Context(str(uuid.uuid4()), self.clock())
        request[CONTEXT_KEY] = context
        if not self.enabled:
            return await handler(request)
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
        finally:
            await self._complete(request, context, response)
        return response

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Headers are about to go out: add the Audit-Id; a stream logs ResponseStarted now."""
        context = request.get(CONTEXT_KEY)
        if not isinstance(context, _Context):
            return
        response.headers.setdefault(AUDIT_ID_HEADER, context.audit_id)
        if not self.enabled or context.completed or context.started is not None:
            return
        if not long_running(self._facts(request, context).target):
            return  # an ordinary answer: logged once complete (with its body noted)
        _facts, decision = self._decide(request, context)
        if decision.level == Level.NONE:
            return
        context.started = response
        self._received(context)
        self._emit(context, "ResponseStarted", response.status)

    async def on_cleanup(self, _app: web.Application) -> None:
        if self.sink is not None:
            self.sink.close()

    # -- internals ----------------------------------------------------------------------------------
    async def _complete(
        self, request: web.Request, context: _Context, response: web.StreamResponse | None
    ) -> None:
        answered = response if response is not None else context.started
        try:
            if answered is None:
                return  # the client went away before anything was answered
            if context.facts is None:
                await self._note_body(request, context, cancelled=response is None)
            facts, decision = self._decide(request, context)
            if decision.level == Level.NONE:
                return
            code = answered.status
            if code == HTTPStatus.UNAUTHORIZED and facts.user is None:
                self._failed_authentication(request, context)
                return
            body = _json_body(answered) if _wants_body(decision, code) else None
            self._received(context)
            self._emit(context, "ResponseComplete", code, body)
        except Exception:
            log.exception("audit: cannot log %s %s", request.method, request.path)
        finally:
            context.completed = True

    def _failed_authentication(self, request: web.Request, context: _Context) -> None:
        """Upstream logs a refused authentication once, at ResponseStarted, saying what was tried."""
        transport = request.transport
        cert = bool(transport.get_extra_info("peercert")) if transport is not None else False
        message = failed_authentication(
            request.headers.get("Authorization", ""), bool(request.query.get("access_token")), cert
        )
        body = {"kind": "Status", "message": message}
        self._emit(context, "ResponseStarted", HTTPStatus.UNAUTHORIZED, body)

    async def _note_body(self, request: web.Request, context: _Context, *, cancelled: bool) -> None:
        """A write's JSON body as the client sent it (the handlers' decoded object may have been
        changed in place by defaults and admission since; upstream logs it before admission)."""
        if cancelled or request.method not in _WRITES:
            return
        if not request.body_exists or not request.content_type.endswith("json"):
            return
        if (request.content_length or 0) > _MAX_BODY:
            return
        try:  # the strict decoder: a hostile body must not fail the audit after it was refused
            context.extra["body"] = decode.decode_json(await request.read()).value
        except (status.ApiError, OSError, web.HTTPException):
            return

    def _decide(self, request: web.Request, context: _Context) -> tuple[Facts, Decision]:
        if context.facts is None or context.decision is None:
            context.facts = self._facts(request, context)
            context.decision = decide(self.policy or Policy(), context.facts)
        return context.facts, context.decision

    def _facts(self, request: web.Request, context: _Context) -> Facts:
        noted = _noted(request)
        watch = request.query.get("watch", "") in ("1", "true", "True")
        derived = request_info(request.method, request.path, watch)
        target = derived
        if noted.resource:
            target = Target(
                resource_request=True,
                verb=noted.verb or derived.verb,
                group=noted.group,
                version=noted.version or derived.version,
                resource=noted.resource,
                subresource=noted.subresource,
                namespace=noted.namespace,
                name=noted.name,
            )
        body = context.extra.get("body", noted.request_object)
        return Facts(
            audit_id=context.audit_id,
            received=context.received,
            request_uri=request.raw_path,
            path=request.path,
            target=target,
            user=noted.user or auth.CURRENT_USER.get(),
            impersonated=noted.impersonated,
            source_ips=source_ips(request.headers, request.remote),
            user_agent=request.headers.get("User-Agent", ""),
            request_object=body,
            annotations=dict(noted.annotations),
        )

    def _received(self, context: _Context) -> None:
        if not context.received_logged:
            context.received_logged = True
            self._emit(context, "RequestReceived", None, stage_time=context.received)

    def _emit(
        self,
        context: _Context,
        stage: str,
        code: int | None,
        body: Any = None,
        *,
        stage_time: datetime | None = None,
    ) -> None:
        facts, decision = context.facts, context.decision
        if facts is None or decision is None or self.sink is None or stage in decision.omit_stages:
            return
        record = event(facts, decision, stage, stage_time or self.clock(), code=code, response_body=body)
        self.sink.write(jsoncodec.dumps(record, default=str) + b"\n")


def _noted(request: web.Request) -> auditfacts.AuditFacts:
    """What the handlers noted (read without creating: a request they never saw noted nothing)."""
    found = request.get(auditfacts.REQUEST_KEY)
    return found if isinstance(found, auditfacts.AuditFacts) else auditfacts.AuditFacts()


def middleware(auditor: Auditor) -> Middleware:
    """The aiohttp middleware of ``auditor`` (put it first: outermost)."""

    @web.middleware
    async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await auditor.middleware(request, handler)

    return audit


def source_ips(headers: Any, remote: str | None) -> tuple[str, ...]:
    """X-Forwarded-For, then X-Real-Ip, then the peer, without repeats (upstream utilnet.SourceIPs)."""
    found: list[str] = []
    forwarded = headers.get("X-Forwarded-For", "")
    candidates = [part.strip() for part in forwarded.split(",")] if forwarded else []
    candidates += [headers.get("X-Real-Ip", "").strip(), remote or ""]
    for address in candidates:
        if address and address not in found:
            found.append(address)
    return tuple(found)


def _wants_body(decision: Decision, code: int) -> bool:
    """Decode the answer for responseObject (RequestResponse) or a failure's Status."""
    return decision.level >= Level.REQUEST_RESPONSE or code >= 300


def _json_body(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return None
    if not response.content_type.endswith("json"):
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None
