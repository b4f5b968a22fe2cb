"""Namespace termination with several sweepers: a namespace deleted and created again under the
same name must survive the old namespace's sweepers (seen on a lab: `kubectl delete ns ex06`,
`kubectl create ns ex06`, then a second API server's sweeper removed the new namespace)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nestlab.api import namespaces
from nestlab.api import resources as r
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd


def config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


async def until(check: Any, what: str, attempts: int = 400) -> None:
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"{what}: never happened")


def test_still_terminating_needs_the_uid_and_a_deletion_timestamp() -> None:
    terminating = {"metadata": {"uid": "u1", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert namespaces.still_terminating(terminating, "u1")
    assert not namespaces.still_terminating(terminating, "u2")
    assert not namespaces.still_terminating({"metadata": {"uid": "u1"}}, "u1")


def test_recreated_namespace_survives_the_old_namespaces_two_sweepers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(namespaces, "_POLL", 0.2)  # the old sweepers are asleep when the name is reused

    async def scenario() -> None:
        etcd = FakeEtcd()
        first = Registry(Store(etcd))  # type: ignore[arg-type]
        second = Registry(Store(etcd))  # type: ignore[arg-type]  # another API server, same etcd
        await first.create(r.NAMESPACES, "", {"metadata": {"name": "ex06"}})
        await first.create(r.CONFIGMAPS, "ex06", config_map("old"))
        await first.delete(r.NAMESPACES, "", "ex06", {})
        await second.delete(r.NAMESPACES, "", "ex06", {})  # kubectl retried on the other server

        async def gone() -> bool:
            try:
                await first.get(r.NAMESPACES, "", "ex06")
            except ApiError:
                return True
            return False

        await until(gone, "the old namespace's removal")
        new = await first.create(r.NAMESPACES, "", {"metadata": {"name": "ex06"}})
        await first.create(r.CONFIGMAPS, "ex06", config_map("new"))

        async def swept() -> bool:
            return not first.namespaces._sweepers and not second.namespaces._sweepers

        await until(swept, "the old sweepers' end")
        kept = await second.get(r.NAMESPACES, "", "ex06")
        assert kept["metadata"]["uid"] == new["metadata"]["uid"]
        assert not kept["metadata"].get("deletionTimestamp")
        names = [
            o["metadata"]["name"] for o in (await first.list(r.CONFIGMAPS, "ex06", lambda _o: True))["items"]
        ]
        assert names == ["new"]
        await first.close()
        await second.close()

    asyncio.run(scenario())
