"""The StatefulSet and Job controllers' sync over fake API calls: expectations and revision collisions."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any, cast

from nestlab.api import status
from nestlab.api.client import ApiClient
from nestlab.api.resources import CONTROLLER_REVISIONS, JOBS, PODS, STATEFULSETS, Resource
from nestlab.controller import revisions
from nestlab.controller.informer import InformerFactory
from nestlab.controller.job import JobController
from nestlab.controller.statefulset import StatefulSetController

Obj = dict[str, Any]
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


class FakeClient:
    """Stores objects by (plural, namespace, name); records every write."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[tuple[str, str, str]] = []

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        stored = copy.deepcopy(obj)
        meta = stored["metadata"]
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{len(self.writes):05d}"
        key = (resource.plural, namespace, meta["name"])
        if key in self.objects:
            raise status.ApiError(409, "AlreadyExists", f'{resource.plural} "{meta["name"]}" already exists')
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[key] = stored
        self.writes.append(("create", resource.plural, meta["name"]))
        return stored

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        if (resource.plural, namespace, name) not in self.objects:
            raise status.ApiError(404, "NotFound", name)
        return self.objects[(resource.plural, namespace, name)]

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, subresource: str = ""
    ) -> Obj:
        self.writes.append(("patch", f"{resource.plural}/{subresource}".rstrip("/"), name))
        self.last_patch = patch
        return {"metadata": {"name": name}, **patch}

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> Obj:
        self.writes.append((method, path, ""))
        return {}

    async def delete(self, resource: Resource, namespace: str, name: str, grace: int | None = None) -> Obj:
        self.writes.append(("delete", resource.plural, name))
        return {}


def job() -> Obj:
    return {
        "metadata": {"name": "pi", "namespace": "demo", "uid": "job-uid", "resourceVersion": "1"},
        "spec": {
            "completions": 4,
            "parallelism": 2,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}},
        },
    }


def test_job_does_not_create_twice_before_the_cache_shows_its_pods() -> None:
    async def scenario() -> None:
        client = FakeClient()
        informers = InformerFactory(cast(ApiClient, client))
        controller = JobController(cast(ApiClient, client), informers, clock=lambda: NOW)
        informers.informer(JOBS).apply("ADDED", job())
        await controller.sync("demo/pi")
        created = [w for w in client.writes if w[:2] == ("create", "pods")]
        assert len(created) == 2
        await controller.sync("demo/pi")  # the pod informer has not seen them yet
        assert len([w for w in client.writes if w[:2] == ("create", "pods")]) == 2
        for (plural, _ns, _name), obj in list(client.objects.items()):
            if plural == "pods":
                informers.informer(PODS).apply("ADDED", {**obj, "status": {"phase": "Pending"}})
        await controller.sync("demo/pi")
        assert len([w for w in client.writes if w[:2] == ("create", "pods")]) == 2  # 2 active: enough
        controller.queue.shutdown()

    asyncio.run(scenario())


def statefulset() -> Obj:
    return {
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "demo", "uid": "sts-uid", "generation": 1},
        "spec": {
            "replicas": 1,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }


def test_statefulset_revision_hash_collision_bumps_the_count() -> None:
    async def scenario() -> None:
        client = FakeClient()
        sts = statefulset()
        taken = revisions.new_revision(sts, "StatefulSet", 1, 0)
        taken["data"] = {"spec": {"template": {"something": "else"}}}  # same name, other template
        client.objects[("controllerrevisions", "demo", taken["metadata"]["name"])] = taken
        informers = InformerFactory(cast(ApiClient, client))
        controller = StatefulSetController(cast(ApiClient, client), informers, clock=lambda: NOW)
        informers.informer(STATEFULSETS).apply("ADDED", sts)
        await controller.sync("demo/web")
        made = [w[2] for w in client.writes if w[:2] == ("create", CONTROLLER_REVISIONS.plural)]
        assert made == [revisions.new_revision(sts, "StatefulSet", 1, 1)["metadata"]["name"]]
        assert ("create", "pods", "web-0") in client.writes
        assert client.last_patch["status"]["collisionCount"] == 1
        assert client.last_patch["status"]["updateRevision"] == made[0]
        controller.queue.shutdown()

    asyncio.run(scenario())
