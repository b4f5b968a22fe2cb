"""HTTP in, registry call, Kubernetes-shaped JSON out.

Every resource URL (``/api/v1/namespaces/<ns>/pods/<name>/status``...) is parsed into a target and
a verb, let through the front door (:class:`~nestlab.api.gate.Gate`: authentication, impersonation,
authorization, audit facts) and dispatched to :class:`~nestlab.api.registry.Registry`; access reviews
are answered by :mod:`nestlab.api.reviews`. The decoded body of a write is noted for the audit log.
Any refusal is an :class:`~nestlab.api.status.ApiError` turned into a Status body by the middleware.
Bodies and query parameters go through the strict decoders (:mod:`nestlab.api.decode`,
:mod:`nestlab.api.query`) before anything else reads them: hostile input is a 4xx, never a 500.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nestlab.api import apply as apply_fields
from nestlab.api import (
    auditfacts,
    auth,
    decode,
    eviction,
    fields,
    notices,
    podlogs,
    podstreams,
    protobuf,
    reads,
    resources,
    reviews,
    scale,
    status,
)
from nestlab.api import query as params
from nestlab.api.access import Authorizer
from nestlab.api.authn import Authenticator
from nestlab.api.gate import Gate
from nestlab.api.meta import MetaRoutes, json_response
from nestlab.api.registry import Registry
from nestlab.api.resources import PODS, Resource
from nestlab.api.selectors import compile_selector
from nestlab.api.store import Obj
from nestlab.api.tokenrequest import serve as serve_token_request
from nestlab.api.watchfeed import CLIENT_EVERY_S

_MAX_WATCH = 1800  # seconds a watch stays open without timeoutSeconds (upstream: 30-60 min)


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    resource: Resource
    namespace: str
    name: str
    subresource: str


def parse_target(group: str, version: str, parts: list[str]) -> Target:
    """The target of ``/<prefix>/<group>/<version>/<parts...>``; 404 when nothing is served there."""
    namespace = ""
    if len(parts) >= 3 and parts[0] == "namespaces":
        candidate = resources.find(group, version, parts[2])
        if candidate is not None and candidate.namespaced:
            namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        raise status.path_not_found()
    resource = resources.find(group, version, parts[0])
    if resource is None or (resource.namespaced is False and namespace):
        raise status.path_not_found()
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if sub and sub not in resource.subresources:
        raise status.path_not_found()
    return Target(resource, namespace, name, sub)


def verb_of(method: str, target: Target, watch: bool) -> str:
    """The RBAC verb of a request."""
    if method == "GET":
        return "get" if target.name else ("watch" if watch else "list")
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    raise status.method_not_allowed(method, target.resource.plural)


_DUPLICATES = web.RequestKey("duplicates", tuple[str, ...])
"""Request key: the duplicate keys the body's decoder found (``fieldValidation`` judges them)."""


async def read_body(request: web.Request) -> Any:
    """The decoded request body (JSON, YAML or protobuf): 413 over 3 MiB (checked from
    Content-Length before reading, and while reading a chunked body), 400/415 when it does not
    decode (see :mod:`nestlab.api.decode`)."""
    if (request.content_length or 0) > decode.MAX_BODY_BYTES:
        raise decode.too_large()
    try:
        raw = await request.read()  # the server's client_max_size stops a chunked body in flight
    except web.HTTPRequestEntityTooLarge:
        raise decode.too_large() from None
    if not raw:
        return None
    decoded = _decode(request.content_type, raw)
    request[_DUPLICATES] = decoded.duplicates
    auditfacts.facts(request).request_object = decoded.value
    return decoded.value


def _decode(kind: str, raw: bytes) -> decode.Decoded:
    if kind == protobuf.MEDIA_TYPE:
        try:
            return decode.Decoded(protobuf.decode(raw))
        except (ValueError, IndexError, KeyError, TypeError, RecursionError) as exc:
            raise status.bad_request(f"the protobuf body could not be decoded: {exc}") from None
    if kind in ("application/yaml", "application/x-yaml", apply_fields.MEDIA_TYPE):
        return decode.decode_yaml(raw)
    if kind.endswith("json") or kind in ("", "application/octet-stream", "text/plain"):
        return decode.decode_json(raw)
    raise status.unsupported_media_type(kind)


class Handlers:
    """The routes of the API server, bound to one registry and one set of credentials."""

    def __init__(
        self,
        registry: Registry,
        authenticator: Authenticator,
        agent_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.registry = registry
        self.agent_tls = agent_tls
        """Client TLS towards node agents (pods/log); None when the server has no certificate."""
        self.authorizer = Authorizer(registry.store, registry.store.etcd.unchanged_since)
        self.authenticator = authenticator
        self.gate = Gate(authenticator, self.authorizer)
        self.meta = MetaRoutes(registry.store.etcd, self.gate.authenticate_path)

    @property
    def shutting_down(self) -> bool:
        """Set on SIGTERM: /readyz fails from then on so load balancers drain this server."""
        return self.meta.shutting_down

    @shutting_down.setter
    def shutting_down(self, value: bool) -> None:
        self.meta.shutting_down = value

    def routes(self) -> list[web.RouteDef]:
        """Every route, in matching order."""
        return [
            *self.meta.routes(),
            web.route("*", "/api/v1/{tail:.+}", self.core_resource),
            web.route("*", "/apis/{group}/{version}/{tail:.+}", self.group_resource),
        ]

    # -- who is calling -------------------------------------------------------------------------
    async def authenticate(self, request: web.Request) -> auth.User:
        """The user the request acts as, impersonation applied (see :class:`~nestlab.api.gate.Gate`)."""
        return await self.gate.authenticate(request)

    # -- resources --------------------------------------------------------------------------------
    async def core_resource(self, request: web.Request) -> web.StreamResponse:
        return await self._resource(request, "", "v1", request.match_info["tail"])

    async def group_resource(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        return await self._resource(request, info["group"], info["version"], info["tail"])

    async def _resource(
        self, request: web.Request, group: str, version: str, tail: str
    ) -> web.StreamResponse:
        user = await self.authenticate(request)
        target = parse_target(group, version, [p for p in tail.split("/") if p])
        query = request.query
        watching = reads.flag(query.get("watch"))
        verb = verb_of(request.method, target, watching)
        if not target.resource.stored:
            if verb != "create":
                raise status.method_not_allowed(request.method, target.resource.plural)
            await self.gate.authorize(request, user, verb, target)
            body = await read_body(request)
            decode.require_object(body, f"a {target.resource.kind}")
            answer = await reviews.answer(self.authorizer, target.resource, user, target.namespace, body)
            return json_response(answer, 201)
        if target.subresource in podstreams.SUBRESOURCES:  # upstream 1.30+: create, whatever the method
            await self.gate.authorize(request, user, "create", target)
            return await self._action(request, target, "create")
        await self.gate.authorize(request, user, verb, target)
        # -- H-sa: serviceaccounts/<name>/token (TokenRequest), see nestlab/api/tokenrequest.py --
        if target.subresource == "token":
            body, get = await read_body(request), self.registry.store.get
            decode.require_object(body, "a TokenRequest", required=False)
            return await serve_token_request(request, get, user, target.namespace, target.name, body=body)
        # -- end H-sa --
        if target.subresource in ("log", "binding", "eviction", "scale"):
            return await self._action(request, target, verb)
        if request.method == "GET":
            return await self._read(request, target, watching)
        return await self._write(request, user, target, verb)

    async def _action(self, request: web.Request, target: Target, verb: str) -> web.StreamResponse:
        """The subresources that are not the object itself: log, binding, eviction, scale, and the
        interactive ones (exec, attach, portforward)."""
        sub, ns, name = target.subresource, target.namespace, target.name
        if sub in podstreams.SUBRESOURCES:
            return await podstreams.serve(
                request, self.registry, namespace=ns, name=name, subresource=sub, tls=self.agent_tls
            )
        if sub == "scale":
            return await self._scale(request, target, verb)
        if sub == "log":
            return await podlogs.serve_log(request, self.registry, ns, name, self.agent_tls)
        if verb != "create":
            raise status.method_not_allowed(request.method, f"pods/{sub}")
        body = await read_body(request)
        decode.require_object(body, "a Binding" if sub == "binding" else "an Eviction")
        if sub == "binding":
            return json_response(await self.registry.bind(ns, name, body), 201)
        return json_response(await eviction.evict(self.registry, ns, name, body), 201)

    async def _read(self, request: web.Request, target: Target, watching: bool) -> web.StreamResponse:
        query, plural = request.query, target.resource.plural
        accept = request.headers.get("Accept", "")
        include = query.get("includeObject", "Metadata")
        if target.name and not watching:
            obj = await self.registry.get(target.resource, target.namespace, target.name)
            shape = "" if target.subresource == "status" else reads.form(accept, listing=False)
            return json_response(reads.shaped_one(target.resource, obj, shape, include))
        field_selector = query.get("fieldSelector", "")
        if target.name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={target.name}"]))
        predicate = compile_selector(query.get("labelSelector", ""), field_selector, plural)
        if watching:
            params.integer(query, "timeoutSeconds", 0, minimum=0)
            seconds = reads.watch_seconds(query, _MAX_WATCH)
            since = params.resource_version(query)
            shape = reads.form(
                accept.replace("PartialObjectMetadataList", "PartialObjectMetadata"), listing=False
            )
            chunks = await self.registry.store.open_watch_chunks(
                target.resource, target.namespace, since, predicate, progress=True, every=CLIENT_EVERY_S
            )
            return await reads.stream(
                request, target.resource, chunks, seconds=seconds, since=since, shape=shape, query=query
            )
        limit = params.integer(query, "limit", 0, minimum=0)
        params.resource_version(query)
        listed = await self.registry.list(
            target.resource, target.namespace, predicate, limit=limit, token=query.get("continue", "")
        )
        return json_response(
            reads.shaped_list(target.resource, listed, reads.form(accept, listing=True), include)
        )

    async def _scale(self, request: web.Request, target: Target, verb: str) -> web.Response:
        """GET/PUT/PATCH <workload>/<name>/scale."""
        res, ns, name = target.resource, target.namespace, target.name
        if verb == "get":
            return json_response(await scale.get(self.registry, res, ns, name))
        body = await read_body(request)
        registry = self._registry_for(request, None)
        if verb == "update":
            decode.require_object(body, "a Scale")
            return json_response(await scale.update(registry, res, ns, name, body))
        if verb == "patch":
            decode.require_patch(request.content_type, body)
            patched = await scale.patch(registry, res, ns, name, content_type=request.content_type, body=body)
            return json_response(patched)
        raise status.method_not_allowed(request.method, f"{res.plural}/scale")

    def _registry_for(self, request: web.Request, options: Any) -> Registry:
        """The registry, or its dry-run twin for ``?dryRun=All`` (or DeleteOptions ``dryRun: [All]``)."""
        asked = request.query.getall("dryRun", [])
        if isinstance(options, dict) and options.get("dryRun"):
            asked = (
                asked + list(options["dryRun"])
                if isinstance(options["dryRun"], list)
                else [options["dryRun"]]
            )
        if not asked:
            return self.registry
        if set(asked) != {"All"}:
            raise status.bad_request(f'Invalid value: "{asked[0]}": supported values: "All"')
        return self.registry.dry_run()

    async def _delete(
        self, registry: Registry, request: web.Request, target: Target, verb: str, body: Any
    ) -> Obj:
        options = body if isinstance(body, dict) else {}
        params.check_grace_option(options)
        grace = params.grace_period(request.query)
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if "orphanDependents" in request.query:
            options["orphanDependents"] = reads.flag(request.query["orphanDependents"])
        if verb == "deletecollection":
            return await self._delete_collection(registry, request, target, options)
        return await registry.delete(target.resource, target.namespace, target.name, options)

    async def _write(self, request: web.Request, user: auth.User, target: Target, verb: str) -> web.Response:
        body = await read_body(request)
        deleting = verb in ("delete", "deletecollection")
        _check_write(request, target, verb, body)
        await self.authorizer.restrict_node(user, verb, target, body)
        registry = self._registry_for(request, body if deleting else None)
        res, ns = target.resource, target.namespace
        if deleting:
            return json_response(await self._delete(registry, request, target, verb, body))
        structured = verb != "patch" or not request.content_type.startswith("application/json-patch")
        warnings = notices.collect()  # admission hooks add theirs (notices.warn)
        if structured and isinstance(body, dict) and target.subresource != "binding":
            mode, duplicates = request.query.get("fieldValidation", ""), request.get(_DUPLICATES, ())
            warnings += fields.enforce(body, res, mode, duplicates=duplicates)
        manager = _manager(request)
        if verb == "create":
            if target.name:
                raise status.method_not_allowed("POST", f"{res.plural}/{target.name}")
            answer = json_response(await registry.create(res, ns, body, manager), 201)
        elif verb == "update":
            updated = await registry.update(res, ns, target.name, body, target.subresource, manager=manager)
            answer = json_response(updated)
        elif verb == "patch":
            if request.content_type == apply_fields.MEDIA_TYPE:
                force = reads.flag(request.query.get("force"))
                applied, created = await registry.apply(
                    res, ns, target.name, body, request.query.get("fieldManager", ""), force=force
                )
                answer = json_response(applied, 201 if created else 200)
            else:
                patched = await registry.patch(
                    res,
                    ns,
                    target.name,
                    request.content_type,
                    body,
                    subresource=target.subresource,
                    manager=manager,
                )
                answer = json_response(patched)
        else:
            raise status.method_not_allowed(request.method, res.plural)
        for warning in warnings:
            answer.headers.add("Warning", f"299 - {json.dumps(warning)}")
        return answer

    async def _delete_collection(
        self, registry: Registry, request: web.Request, target: Target, options: Obj
    ) -> Obj:
        """DELETE on a collection: delete every object the selectors match, one by one."""
        query = request.query
        predicate = compile_selector(
            query.get("labelSelector", ""), query.get("fieldSelector", ""), target.resource.plural
        )
        listed = await registry.list(target.resource, target.namespace, predicate)
        deleted = []
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                deleted.append(
                    await registry.delete(target.resource, meta.get("namespace", ""), meta["name"], options)
                )
            except status.ApiError as exc:
                if exc.code != 404:  # already gone is what the caller wanted
                    raise
        return {**listed, "items": deleted}


_OPTIONS = {"create": "CreateOptions", "update": "UpdateOptions", "patch": "PatchOptions"}


def _check_write(request: web.Request, target: Target, verb: str, body: Any) -> None:
    """The body's top-level type for the verb, and the field manager's name: 400/422 before any
    other code sees them."""
    if verb in ("delete", "deletecollection"):
        decode.require_object(body, "DeleteOptions", required=False)
        return
    params.field_manager(request.query, _OPTIONS.get(verb, "CreateOptions"))
    if verb != "patch":
        decode.require_object(body, f"a {target.resource.kind}")
        return
    decode.require_patch(request.content_type, body)


def _manager(request: web.Request) -> str:
    """The field manager of a write: ``?fieldManager=``, else the client's name from its User-Agent
    (``kubectl/v1.33.1 (linux/amd64)...`` -> ``kubectl``), as upstream defaults it."""
    named = request.query.get("fieldManager", "")
    if named:
        return named
    agent = request.headers.get("User-Agent", "")
    return agent.split("/", 1)[0].strip()[:128] or "unknown"


__all__ = ["PODS", "Handlers", "Target", "parse_target", "verb_of"]
