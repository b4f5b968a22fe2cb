"""HTTP in, registry call, Kubernetes-shaped JSON out.

Every resource URL (``/api/v1/namespaces/<ns>/pods/<name>/status``...) is parsed into a target and
a verb, authenticated, authorized and dispatched to :class:`~nestlab.api.registry.Registry`. Any
refusal is an :class:`~nestlab.api.status.ApiError` turned into a Status body by the middleware.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from nestlab.api import auth, fields, podlogs, protobuf, resources, status, tables
from nestlab.api.access import Authorizer
from nestlab.api.meta import MetaRoutes, json_response
from nestlab.api.registry import Registry
from nestlab.api.resources import PODS, Resource
from nestlab.api.selectors import compile_selector
from nestlab.api.store import Obj

_MAX_WATCH = 1800  # seconds a watch stays open without timeoutSeconds (upstream: 30-60 min)
_JSON = "application/json"


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


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


async def read_body(request: web.Request) -> Any:
    """The decoded request body (JSON or YAML); 400/415 on anything else."""
    raw = await request.read()
    if not raw:
        return None
    kind = request.content_type
    if kind == protobuf.MEDIA_TYPE:
        return protobuf.decode(raw)
    try:
        if kind in ("application/yaml", "application/x-yaml"):
            return yaml.safe_load(raw)
        if kind.endswith("json") or kind in ("", "application/octet-stream", "text/plain"):
            return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise status.bad_request(f"the body of the request could not be decoded: {exc}") from exc
    raise status.unsupported_media_type(kind)


class Handlers:
    """The routes of the API server, bound to one registry and one set of credentials."""

    def __init__(
        self,
        registry: Registry,
        tokens: dict[str, auth.User],
        anonymous_admin: bool = False,
        agent_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.registry = registry
        self.agent_tls = agent_tls
        """Client TLS towards node agents (pods/log); None when the server has no certificate."""
        self.authorizer = Authorizer(registry.store)
        self.tokens = tokens
        self.anonymous_admin = anonymous_admin
        self.meta = MetaRoutes(registry.store.etcd, self.authenticate)

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
    def authenticate(self, request: web.Request) -> auth.User:
        """The caller, from a verified client certificate or a bearer token (in that order, as
        kube-apiserver's union authenticator); 401 for a bad token or no credentials."""
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        user = auth.user_from_peercert(peercert)
        if user is not None:
            return user
        header = request.headers.get("Authorization", "")
        if header:
            user = auth.user_from_bearer(header, self.tokens)
            if user is None:
                raise status.unauthorized()
            return user
        if self.anonymous_admin:
            return auth.User("system:anonymous", frozenset({"system:masters"}))
        raise status.unauthorized()

    async def authorize(self, user: auth.User, verb: str, target: Target) -> None:
        """403 unless ``user`` may ``verb`` the target."""
        await self.authorizer.check(
            user,
            verb,
            target.resource,
            namespace=target.namespace,
            name=target.name,
            subresource=target.subresource,
        )

    # -- resources --------------------------------------------------------------------------------
    async def core_resource(self, request: web.Request) -> web.StreamResponse:
        return await self._resource(request, "", "v1", request.match_info["tail"])

    async def group_resource(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        return await self._resource(request, info["group"], info["version"], info["tail"])

    async def _resource(
        self, request: web.Request, group: str, version: str, tail: str
    ) -> web.StreamResponse:
        user = self.authenticate(request)
        target = parse_target(group, version, [p for p in tail.split("/") if p])
        query = request.query
        watching = _flag(query.get("watch"))
        verb = verb_of(request.method, target, watching)
        if not target.resource.stored:
            if verb != "create":
                raise status.method_not_allowed(request.method, target.resource.plural)
            return json_response(await self.authorizer.review(user, await read_body(request)), 201)
        await self.authorize(user, verb, target)
        if target.subresource == "log":
            text = await podlogs.pod_log(
                self.registry, target.namespace, target.name, request.query, self.agent_tls
            )
            return web.Response(text=text, content_type="text/plain")
        if target.subresource == "binding":
            if verb != "create":
                raise status.method_not_allowed(request.method, "pods/binding")
            return json_response(
                await self.registry.bind(target.namespace, target.name, await read_body(request)), 201
            )
        if request.method == "GET":
            return await self._read(request, target, watching)
        return await self._write(request, user, target, verb)

    async def _read(self, request: web.Request, target: Target, watching: bool) -> web.StreamResponse:
        query, plural = request.query, target.resource.plural
        as_table = "as=Table" in request.headers.get("Accept", "")
        include = query.get("includeObject", "Metadata")
        if target.name and not watching:
            obj = await self.registry.get(target.resource, target.namespace, target.name)
            if target.subresource == "status" or not as_table:
                return json_response(obj)
            return json_response(tables.table(plural, [obj], obj["metadata"]["resourceVersion"], include))
        field_selector = query.get("fieldSelector", "")
        if target.name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={target.name}"]))
        predicate = compile_selector(query.get("labelSelector", ""), field_selector, plural)
        if watching:
            return await self._watch(request, target, predicate, as_table, include)
        limit = _int(query.get("limit", "0") or "0", "limit")
        if limit < 0:
            raise status.bad_request("limit must not be negative")
        listed = await self.registry.list(
            target.resource, target.namespace, predicate, limit=limit, token=query.get("continue", "")
        )
        if as_table:
            printed = tables.table(plural, listed["items"], listed["metadata"]["resourceVersion"], include)
            printed["metadata"] = listed["metadata"]
            return json_response(printed)
        return json_response(listed)

    async def _watch(
        self, request: web.Request, target: Target, predicate: Any, as_table: bool, include: str
    ) -> web.StreamResponse:
        seconds = min(
            _int(request.query.get("timeoutSeconds", str(_MAX_WATCH)), "timeoutSeconds"), _MAX_WATCH
        )
        if seconds < 0:
            raise status.bad_request("timeoutSeconds must not be negative")
        since = request.query.get("resourceVersion", "")
        events = await self.registry.store.open_watch(target.resource, target.namespace, since, predicate)
        response = web.StreamResponse(headers={"Content-Type": _JSON, "Transfer-Encoding": "chunked"})
        await response.prepare(request)

        async def send(kind: str, obj: Obj) -> None:
            if as_table and kind != "ERROR":
                obj = tables.table(target.resource.plural, [obj], obj["metadata"]["resourceVersion"], include)
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        try:
            async with asyncio.timeout(seconds):
                async for event in events:
                    await send(event.type, event.object)
        except TimeoutError:
            pass
        except status.ApiError as exc:
            await send("ERROR", exc.status())
        except ConnectionResetError:
            return response
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        await response.write_eof()
        return response

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
        if "gracePeriodSeconds" in request.query:
            options["gracePeriodSeconds"] = _int(request.query["gracePeriodSeconds"], "gracePeriodSeconds")
        if verb == "deletecollection":
            return await self._delete_collection(registry, request, target, options)
        return await registry.delete(target.resource, target.namespace, target.name, options)

    async def _write(self, request: web.Request, user: auth.User, target: Target, verb: str) -> web.Response:
        body = await read_body(request)
        await self.authorizer.restrict_node(user, verb, target, body)
        deleting = verb in ("delete", "deletecollection")
        registry = self._registry_for(request, body if deleting else None)
        res, ns = target.resource, target.namespace
        if deleting:
            return json_response(await self._delete(registry, request, target, verb, body))
        structured = verb != "patch" or not request.content_type.startswith("application/json-patch")
        warnings = []
        if structured and isinstance(body, dict) and target.subresource != "binding":
            warnings = fields.enforce(body, res, request.query.get("fieldValidation", ""))
        if verb == "create":
            if target.name:
                raise status.method_not_allowed("POST", f"{res.plural}/{target.name}")
            answer = json_response(await registry.create(res, ns, body), 201)
        elif verb == "update":
            answer = json_response(await registry.update(res, ns, target.name, body, target.subresource))
        elif verb == "patch":
            if body is None:
                raise status.bad_request("the PATCH body is empty")
            patched = await registry.patch(
                res, ns, target.name, request.content_type, body, subresource=target.subresource
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


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise status.bad_request(f"{name} must be an integer, got {value!r}") from exc


__all__ = ["PODS", "Handlers", "Target", "parse_target", "verb_of"]
