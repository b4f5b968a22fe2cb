"""The RBAC index answers per subject, and the cache follows the store (resume, relist on 410)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nestlab.api import auth, rbaccache, status
from nestlab.api import resources as r
from nestlab.api.rbaccache import RbacCache, RbacIndex
from nestlab.api.rbacrules import Attributes, allows
from nestlab.api.store import Obj, Predicate, Store, WatchEvent
from tests.unit.api.fake_etcd import FakeEtcd

ALICE = auth.User("alice", frozenset({"devs", "system:authenticated"}))
BOT = auth.User("system:serviceaccount:team-a:bot", frozenset({"system:serviceaccounts"}))
CREATE_PODS = Attributes("create", "", "pods", namespace="team-a")


def role(name: str, namespace: str = "", verbs: tuple[str, ...] = ("create",)) -> Obj:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": list(verbs)}]}


def binding(name: str, role_kind: str, role_name: str, *subjects: Obj, namespace: str = "") -> Obj:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "roleRef": {"kind": role_kind, "name": role_name}, "subjects": list(subjects)}


def user(name: str) -> Obj:
    return {"kind": "User", "name": name}


def test_index_grants_by_subject_and_scope() -> None:
    index = RbacIndex()
    index.apply(r.CLUSTERROLES, "ADDED", role("pod-maker"))
    index.apply(r.ROLES, "ADDED", role("local", "team-a", ("get",)))
    index.apply(
        r.ROLEBINDINGS, "ADDED", binding("a", "ClusterRole", "pod-maker", user("alice"), namespace="team-a")
    )
    index.apply(
        r.ROLEBINDINGS,
        "ADDED",
        binding("b", "Role", "local", {"kind": "Group", "name": "devs"}, namespace="team-a"),
    )
    sa = {"kind": "ServiceAccount", "name": "bot"}  # namespace defaults to the binding's
    index.apply(r.ROLEBINDINGS, "ADDED", binding("c", "ClusterRole", "pod-maker", sa, namespace="team-a"))
    grants = index.grants(ALICE, "team-a")
    assert [g.source for g in grants] == [
        'RoleBinding "a/team-a" of ClusterRole "pod-maker" to User "alice"',
        'RoleBinding "b/team-a" of Role "local" to Group "devs"',
    ]
    assert allows([rule for g in grants for rule in g.rules], CREATE_PODS)
    assert index.grants(ALICE, "team-b") == []  # a RoleBinding grants in its namespace only
    assert index.grants(ALICE, "") == []
    assert [g.source for g in index.grants(BOT, "team-a")] == [
        'RoleBinding "c/team-a" of ClusterRole "pod-maker" to ServiceAccount "team-a/bot"'
    ]
    index.apply(r.CLUSTERROLES, "DELETED", role("pod-maker"))  # a binding to a missing role grants nothing
    assert index.grants(ALICE, "team-a")[0].rules == ()
    index.apply(r.ROLEBINDINGS, "DELETED", binding("a", "ClusterRole", "pod-maker", namespace="team-a"))
    assert len(index.grants(ALICE, "team-a")) == 1


def test_a_changed_binding_leaves_its_old_subjects() -> None:
    index = RbacIndex()
    index.apply(r.CLUSTERROLES, "ADDED", role("pod-maker"))
    index.apply(r.CLUSTERROLEBINDINGS, "ADDED", binding("x", "ClusterRole", "pod-maker", user("alice")))
    assert index.grants(ALICE, "")
    index.apply(r.CLUSTERROLEBINDINGS, "MODIFIED", binding("x", "ClusterRole", "pod-maker", user("bob")))
    assert index.grants(ALICE, "") == []
    index.replace(r.CLUSTERROLEBINDINGS, [])  # a fresh list without it
    assert index.bindings == {}


class Counting(dict[Any, Any]):
    """A dict that counts lookups and refuses to be walked."""

    lookups = 0

    def __getitem__(self, key: Any) -> Any:
        Counting.lookups += 1
        return super().__getitem__(key)

    def __iter__(self) -> Any:
        raise AssertionError("the index walked every binding")


def test_cost_follows_the_callers_bindings_only() -> None:
    index = RbacIndex()
    index.apply(r.CLUSTERROLES, "ADDED", role("pod-maker"))
    for number in range(1000):
        index.apply(
            r.ROLEBINDINGS,
            "ADDED",
            binding(f"b{number}", "ClusterRole", "pod-maker", user(f"u{number}"), namespace="team-a"),
        )
    index.apply(
        r.ROLEBINDINGS,
        "ADDED",
        binding("mine", "ClusterRole", "pod-maker", user("alice"), namespace="team-a"),
    )
    index.bindings = Counting(index.bindings)
    grants = index.grants(ALICE, "team-a")
    assert len(grants) == 1
    assert Counting.lookups == 1


def test_subject_keys() -> None:
    assert rbaccache.subject_key({"kind": "ServiceAccount", "name": "x", "namespace": "n"}, "m") == (
        "User",
        "system:serviceaccount:n:x",
    )
    assert (
        rbaccache.subject_key({"kind": "ServiceAccount", "name": "x"}, "") is None
    )  # cluster binding, no namespace
    assert rbaccache.subject_key({"kind": "Robot", "name": "x"}, "n") is None
    assert rbaccache.subject_key({"kind": "User", "name": ""}, "n") is None


async def wait_for(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen")
        await asyncio.sleep(0.01)


def test_cache_follows_writes() -> None:
    async def scenario() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        await store.create(r.CLUSTERROLES, "", role("pod-maker"))
        cache = RbacCache(store)
        cache.start()
        try:
            assert await cache.wait_synced(5)
            assert cache.index.grants(ALICE, "team-a") == []
            made = await store.create(
                r.ROLEBINDINGS, "team-a", binding("a", "ClusterRole", "pod-maker", user("alice"))
            )
            await wait_for(lambda: cache.index.grants(ALICE, "team-a"), "the binding reaching the cache")
            await store.remove(r.ROLEBINDINGS, "team-a", made)
            await wait_for(lambda: not cache.index.grants(ALICE, "team-a"), "the deletion reaching the cache")
        finally:
            await cache.stop()
        assert not cache.synced

    asyncio.run(scenario())


class GoneOnce(Store):
    """A store whose first watch of each kind answers 410 Gone, as after a compaction."""

    def __init__(self, etcd: Any) -> None:
        super().__init__(etcd)
        self.lists = 0
        self.gone: set[str] = set()

    async def list(self, resource: r.Resource, namespace: str, predicate: Predicate) -> tuple[list[Obj], int]:
        self.lists += 1
        return await super().list(resource, namespace, predicate)

    async def open_watch(
        self, resource: r.Resource, namespace: str, since: str, predicate: Predicate
    ) -> AsyncIterator[WatchEvent]:
        if resource.plural not in self.gone:
            self.gone.add(resource.plural)
            raise status.gone("too old resource version")
        return await super().open_watch(resource, namespace, since, predicate)


def test_cache_lists_again_after_gone() -> None:
    async def scenario() -> None:
        store = GoneOnce(FakeEtcd())
        cache = RbacCache(store)
        cache.start()
        try:
            await wait_for(lambda: store.lists >= 8, "a second list of every kind")
            await store.create(r.CLUSTERROLES, "", role("pod-maker"))
            await wait_for(lambda: "pod-maker" in cache.index.cluster_roles, "the role after the relist")
        finally:
            await cache.stop()

    asyncio.run(scenario())


class BreaksOnce(Store):
    """A store whose first RoleBinding watch breaks (etcd lost) after its first event."""

    def __init__(self, etcd: Any) -> None:
        super().__init__(etcd)
        self.lists = 0
        self.resumed_from: list[str] = []

    async def list(self, resource: r.Resource, namespace: str, predicate: Predicate) -> tuple[list[Obj], int]:
        self.lists += 1
        return await super().list(resource, namespace, predicate)

    async def open_watch(
        self, resource: r.Resource, namespace: str, since: str, predicate: Predicate
    ) -> AsyncIterator[WatchEvent]:
        events = await super().open_watch(resource, namespace, since, predicate)
        if resource is not r.ROLEBINDINGS:
            return events
        self.resumed_from.append(since)
        if len(self.resumed_from) > 1:
            return events

        async def one_then_break() -> AsyncIterator[WatchEvent]:
            async for event in events:
                yield event
                raise status.unavailable("storage is unavailable: etcd went away")

        return one_then_break()


def test_cache_resumes_a_broken_watch_from_the_last_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rbaccache, "_RETRY_S", 0.01)

    async def scenario() -> None:
        store = BreaksOnce(FakeEtcd())
        cache = RbacCache(store)
        cache.start()
        try:
            assert await cache.wait_synced(5)
            first = await store.create(
                r.ROLEBINDINGS, "team-a", binding("a", "ClusterRole", "x", user("alice"))
            )
            await wait_for(lambda: len(store.resumed_from) == 2, "the watch resuming")
            assert store.resumed_from[1] == first["metadata"]["resourceVersion"]
            assert store.lists == 4  # resumed, not listed again
            await store.create(r.ROLEBINDINGS, "team-a", binding("b", "ClusterRole", "x", user("alice")))
            await wait_for(lambda: len(cache.index.grants(ALICE, "team-a")) == 2, "the next event")
        finally:
            await cache.stop()

    asyncio.run(scenario())
