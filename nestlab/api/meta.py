"""Routes that are not resources: version, health, discovery and OpenAPI documents.

They change only when the server's code does (never with the data), except ``/readyz``: the load
balancer in front of the control plane uses it to stop sending traffic to a server that lost
storage or is shutting down. Its etcd check reads the etcd client's member-status view
(:mod:`nestlab.api.etcdquorum`), not a read through raft: while a majority of members answers, the
server is ready even during an election (a read would wait a second for the new leader; failing
then would take every server out of the load balancer at once and add its rise delay to the
failover); without a majority it fails at once, naming the quorum. Until the server has made its
start-up objects (the bootstrap RBAC roles among them) it is not ready either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nestlab.api import auth, discovery, jsoncodec, openapi, status
from nestlab.api.etcd import EtcdClient
from nestlab.api.etcdquorum import quorum_problem


def json_response(body: Any, code: int = 200) -> web.Response:
    """A JSON answer with the content type clients expect."""
    return web.Response(body=jsoncodec.dumps(body), status=code, content_type="application/json")


class MetaRoutes:
    """Version, health, discovery, OpenAPI; discovery and OpenAPI need an authenticated caller."""

    def __init__(self, etcd: EtcdClient, authenticate: Callable[[web.Request], Awaitable[auth.User]]) -> None:
        self.etcd = etcd
        self.authenticate = authenticate
        self.shutting_down = False
        self.bootstrapped = False
        """False while the server's start-up objects (system namespaces and Services, the default
        StorageClass, the bootstrap RBAC roles) are being made: /readyz fails meanwhile, as upstream's
        ``poststarthook/rbac/bootstrap-roles`` check does, so no client meets a server that would
        refuse it for want of the roles everyone has. The server's bootstrap sets it once done."""

    def routes(self) -> list[web.RouteDef]:
        """The non-resource routes."""
        return [
            web.get("/version", self.version),
            web.get("/livez", self.livez),
            web.get("/healthz", self.readyz),
            web.get("/readyz", self.readyz),
            web.get("/api", self.core_versions),
            web.get("/api/v1", self.core_resources),
            web.get("/apis", self.groups),
            web.get("/apis/{group}", self.group),
            web.get("/apis/{group}/{version}", self.group_resources),
            web.get("/openapi/v2", self.openapi_v2),
            web.get("/openapi/v3", self.openapi_v3_root),
            web.get("/openapi/v3/{path:.*}", self.openapi_v3),
        ]

    async def version(self, _request: web.Request) -> web.Response:
        return json_response(discovery.version())

    async def livez(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, _request: web.Request) -> web.Response:
        """``ok``, or upstream's list of the failed checks (each ``[-]name failed: reason``)."""
        if self.shutting_down:
            return web.Response(
                text="[-]shutdown failed: server is shutting down\nreadyz check failed", status=500
            )
        failed = []
        problem = quorum_problem(await self.etcd.cluster_view(), write=False)
        if problem is not None:
            failed.append(f"[-]etcd failed: {problem}")
        if not self.bootstrapped:
            failed.append("[-]poststarthook/rbac/bootstrap-roles failed: not finished")
        if failed:
            return web.Response(text="\n".join([*failed, "readyz check failed"]), status=500)
        return web.Response(text="ok")

    async def core_versions(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        return json_response(discovery.api_versions(request.host))

    async def core_resources(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        return json_response(discovery.resource_list("", "v1"))

    async def groups(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        return json_response(discovery.api_groups())

    async def group(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        found = discovery.api_group(request.match_info["group"])
        if found is None:
            raise status.path_not_found()
        return json_response(found)

    async def group_resources(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        found = discovery.resource_list(request.match_info["group"], request.match_info["version"])
        if found is None:
            raise status.path_not_found()
        return json_response(found)

    async def openapi_v2(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        if "protobuf" in request.headers.get("Accept", ""):
            return web.Response(
                body=openapi.v2_protobuf(),
                content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            )
        return json_response(openapi.v2_document())

    async def openapi_v3_root(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        return json_response(openapi.v3_index())

    async def openapi_v3(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        document = openapi.v3_document(request.match_info["path"])
        if document is None:
            raise status.path_not_found()
        return json_response(document)
