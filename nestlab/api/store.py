"""Objects in etcd: keys, resourceVersion = mod_revision, compare-and-swap updates, watches.

This is the generic storage layer (no per-kind rules): the one place that turns etcd answers into
Kubernetes semantics. An update names the revision it read; etcd applies it only if the key is
still at that revision, which is how two writers racing on one object get a 409 instead of a lost
update. etcd failures become 503 (retryable), compacted revisions become 410 (re-list).

Updates start from the newest copy of the object this server has seen (:meth:`Store.latest`:
written, read or delivered by a watch) instead of reading it again, as kube-apiserver's
GuaranteedUpdate starts from its watch cache's copy: the compare-and-swap makes a stale copy cost a
retry on a fresh read, never a lost update, and an update that a possibly stale copy refused or
found unchanged is decided again on a fresh read.

It is also the one place values are transformed on their way to etcd and back (encryption at rest,
:mod:`nestlab.api.encryption`): :meth:`Store._encode` and :meth:`Store._decode` are the only
writers and readers of stored bytes, so a Secret is ciphertext in etcd and plain everywhere above.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar, Unpack

from nestlab.api import jsoncodec, kinds, status
from nestlab.api.encryption import IDENTITY, Transformer, TransformError
from nestlab.api.etcd import (
    EtcdClient,
    EtcdCompactedError,
    EtcdError,
    EtcdInDoubtError,
    KeyValue,
    Reads,
)
from nestlab.api.etcd import WatchEvent as EtcdEvent
from nestlab.api.kinds.base import Claim
from nestlab.api.resources import Resource
from nestlab.api.watchfeed import Feeds

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]
Objs = list[Obj]  # spelled once here: inside Store, "list" names the method
T = TypeVar("T")
_CAS_ATTEMPTS = 16  # retries of a read-modify-write under contention before answering 409
# Decoded watch objects kept for the other watches of the same change: every watcher receives a
# change within moments of the others, so the last thousand cover a burst (~10 KiB each decoded).
_WATCH_MEMO = 1024
# Newest stored copies kept for updates (Store.latest), least recently touched dropped first: a
# pod's stored bytes are 2-5 KiB, so this is tens of MiB at most.
_COPIES = 8192


def now() -> str:
    """The current time as Kubernetes writes timestamps (RFC 3339, seconds, Z)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Wanted:
    """One read of a :meth:`Store.read_together`: an object (``name``) or a whole list (no name)."""

    resource: Resource
    namespace: str
    name: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Objects and lists read together at one store revision (:meth:`Store.read_together`)."""

    revision: int
    objects: dict[Wanted, Obj | None]
    """By read: the object, or None when it does not exist."""
    lists: dict[Wanted, list[Obj]]
    """By read (no name): every object of the list, sorted by key."""


@dataclass(frozen=True)
class WatchEvent:
    """One event as a Kubernetes watch stream delivers it."""

    type: str
    """ADDED, MODIFIED, DELETED (or ERROR, with a Status object); PROGRESS (only for a watch opened
    with ``progress=True``): no change for this watch up to the object's resourceVersion."""
    object: Obj


Chunk = list[WatchEvent]  # spelled here: inside Store, "list" names the method


class WatchOptions(TypedDict, total=False):
    """How a watch is served (:meth:`Store.open_watch`)."""

    progress: bool
    """Also say how far the watch has seen when nothing it carries changed (PROGRESS events: etcd's
    progress notifications, and changes the predicate filtered out), so the watch's bookmarks can
    carry etcd's progress, as upstream's do. Default False."""
    every: float
    """Take the shared feed's changes at most this often, in seconds (see
    :mod:`nestlab.api.watchfeed`; what came meanwhile comes together). Default 0: at once."""


def progress(revision: int) -> WatchEvent:
    """A PROGRESS event: the watch has seen every change up to ``revision``; never sent as is."""
    return WatchEvent("PROGRESS", {"metadata": {"resourceVersion": str(revision)}})


def decode(kv: KeyValue, revision: int | None = None) -> Obj:
    """The stored object with its resourceVersion filled from etcd."""
    obj: Obj = jsoncodec.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(
        revision if revision is not None else kv.mod_revision
    )
    return obj


def encode(obj: Obj) -> bytes:
    """The bytes stored in etcd (resourceVersion is never stored: etcd is its source)."""
    stored = dict(obj)
    stored["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return jsoncodec.dumps(stored, sort_keys=True)


class ClaimTakenError(status.ApiError):
    """422: another object holds a value this one claims (a Service's ClusterIP): see :class:`Claim`."""

    def __init__(self, resource: Resource, name: str, claim: Claim) -> None:
        error = status.invalid(resource.kind, resource.group, name, [status.Cause(claim.path, claim.message)])
        super().__init__(error.code, error.reason, error.message, error.details)
        self.claim = claim


def _claims(resource: Resource, obj: Obj | None) -> dict[str, Claim]:
    """The keys ``obj`` holds exclusively, by key (none for kinds without claims)."""
    if obj is None:
        return {}
    return {claim.key: claim for claim in kinds.of(resource).claims(obj)}


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except EtcdCompactedError as exc:
        raise status.gone(f"too old resource version: {exc}") from exc
    except EtcdInDoubtError as exc:  # sent, unanswered: upstream's storage timeout, 504
        raise status.timeout(f"Timeout: request did not complete within the allowed duration: {exc}") from exc
    except EtcdError as exc:  # unavailable, no leader, request timed out inside etcd...
        raise status.unavailable(f"storage is unavailable: {exc}") from exc


_configured: list[Transformer] = [IDENTITY]


def use_transformer(transformer: Transformer) -> None:
    """Make ``transformer`` the one every :class:`Store` of this process uses unless given another.

    ``nestlab-apiserver`` calls it once at startup with its ``--encryption-provider-config``: the
    server and the registry build stores (dry-run ones too) from an etcd client alone, and all of
    them must read what the others wrote.
    """
    _configured[0] = transformer


class Store:
    """Generic object storage over one :class:`EtcdClient`."""

    dry_run = False

    def __init__(self, etcd: EtcdClient, transformer: Transformer | None = None) -> None:
        self.etcd = etcd
        self.transformer = transformer if transformer is not None else _configured[0]
        self._seen: OrderedDict[tuple[str, int, int | None], Obj] = OrderedDict()
        """Objects decoded for watches, by (key, mod_revision, revision shown): see :meth:`_watched`."""
        self._copies: OrderedDict[str, KeyValue] = OrderedDict()
        """The newest stored value seen of each key, by key: see :meth:`latest`."""
        self._translated: OrderedDict[tuple[Predicate, str, str, int], WatchEvent | None] = OrderedDict()
        """Watch events as watches with the same predicate see them: see :meth:`_translate`."""
        self._feeds = Feeds(etcd, self._observe)
        """The etcd watches every watch of this store shares (:mod:`nestlab.api.watchfeed`)."""

    def _remember(self, kv: KeyValue) -> None:
        """Keep ``kv`` as its key's newest copy unless a newer one is known."""
        known = self._copies.get(kv.key)
        if known is not None and known.mod_revision >= kv.mod_revision:
            return
        self._copies[kv.key] = kv
        self._copies.move_to_end(kv.key)
        if len(self._copies) > _COPIES:
            self._copies.popitem(last=False)

    def _forget(self, key: str, revision: int) -> None:
        """``key`` was deleted at ``revision``: drop its copy unless it is newer."""
        known = self._copies.get(key)
        if known is not None and known.mod_revision < revision:
            del self._copies[key]

    def _observe(self, events: list[EtcdEvent]) -> None:
        """Every change a shared watch feed receives updates the copies (each server sees the
        writes of the others this way, as upstream's watch cache does)."""
        for event in events:
            if event.kind == "DELETE":
                self._forget(event.kv.key, event.kv.mod_revision)
            else:
                self._remember(event.kv)

    def _wrote(self, key: str, value: bytes, revision: int) -> None:
        self._remember(KeyValue(key, value, revision, revision))

    def latest(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        """The newest copy of the object this server has seen (written, read or watched), or None.

        Not a read: the object may have changed or gone since. It is where updates start
        (:meth:`mutate`, :meth:`nestlab.api.registry.Registry.update`/``patch``), never what a
        read answers (GET reads etcd, as upstream's GET without a resourceVersion does)."""
        kv = self._copies.get(resource.key(namespace, name))
        return None if kv is None else self._decode(resource, kv)

    def _encode(self, resource: Resource, key: str, obj: Obj) -> bytes:
        """The bytes written to etcd at ``key`` (encrypted when the configuration says so)."""
        return self.transformer.to_storage(resource, key, encode(obj))

    def _decode(self, resource: Resource, kv: KeyValue, revision: int | None = None) -> Obj:
        """The object stored in ``kv``; a value that cannot be decrypted is a 500 naming the key."""
        try:
            plain = self.transformer.from_storage(resource, kv.key, kv.value)
        except TransformError as exc:
            raise status.ApiError(
                500, "InternalError", f'Internal error occurred: unable to transform key "{kv.key}": {exc}'
            ) from exc
        return decode(replace(kv, value=plain), revision)

    async def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        """The object, or a 404 ApiError."""
        key = resource.key(namespace, name)
        kv = await _guard(self.etcd.get(key))
        if kv is None:
            self._copies.pop(key, None)
            raise status.not_found(resource.plural, resource.group, name)
        self._remember(kv)
        return self._decode(resource, kv)

    async def read_together(self, wanted: Sequence[Wanted]) -> Snapshot:
        """Several objects and lists in one etcd round trip, all at one revision (a linearizable
        read, as :meth:`get` and :meth:`list` each are): the admission reads of a create."""
        objects = [w for w in dict.fromkeys(wanted) if w.name]
        lists = [w for w in dict.fromkeys(wanted) if not w.name]
        keys = [w.resource.key(w.namespace, w.name) for w in objects]
        prefixes = [w.resource.prefix(w.namespace) for w in lists]
        found: Reads = await _guard(self.etcd.read(keys, prefixes))
        return Snapshot(
            found.revision,
            {
                w: (None if (kv := found.values[key]) is None else self._decode(w.resource, kv))
                for w, key in zip(objects, keys, strict=True)
            },
            {
                w: [self._decode(w.resource, kv) for kv in found.lists[prefix]]
                for w, prefix in zip(lists, prefixes, strict=True)
            },
        )

    async def list(self, resource: Resource, namespace: str, predicate: Predicate) -> tuple[list[Obj], int]:
        """Matching objects and the store revision of the read (the list's resourceVersion)."""
        result = await _guard(self.etcd.range(resource.prefix(namespace)))
        items = [obj for obj in (self._decode(resource, kv) for kv in result.kvs) if predicate(obj)]
        return items, result.revision

    async def page(
        self, resource: Resource, namespace: str, predicate: Predicate, limit: int, token: str
    ) -> tuple[Objs, int, str]:
        """One chunk of a paginated list (``?limit=&continue=``): items, revision, next token ("" at the end).

        Every chunk is read at the first chunk's revision, so the whole list is one consistent
        snapshot; once that revision is compacted the token is refused with 410, as upstream.
        """
        prefix = resource.prefix(namespace)
        revision, start = 0, ""
        if token:
            revision, start = _decode_continue(token, prefix)
        try:
            result = await self.etcd.range(prefix, start=start, limit=limit, revision=revision)
        except EtcdCompactedError as exc:
            raise status.gone(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter."
            ) from exc
        except EtcdError as exc:
            raise status.unavailable(f"storage is unavailable: {exc}") from exc
        revision = revision or result.revision
        items = [obj for obj in (self._decode(resource, kv) for kv in result.kvs) if predicate(obj)]
        following = ""
        if result.more and result.kvs:
            following = _encode_continue(revision, result.kvs[-1].key + "\0")
        return items, revision, following

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        """Store a new object (uid, creationTimestamp set here); 409 when the name is taken.

        A uid the registry already chose (a Job's selector is derived from it) is kept."""
        meta = obj.setdefault("metadata", {})
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta.pop("resourceVersion", None)
        if resource.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key, claims = resource.key(namespace, meta["name"]), _claims(resource, obj)
        stored = self._encode(resource, key, obj)
        if claims:
            revision = await _guard(
                self.etcd.write_all(
                    absent=[key, *claims], puts={key: stored, **{c: key.encode() for c in claims}}
                )
            )
        else:
            revision = await _guard(self.etcd.create(key, stored))
        if revision is None:
            if not claims or await _guard(self.etcd.get(key)) is not None:
                raise status.already_exists(resource.plural, resource.group, meta["name"])
            await self._check_claims(resource, meta["name"], claims)
            # a claim was held at the write and freed before the check: the caller may try again
            raise status.conflict(resource.plural, resource.group, meta["name"])
        self._wrote(key, stored, revision)
        meta["resourceVersion"] = str(revision)
        return obj

    async def _check_claims(self, resource: Resource, name: str, claims: dict[str, Claim]) -> None:
        """Raise :class:`ClaimTakenError` for the first of ``claims`` another object holds."""
        for key, claim in claims.items():
            if await _guard(self.etcd.get(key)) is not None:
                raise ClaimTakenError(resource, name, claim)

    async def replace(
        self, resource: Resource, namespace: str, obj: Obj, expected: int, old: Obj | None = None
    ) -> Obj:
        """Write ``obj`` only if the stored copy is still at revision ``expected``; else 409.

        With ``old`` (the copy read at ``expected``), claims ``obj`` adds are taken and claims it
        drops are released in the same transaction (422 :class:`ClaimTakenError` if one is held)."""
        name = obj["metadata"]["name"]
        key = resource.key(namespace, name)
        before, after = _claims(resource, old), _claims(resource, obj) if old is not None else {}
        added = {k: c for k, c in after.items() if k not in before}
        dropped = [k for k in before if k not in after]
        stored = self._encode(resource, key, obj)
        if added or dropped:
            revision = await _guard(
                self.etcd.write_all(
                    absent=list(added),
                    unchanged={key: expected},
                    puts={key: stored, **{k: key.encode() for k in added}},
                    deletes=dropped,
                )
            )
        else:
            revision = await _guard(self.etcd.update(key, stored, expected))
        if revision is None:
            current = await _guard(self.etcd.get(key))
            if current is None:
                self._copies.pop(key, None)
                raise status.not_found(resource.plural, resource.group, name)
            self._remember(current)  # where the caller's next attempt starts
            if current.mod_revision == expected:
                await self._check_claims(resource, name, added)
            raise status.conflict(resource.plural, resource.group, name)
        self._wrote(key, stored, revision)
        obj["metadata"]["resourceVersion"] = str(revision)
        return obj

    async def mutate(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        change: Callable[[Obj], Awaitable[Obj | None]],
        read: Obj | None = None,
    ) -> Obj:
        """Read-modify-write with retries on contention; ``change`` returns None to leave it alone.

        The first attempt starts from ``read`` (a copy of the object read a moment ago, with its
        resourceVersion) or else from :meth:`latest`, a retry after a lost race from the copy the
        failed write found; only without either is the object read first. The write is a compare
        on the copy's revision, so a copy that is no longer current costs one retry, never a lost
        update; and what ``change`` refuses (raises) or leaves alone (None) on a copy that was not
        just read is decided again on a fresh read, as upstream's GuaranteedUpdate does."""
        current = read if read is not None else self.latest(resource, namespace, name)
        fresh = False
        for _attempt in range(_CAS_ATTEMPTS):
            if current is None:
                current, fresh = await self.get(resource, namespace, name), True
            expected = int(current["metadata"]["resourceVersion"])
            try:
                updated = await change(jsoncodec.copy(current))
            except status.ApiError:
                if fresh:
                    raise
                current = None  # a copy that may be stale refused it: decide again on a read
                continue
            if updated is None:
                if fresh:
                    return current
                current = None
                continue
            try:
                return await self.replace(resource, namespace, updated, expected)
            except status.ApiError as exc:
                if exc.reason != "Conflict":
                    raise
            current, fresh = self.latest(resource, namespace, name), False
        raise status.conflict(resource.plural, resource.group, name, "too many concurrent writers; try again")

    async def remove(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        """Delete the object if still at ``obj``'s revision; its last state, with the deletion's RV."""
        name = obj["metadata"]["name"]
        expected = int(obj["metadata"]["resourceVersion"])
        key, claims = resource.key(namespace, name), _claims(resource, obj)
        if claims:  # released with the object, in one transaction
            revision = await _guard(self.etcd.write_all(unchanged={key: expected}, deletes=[key, *claims]))
        else:
            revision = await _guard(self.etcd.delete(key, expected))
        if revision is None:
            if await _guard(self.etcd.get(resource.key(namespace, name))) is None:
                raise status.not_found(resource.plural, resource.group, name)
            raise status.conflict(resource.plural, resource.group, name)
        self._forget(key, revision)
        obj["metadata"]["resourceVersion"] = str(revision)
        return obj

    async def remove_listing(
        self, resource: Resource, namespace: str, obj: Obj, listed: Resource
    ) -> tuple[Obj, Objs]:
        """:meth:`remove`, also listing ``listed`` in ``namespace`` as it is right after the deletion,
        in the same etcd transaction (the quotas a removed object's usage goes back to)."""
        name = obj["metadata"]["name"]
        if _claims(resource, obj):
            removed = await self.remove(resource, namespace, obj)
            return removed, (await self.list(listed, namespace, _everything))[0]
        key, expected = resource.key(namespace, name), int(obj["metadata"]["resourceVersion"])
        revision, kvs = await _guard(self.etcd.delete_listing(key, expected, listed.prefix(namespace)))
        if revision is None:
            if await _guard(self.etcd.get(key)) is None:
                raise status.not_found(resource.plural, resource.group, name)
            raise status.conflict(resource.plural, resource.group, name)
        self._forget(key, revision)
        obj["metadata"]["resourceVersion"] = str(revision)
        return obj, [self._decode(listed, kv) for kv in kvs]

    async def open_watch(
        self,
        resource: Resource,
        namespace: str,
        since: str,
        predicate: Predicate,
        **options: Unpack[WatchOptions],
    ) -> AsyncIterator[WatchEvent]:
        """Check ``since`` (400 if malformed, 410 if compacted) and return the event stream.

        Checking before streaming lets those refusals be plain HTTP answers; later failures
        (compaction while watching, etcd lost) arrive as an ERROR event, as upstream.
        """
        return _flattened(await self.open_watch_chunks(resource, namespace, since, predicate, **options))

    async def open_watch_chunks(
        self,
        resource: Resource,
        namespace: str,
        since: str,
        predicate: Predicate,
        **options: Unpack[WatchOptions],
    ) -> AsyncIterator[Chunk]:
        """:meth:`open_watch`'s events in the lists that came together (the initial list's
        replay, then one list per take of the shared feed; never empty): a client's watch writes
        each in one go, with no task or queue of its own between the feed and its connection."""
        replay: Sequence[Obj] = ()
        if since in ("", "0"):
            replay, revision = await self.list(resource, namespace, predicate)
        else:
            try:
                revision = int(since)
            except ValueError as exc:
                raise status.bad_request(f"invalid resource version: {since!r}") from exc
            if revision < 0:
                raise status.bad_request(f"invalid resource version: {since!r}")
            current = await _guard(self.etcd.revision())
            if revision < current:
                await _guard(self.etcd.range(resource.prefix(namespace), limit=1, revision=revision + 1))
        return self._chunks(
            resource,
            namespace,
            revision,
            replay,
            predicate,
            report_progress=options.get("progress", False),
            every=options.get("every", 0.0),
        )

    async def _chunks(
        self,
        resource: Resource,
        namespace: str,
        revision: int,
        replay: Sequence[Obj],
        predicate: Predicate,
        *,
        report_progress: bool,
        every: float,
    ) -> AsyncIterator[Chunk]:
        if replay:
            yield [WatchEvent("ADDED", item) for item in replay]
        try:
            async for window in self._feeds.windows(resource.prefix(namespace), revision + 1, every):
                chunk: Chunk = []
                for rev, events in window:
                    sent = False
                    for event in events:
                        translated = self._translate(resource, event.kind, event.kv, event.prev, predicate)
                        if translated is not None:
                            sent = True
                            chunk.append(translated)
                    # Events: seen up to the newest of them. No events: etcd's progress notification
                    # (every change up to the header's revision was sent; rev is 0 on the answer that
                    # creates the watch, which promises nothing).
                    seen = max(e.kv.mod_revision for e in events) if events else rev
                    if report_progress and not sent and seen > revision:
                        chunk.append(progress(seen))
                if chunk:
                    yield chunk
        except EtcdCompactedError as exc:
            raise status.gone(f"too old resource version: {revision} ({exc})") from exc
        except EtcdError as exc:
            raise status.unavailable(f"storage is unavailable: {exc}") from exc

    def _watched(self, resource: Resource, kv: KeyValue, revision: int | None = None) -> Obj:
        """:meth:`_decode` for watch events, decoded once for every watch of this server.

        Each watch (every node agent watches the pods bound to it, with a field selector) sees
        every change under its prefix; without this, N watchers decoded each change N times. The
        object is shared: the watch path only reads it (selectors, shaping, serialising).
        """
        memo = (kv.key, kv.mod_revision, revision)
        return _remembered(self._seen, memo, lambda: self._decode(resource, kv, revision))

    def _translate(
        self, resource: Resource, kind: str, kv: KeyValue, prev: KeyValue | None, predicate: Predicate
    ) -> WatchEvent | None:
        """An etcd event as the watch event a client filtering with ``predicate`` must see.

        Worked out once for all the watches with the same predicate (selectors are compiled once
        per distinct text, :func:`nestlab.api.selectors.compile_selector`): a hundred watchers of
        one kind with one selector cost one match per change, not a hundred. (key, mod_revision)
        names one change, its previous value included.
        """
        memo = (predicate, kind, kv.key, kv.mod_revision)
        return _remembered(
            self._translated, memo, lambda: self._translate_once(resource, kind, kv, prev, predicate)
        )

    def _translate_once(
        self, resource: Resource, kind: str, kv: KeyValue, prev: KeyValue | None, predicate: Predicate
    ) -> WatchEvent | None:
        old = self._watched(resource, prev, kv.mod_revision) if prev is not None else None
        if kind == "DELETE":
            return WatchEvent("DELETED", old) if old is not None and predicate(old) else None
        new = self._watched(resource, kv)
        was, now_matches = old is not None and predicate(old), predicate(new)
        if now_matches and not was:
            return WatchEvent("ADDED", new)
        if now_matches:
            return WatchEvent("MODIFIED", new)
        if was:
            return WatchEvent("DELETED", new)
        return None


K = TypeVar("K")
V = TypeVar("V")


def _remembered(memo: OrderedDict[K, V], key: K, work: Callable[[], V]) -> V:
    """``memo[key]``, from ``work()`` the first time; the oldest of more than _WATCH_MEMO go."""
    if key in memo:
        return memo[key]
    found = memo[key] = work()
    if len(memo) > _WATCH_MEMO:
        memo.popitem(last=False)
    return found


async def _flattened(chunks: AsyncIterator[Chunk]) -> AsyncIterator[WatchEvent]:
    """One event at a time from :meth:`Store.open_watch_chunks`'s lists."""
    try:
        async for chunk in chunks:
            for event in chunk:
                yield event
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _everything(_obj: Obj) -> bool:
    return True


def _encode_continue(revision: int, start: str) -> str:
    raw = json.dumps({"rv": revision, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        revision, start = int(decoded["rv"]), str(decoded["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise status.bad_request(f"continue key is not valid: {token!r}") from exc
    if revision <= 0 or not start.startswith(prefix):
        raise status.bad_request("continue key is not valid: it belongs to another list")
    return revision, start


class DryRunStore(Store):
    """A Store whose writes check everything a real write would (existence, revision) and return
    the would-be result, but never reach etcd: ``?dryRun=All``."""

    dry_run = True

    async def create(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        if await _guard(self.etcd.get(resource.key(namespace, meta.get("name", "")))) is not None:
            raise status.already_exists(resource.plural, resource.group, meta["name"])
        await self._check_claims(resource, meta.get("name", ""), _claims(resource, obj))
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta.pop("resourceVersion", None)
        if resource.namespaced:
            meta["namespace"] = namespace
        return obj

    async def _check(self, resource: Resource, namespace: str, name: str, expected: int) -> None:
        current = await _guard(self.etcd.get(resource.key(namespace, name)))
        if current is None:
            raise status.not_found(resource.plural, resource.group, name)
        if current.mod_revision != expected:
            raise status.conflict(resource.plural, resource.group, name)

    async def replace(
        self, resource: Resource, namespace: str, obj: Obj, expected: int, old: Obj | None = None
    ) -> Obj:
        await self._check(resource, namespace, obj["metadata"]["name"], expected)
        before = _claims(resource, old)
        after = _claims(resource, obj) if old is not None else {}
        added = {k: c for k, c in after.items() if k not in before}
        await self._check_claims(resource, obj["metadata"]["name"], added)
        obj["metadata"]["resourceVersion"] = str(expected)
        return obj

    async def remove(self, resource: Resource, namespace: str, obj: Obj) -> Obj:
        await self._check(
            resource, namespace, obj["metadata"]["name"], int(obj["metadata"]["resourceVersion"])
        )
        return obj

    async def remove_listing(
        self, resource: Resource, namespace: str, obj: Obj, listed: Resource
    ) -> tuple[Obj, Objs]:
        removed = await self.remove(resource, namespace, obj)
        return removed, (await self.list(listed, namespace, _everything))[0]
