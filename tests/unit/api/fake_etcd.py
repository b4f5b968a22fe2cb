"""An in-memory stand-in for EtcdClient with etcd's revision rules, for registry unit tests.

It keeps one global revision, per-key create/mod revisions and a history for watches, so the
compare-and-swap and watch translation logic above it is exercised exactly as against etcd (the
integration tests run the same code against a real cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence

from nestlab.api.etcd import EtcdCompactedError, KeyValue, RangeResult, Reads, WatchEvent, prefix_end


class FakeEtcd:
    def __init__(self) -> None:
        self.data: dict[str, KeyValue] = {}
        self.rev = 1
        self.history: list[tuple[int, WatchEvent]] = []
        self.compacted = 0
        self.changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def get(self, key: str) -> KeyValue | None:
        await asyncio.sleep(0)  # yield, so concurrent read-modify-writes really interleave
        return self.data.get(key)

    async def range(self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0) -> RangeResult:
        if revision and revision <= self.compacted:
            raise EtcdCompactedError("mvcc: required revision has been compacted", self.compacted)
        if revision and revision != self.rev:
            raise NotImplementedError("the fake keeps no history for reads in the past")
        end = prefix_end(prefix)
        kvs = tuple(self.data[k] for k in sorted(self.data) if (start or prefix) <= k < end)
        return RangeResult(kvs[:limit] if limit else kvs, self.rev, bool(limit and len(kvs) > limit))

    async def read(self, keys: Sequence[str] = (), prefixes: Sequence[str] = ()) -> Reads:
        await asyncio.sleep(0)
        lists = {
            p: tuple(self.data[k] for k in sorted(self.data) if p <= k < prefix_end(p)) for p in prefixes
        }
        return Reads(self.rev, {key: self.data.get(key) for key in keys}, lists)

    async def revision(self) -> int:
        return self.rev

    async def unchanged_since(self, ranges: Mapping[str, int]) -> bool:
        return all(
            kv.mod_revision <= revision
            for prefix, revision in ranges.items()
            for key, kv in self.data.items()
            if prefix <= key < prefix_end(prefix)
        )

    async def _put(self, key: str, value: bytes) -> int:
        self.rev += 1
        prev = self.data.get(key)
        kv = KeyValue(key, value, prev.create_revision if prev else self.rev, self.rev)
        self.data[key] = kv
        self.history.append((self.rev, WatchEvent("PUT", kv, prev)))
        await self._notify()
        return self.rev

    async def create(self, key: str, value: bytes) -> int | None:
        return None if key in self.data else await self._put(key, value)

    async def update(self, key: str, value: bytes, mod_revision: int) -> int | None:
        await asyncio.sleep(0)
        current = self.data.get(key)
        if current is None or current.mod_revision != mod_revision:
            return None
        return await self._put(key, value)

    async def delete(self, key: str, mod_revision: int) -> int | None:
        current = self.data.get(key)
        if current is None or current.mod_revision != mod_revision:
            return None
        self.rev += 1
        del self.data[key]
        self.history.append((self.rev, WatchEvent("DELETE", KeyValue(key, b"", 0, self.rev), current)))
        await self._notify()
        return self.rev

    async def delete_listing(
        self, key: str, mod_revision: int, prefix: str
    ) -> tuple[int | None, tuple[KeyValue, ...]]:
        revision = await self.delete(key, mod_revision)
        if revision is None:
            return None, ()
        return revision, tuple(self.data[k] for k in sorted(self.data) if prefix <= k < prefix_end(prefix))

    async def compact(self, revision: int) -> None:
        self.compacted = revision

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[tuple[int, list[WatchEvent]]]:
        if start_revision <= self.compacted:
            raise EtcdCompactedError("compacted", self.compacted)
        end = prefix_end(prefix)
        seen = start_revision - 1
        while True:
            batch = [(r, e) for r, e in self.history if r > seen and prefix <= e.kv.key < end]
            for revision, event in batch:
                seen = revision
                yield revision, [event]
            if not batch:
                seen = max(seen, self.rev)
                async with self.changed:
                    await self.changed.wait()

    async def close(self) -> None:
        return None
