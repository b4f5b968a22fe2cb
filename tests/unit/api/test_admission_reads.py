"""A create's admission reads are one etcd round trip, and still as fresh as separate reads were.

Pod creates read their namespace, quotas, LimitRanges and ServiceAccount together
(:mod:`nestlab.api.admitreads`); a pod's removal reads the quotas it refunds in its own transaction.
What must not change: a LimitRange or quota stored just before a create applies to it, a quota
changed between the read and the charge is charged again (never overwritten), a missing
``default`` ServiceAccount is still looked for again, and the etcd answers parse as the gateway
sends them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from nestlab.api import etcdwire, limitranger, saadmission
from nestlab.api import resources as r
from nestlab.api.etcd import EtcdClient, KeyValue, Reads
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

Obj = dict[str, Any]


class CountingEtcd(FakeEtcd):
    """FakeEtcd counting its round trips by kind."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def get(self, key: str) -> KeyValue | None:
        self.calls.append(f"get {key}")
        return await super().get(key)

    async def range(self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0) -> Any:
        self.calls.append(f"range {prefix}")
        return await super().range(prefix, start=start, limit=limit, revision=revision)

    async def read(self, keys: Sequence[str] = (), prefixes: Sequence[str] = ()) -> Reads:
        self.calls.append("read")
        return await super().read(keys, prefixes)

    async def create(self, key: str, value: bytes) -> int | None:
        self.calls.append(f"create {key}")
        return await super().create(key, value)

    async def update(self, key: str, value: bytes, mod_revision: int) -> int | None:
        self.calls.append(f"update {key}")
        return await super().update(key, value, mod_revision)

    async def delete_listing(self, key: str, mod_revision: int, prefix: str) -> Any:
        self.calls.append(f"delete {key} listing {prefix}")
        return await super().delete_listing(key, mod_revision, prefix)


def pod(name: str = "web", **resources: Any) -> Obj:
    container = {"name": "c", "image": "busybox:1.36", "resources": resources}
    return {"metadata": {"name": name}, "spec": {"containers": [container]}}


async def full_registry() -> tuple[Registry, CountingEtcd]:
    etcd = CountingEtcd()
    store = Store(etcd)  # type: ignore[arg-type]
    defaults, bounds = limitranger.hooks(store)
    registry = Registry(store, mutating=(defaults, saadmission.hook(store.get)), validating=(bounds,))
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
    await registry.create(r.SERVICEACCOUNTS, "demo", {"metadata": {"name": "default"}})
    return registry, etcd


def test_a_pod_create_is_one_read_and_one_write() -> None:
    async def scenario() -> list[str]:
        registry, etcd = await full_registry()
        etcd.calls.clear()
        await registry.create(r.PODS, "demo", pod())
        return etcd.calls

    assert asyncio.run(scenario()) == ["read", "create /registry/pods/demo/web"]


def test_a_limitrange_and_a_quota_stored_just_before_apply_to_the_next_pod() -> None:
    async def scenario() -> tuple[Obj, Obj]:
        registry, _etcd = await full_registry()
        await registry.create(r.PODS, "demo", pod("first"))
        await registry.create(
            r.LIMITRANGES,
            "demo",
            {
                "metadata": {"name": "lr"},
                "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "250m"}}]},
            },
        )
        await registry.create(
            r.QUOTAS, "demo", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "1"}}}
        )
        made = await registry.create(r.PODS, "demo", pod("second"))
        return made, await registry.get(r.QUOTAS, "demo", "q")

    made, quota = asyncio.run(scenario())
    assert made["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "250m"}
    assert made["metadata"]["annotations"][limitranger.ANNOTATION].startswith("LimitRanger plugin set: cpu")
    assert quota["status"]["used"] == {"requests.cpu": "250m"}


def test_a_quota_changed_after_the_read_is_charged_again_not_overwritten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> Obj:
        registry, _etcd = await full_registry()
        await registry.create(r.QUOTAS, "demo", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}})
        real = Store.read_together

        async def then_another_create(self: Store, wanted: Any) -> Any:
            snapshot = await real(self, wanted)
            if not racing:
                racing.append(1)  # another server admits a pod between this read and the charge
                await registry.create(r.PODS, "demo", pod("other"))
            return snapshot

        racing: list[int] = []
        monkeypatch.setattr(Store, "read_together", then_another_create)
        await registry.create(r.PODS, "demo", pod("web"))
        with pytest.raises(ApiError) as caught:
            await registry.create(r.PODS, "demo", pod("third"))
        assert caught.value.code == 403
        return await registry.get(r.QUOTAS, "demo", "q")

    assert asyncio.run(scenario())["status"]["used"] == {"pods": "2"}


def test_a_removed_pod_is_refunded_from_the_quotas_read_with_its_removal() -> None:
    async def scenario() -> tuple[list[str], Obj]:
        registry, etcd = await full_registry()
        await registry.create(r.QUOTAS, "demo", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "5"}}})
        await registry.create(r.PODS, "demo", pod())
        etcd.calls.clear()
        await registry.delete(r.PODS, "demo", "web", {})
        return list(etcd.calls), await registry.get(r.QUOTAS, "demo", "q")

    calls, quota = asyncio.run(scenario())
    assert calls == [
        "get /registry/pods/demo/web",
        "delete /registry/pods/demo/web listing /registry/resourcequotas/demo/",
        "update /registry/resourcequotas/demo/q",
    ]
    assert quota["status"]["used"] == {"pods": "0"}


def test_a_pod_in_a_missing_namespace_is_refused_as_before() -> None:
    async def scenario(with_accounts: bool) -> ApiError:
        etcd = CountingEtcd()
        store = Store(etcd)  # type: ignore[arg-type]
        defaults, bounds = limitranger.hooks(store)
        accounts = (saadmission.hook(store.get),) if with_accounts else ()
        registry = Registry(store, mutating=(defaults, *accounts), validating=(bounds,))
        body = pod()
        body["spec"]["serviceAccountName"] = "builder"
        with pytest.raises(ApiError) as caught:
            await registry.create(r.PODS, "gone", body)
        return caught.value

    missing = asyncio.run(scenario(with_accounts=False))
    assert (missing.code, missing.message) == (404, 'namespaces "gone" not found')
    refused = asyncio.run(scenario(with_accounts=True))  # the ServiceAccount is looked up first, as before
    assert refused.code == 403
    assert 'serviceaccount "builder" not found' in refused.message


def test_a_missing_default_account_is_looked_for_again_after_the_read() -> None:
    async def scenario() -> tuple[int, list[float]]:
        etcd = CountingEtcd()
        store = Store(etcd)  # type: ignore[arg-type]
        naps: list[float] = []

        async def nap(seconds: float) -> None:
            naps.append(seconds)

        registry = Registry(store, mutating=(saadmission.hook(store.get, nap),))
        await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
        etcd.calls.clear()
        with pytest.raises(ApiError) as caught:
            await registry.create(r.PODS, "demo", pod())
        assert caught.value.code == 403
        gets = sum(1 for call in etcd.calls if call.startswith("get /registry/serviceaccounts/"))
        return gets, naps

    gets, naps = asyncio.run(scenario())
    assert gets == saadmission.DEFAULT_LOOKUPS - 1  # the first look was the create's read
    assert len(naps) == saadmission.DEFAULT_LOOKUPS - 1


def _kv(key: str, value: str, rev: int) -> Any:
    return etcdwire.new(
        "KeyValue", key=key.encode(), value=value.encode(), create_revision=rev, mod_revision=rev
    )


def _ranged(*kvs: Any) -> Any:
    return etcdwire.new("ResponseOp", response_range=etcdwire.new("RangeResponse", kvs=list(kvs)))


def test_the_client_parses_a_read_only_transaction_and_a_delete_that_lists() -> None:
    sent: list[tuple[str, Any, bool]] = []
    header = etcdwire.new("ResponseHeader", revision=9)
    answers: list[Any] = [
        etcdwire.new(
            "TxnResponse",
            header=header,
            succeeded=True,
            responses=[
                _ranged(_kv("/ns/demo", "{}", 3)),
                _ranged(),
                _ranged(_kv("/q/demo/a", "1", 4), _kv("/q/demo/b", "2", 5)),
            ],
        ),
        etcdwire.new(
            "TxnResponse",
            header=etcdwire.new("ResponseHeader", revision=10),
            succeeded=True,
            responses=[
                etcdwire.new(
                    "ResponseOp", response_delete_range=etcdwire.new("DeleteRangeResponse", deleted=1)
                ),
                _ranged(_kv("/q/demo/a", "1", 4)),
            ],
        ),
        etcdwire.new("TxnResponse", header=etcdwire.new("ResponseHeader", revision=10)),
    ]

    async def call(method: str, request: Any, *, read: bool = False) -> Any:
        sent.append((method, request, read))
        return answers.pop(0)

    async def scenario() -> tuple[Reads, Any, Any]:
        client = EtcdClient(["http://127.0.0.1:1"])
        client._call = call  # type: ignore[method-assign]
        found = await client.read(["/ns/demo", "/sa/demo/default"], ["/q/demo/"])
        removed = await client.delete_listing("/pods/demo/web", 8, "/q/demo/")
        refused = await client.delete_listing("/pods/demo/web", 8, "/q/demo/")
        return found, removed, refused

    found, removed, refused = asyncio.run(scenario())
    assert found.revision == 9
    assert found.values["/ns/demo"] is not None
    assert found.values["/ns/demo"].mod_revision == 3
    assert found.values["/sa/demo/default"] is None
    assert [kv.value for kv in found.lists["/q/demo/"]] == [b"1", b"2"]
    assert sent[0][0] == etcdwire.TXN
    assert sent[0][2] is True
    assert len(sent[0][1].compare) == 0
    assert len(sent[0][1].success) == 3
    assert sent[0][1].success[2].request_range.range_end == b"/q/demo0"
    assert removed[0] == 10
    assert [kv.key for kv in removed[1]] == ["/q/demo/a"]
    assert refused == (None, ())
    assert sent[1][2] is False  # a deletion is a write
