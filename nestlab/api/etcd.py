"""The one module that talks to etcd: its v3 gRPC-JSON gateway over HTTP(S), with endpoint failover.

Kubernetes keeps every object in etcd and borrows etcd's revision as ``resourceVersion``; so do we.
Going through the JSON gateway (instead of gRPC) keeps the dependency list to aiohttp. Keys and
values travel base64-encoded and int64 fields travel as strings; this module hides both.

Failover rule: a request that could not be *sent* (connection refused, TLS failure, DNS) moves on
to the next endpoint; a read is also retried elsewhere after a timeout and while etcd elects a
leader ("leader changed", "no leader"), within one deadline; a write that was sent and not answered
is reported as "may or may not have been stored", never retried, because retrying it elsewhere
could apply it twice.

Quorum rule: a background poll of every member's status (:mod:`nestlab.api.etcdquorum`) tells an
election (a majority answers: wait for the leader) from a lost quorum (refuse at once, with a
message naming it). A request waiting when the quorum goes is answered then, not after etcd's
own request timeout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from nestlab.api import etcdquorum
from nestlab.api.etcdquorum import ClusterView
from nestlab.errors import NestlabError

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType  # aiohttp's own dependency: the pool's address type

# How long close() waits for the pool's sockets to be closed: a request cancelled just after its TLS
# handshake (a timeout, the poll stopping) leaves a transport shutting TLS down with the member,
# which takes one round trip; one the loop still held when it closed would leak its socket.
_CLOSE_WAIT = 2.0
_REQUEST_TIMEOUT = 5.0  # seconds: etcd answers in milliseconds; 5 s covers a loaded 2-core machine
# One read attempt at one member: longer than an election (1-2 s with the role's 100/1000 ms
# timing) so a read sent as the leader dies is answered by the new one, short enough that a
# member that died under it costs one retry elsewhere, not the whole deadline.
_READ_ATTEMPT_TIMEOUT = 2.0
_RETRY_PAUSE = 0.05  # between attempts while etcd elects: elections take hundreds of ms
# The member-status poll: a member that stops answering counts as gone after two rounds (one late
# status is forgiven, see MemberPoll.observe), so a lost quorum is seen within 2 x (interval +
# timeout) ~ 1.1 s at worst, at once when the members refuse connections; each round is one small
# local request per member (no raft round trip).
_POLL_INTERVAL = 0.2
_POLL_TIMEOUT = 0.35
_READS = ("/v3/kv/range",)
WATCH_MESSAGE_LIMIT = 256 * 2**20
"""The largest watch message read (etcd batches at most 1000 revisions' events into one)."""
# etcd errors after which a request can be sent again: the member refused it before proposing it
# (or, for reads, it changes nothing). "request timed out" after a write was proposed is in doubt.
_RETRY_READ = ("leader changed", "no leader", "proposal dropped", "request timed out", "too many requests")
_RETRY_WRITE = ("no leader", "proposal dropped", "too many requests")


class EtcdError(NestlabError):
    """etcd refused a request or answered something this client does not understand."""


class EtcdUnavailableError(EtcdError):
    """No etcd endpoint answered; the message lists what was tried."""


class EtcdQuorumError(EtcdUnavailableError):
    """A majority of members does not answer: refused before anything was sent (nothing stored)."""


class EtcdInDoubtError(EtcdUnavailableError):
    """A write was sent and not answered: it may or may not have been stored."""


class _QuorumLostError(Exception):
    """Internal: the quorum went while a request waited for its answer."""


class EtcdCompactedError(EtcdError):
    """The requested revision was compacted away; clients must re-list."""

    def __init__(self, message: str, compact_revision: int) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


@dataclass(frozen=True)
class TLSFiles:
    """Client TLS material for etcd (all PEM files)."""

    ca: Path
    """CA bundle that signed the etcd server certificates."""
    cert: Path | None = None
    """Client certificate, when etcd requires client authentication."""
    key: Path | None = None
    """Private key of ``cert``."""


@dataclass(frozen=True)
class KeyValue:
    """One etcd key at one revision."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class RangeResult:
    """The keys a range read returned and the store revision it was read at."""

    kvs: tuple[KeyValue, ...]
    revision: int
    more: bool


@dataclass(frozen=True)
class Reads:
    """What one read-only transaction of several ranges returned, all at one store revision."""

    revision: int
    values: dict[str, KeyValue | None]
    """By key: the key's value, or None when it does not exist."""
    lists: dict[str, tuple[KeyValue, ...]]
    """By prefix: the keys under it, sorted by key."""


@dataclass(frozen=True)
class WatchEvent:
    """A change to one key: ``kind`` is PUT or DELETE; ``prev`` is the value before it, if any."""

    kind: str
    kv: KeyValue
    prev: KeyValue | None


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def prefix_end(prefix: str) -> str:
    """The exclusive end of the key range starting with ``prefix`` (etcd's range_end convention)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw).decode("latin-1")
        raw.pop()
    return "\0"


def _end_b64(prefix: str) -> str:
    return _b64(prefix_end(prefix).encode("latin-1"))


def parse_kv(raw: dict[str, Any]) -> KeyValue:
    """A gateway ``kv`` object as a :class:`KeyValue`."""
    return KeyValue(
        key=base64.b64decode(raw.get("key", "")).decode(),
        value=base64.b64decode(raw.get("value", "")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
    )


def _ssl_context(tls: TLSFiles | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=str(tls.ca))
    if tls.cert is not None:
        context.load_cert_chain(str(tls.cert), None if tls.key is None else str(tls.key))
    return context


class EtcdClient:
    """Async etcd v3 client over the JSON gateway; create one per event loop and ``close()`` it."""

    def __init__(
        self,
        endpoints: Sequence[str],
        tls: TLSFiles | None = None,
        timeout: float = _REQUEST_TIMEOUT,
        *,
        poll_interval: float = _POLL_INTERVAL,
        poll_timeout: float = _POLL_TIMEOUT,
    ) -> None:
        if not endpoints:
            raise EtcdError("no etcd endpoints given (pass --etcd-servers=https://host:2379,...)")
        self.endpoints = tuple(endpoint.rstrip("/") for endpoint in endpoints)
        self._current = 0
        self._timeout = timeout
        self._ssl = _ssl_context(tls)
        self._session: aiohttp.ClientSession | None = None
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._poll_timeout = poll_timeout
        self._poll = etcdquorum.MemberPoll(
            self.endpoints, self._member_status, poll_interval, membership=self._cluster_size
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl or True, socket_factory=self._open_socket)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _open_socket(self, addr_info: AddrInfoType) -> socket.socket:
        """Every socket of the pool is made here, so close() can wait until each one is closed."""
        family, kind, protocol, _, _ = addr_info
        sock = socket.socket(family=family, type=kind, proto=protocol)
        self._sockets.add(sock)
        return sock

    async def close(self) -> None:
        """Stop the member poll and close the connection pool."""
        await self._poll.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        # Aborted connections close on the next turn of the event loop; one whose request was
        # cancelled after its TLS handshake first says goodbye to the member (_CLOSE_WAIT).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CLOSE_WAIT
        await asyncio.sleep(0)
        while any(sock.fileno() != -1 for sock in self._sockets) and loop.time() < deadline:
            await asyncio.sleep(0.01)

    # --- the member-status view (module docstring: quorum rule) ------------------------------------

    async def cluster_view(self) -> ClusterView:
        """The latest poll of every member's status (one round now when none ran yet)."""
        return await self._poll.current()

    async def _member_status(self, endpoint: str) -> etcdquorum.MemberStatus:
        try:
            async with self._http().post(
                endpoint + "/v3/maintenance/status",
                json={},
                timeout=aiohttp.ClientTimeout(total=self._poll_timeout),
            ) as response:
                payload: dict[str, Any] = await response.json(content_type=None)
        except TimeoutError:
            return etcdquorum.unanswered(endpoint, etcdquorum.NO_ANSWER)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return etcdquorum.unanswered(endpoint, type(exc).__name__)
        if "error" in payload or "code" in payload:
            return etcdquorum.unanswered(endpoint, str(payload.get("message") or payload.get("error")))
        return etcdquorum.parse_status(endpoint, payload)

    async def _cluster_size(self, endpoint: str) -> int:
        """Voting members in the member list of the member at ``endpoint`` (answered from its local
        state, also without quorum); 0 when it does not answer."""
        try:
            async with self._http().post(
                endpoint + "/v3/cluster/member/list",
                json={},
                timeout=aiohttp.ClientTimeout(total=self._poll_timeout),
            ) as response:
                payload: dict[str, Any] = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return 0
        members = payload.get("members") if isinstance(payload, dict) else None
        if not isinstance(members, list):
            return 0
        return sum(1 for m in members if isinstance(m, dict) and not m.get("isLearner"))

    def _refusal(self, write: bool) -> str | None:
        view = self._poll.view
        return None if view is None else etcdquorum.quorum_problem(view, write=write)

    def _order(self) -> list[int]:
        """Endpoint indexes to try: the current one first, members the view saw answer before others."""
        order = [(self._current + i) % len(self.endpoints) for i in range(len(self.endpoints))]
        if self._poll.view is None:
            return order
        answered = {m.endpoint for m in self._poll.view.members if m.answered}
        return sorted(order, key=lambda i: self.endpoints[i] not in answered)

    # --- requests -------------------------------------------------------------------------------

    async def _send(self, url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One POST; raises :class:`_QuorumLostError` when the view loses the quorum before the answer."""

        async def post() -> dict[str, Any]:
            async with self._http().post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                payload: dict[str, Any] = await response.json(content_type=None)
                return payload

        request = asyncio.ensure_future(post())
        lost = asyncio.ensure_future(self._poll.lost.wait())
        try:
            await asyncio.wait((request, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not request.done():
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
        if request.cancelled():
            raise _QuorumLostError
        return request.result()

    async def _post(self, path: str, body: dict[str, Any], *, read: bool = False) -> dict[str, Any]:
        """POST to a member, moving on to the next ones as the module docstring says; ``read`` marks
        a transaction that only reads (retried like a range)."""
        self._poll.start()
        write = path not in _READS and not read
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        errors: list[str] = []
        unreachable = 0
        while True:
            refusal = self._refusal(write)
            if refusal is not None:
                raise EtcdQuorumError(refusal)
            index = self._order()[0]
            url = self.endpoints[index] + path
            left = max(0.05, deadline - loop.time())
            try:
                payload = await self._send(url, body, min(left, _READ_ATTEMPT_TIMEOUT) if not write else left)
            except _QuorumLostError:
                refusal = self._refusal(write) or "etcd lost its quorum"
                if write:
                    raise EtcdInDoubtError(
                        etcdquorum.in_doubt(url, "lost its quorum before answering")
                    ) from None
                raise EtcdQuorumError(refusal) from None
            except (aiohttp.ClientConnectionError, OSError, TimeoutError) as exc:
                self._current = (index + 1) % len(self.endpoints)  # the next attempt goes elsewhere
                sent = not isinstance(exc, aiohttp.ClientConnectorError)
                if sent and write:
                    why = (
                        "did not answer in time"
                        if isinstance(exc, TimeoutError)
                        else "dropped the connection"
                    )
                    raise EtcdInDoubtError(etcdquorum.in_doubt(url, f"{why} ({exc!r})")) from exc
                errors.append(f"{self.endpoints[index]}: {exc!r}")
                unreachable += 1
                if unreachable >= 2 * len(self.endpoints) or loop.time() >= deadline:
                    raise EtcdUnavailableError(
                        "no etcd endpoint answered: " + "; ".join(errors[-3:])
                    ) from exc
                continue
            self._current = index
            if "error" not in payload and "code" not in payload:
                return payload
            message = str(payload.get("message") or payload.get("error"))
            if "compacted" in message:
                raise EtcdCompactedError(message, 0)
            if any(word in message for word in (_RETRY_WRITE if write else _RETRY_READ)):
                errors.append(f"{self.endpoints[index]}: {message}")
                if loop.time() + _RETRY_PAUSE < deadline:
                    await asyncio.sleep(_RETRY_PAUSE)  # an election is under way: wait for its leader
                    continue
                raise EtcdUnavailableError(f"etcd has no leader yet after {self._timeout:g} s: {message}")
            if write and "timed out" in message:
                raise EtcdInDoubtError(etcdquorum.in_doubt(url, f"answered {message!r}"))
            raise EtcdError(f"etcd {path} failed: {message}")

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        payload = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = payload.get("kvs", [])
        return parse_kv(kvs[0]) if kvs else None

    async def range(self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0) -> RangeResult:
        """Keys under ``prefix`` from ``start`` on (sorted by key), at ``revision`` (0 = latest)."""
        body: dict[str, Any] = {"key": _b64(start or prefix), "range_end": _end_b64(prefix)}
        if limit:
            body["limit"] = limit
        if revision:
            body["revision"] = revision
        payload = await self._post("/v3/kv/range", body)
        kvs = tuple(parse_kv(raw) for raw in payload.get("kvs", []))
        return RangeResult(kvs, int(payload["header"]["revision"]), bool(payload.get("more", False)))

    async def revision(self) -> int:
        """The current store revision (also a cheap health check)."""
        payload = await self._post("/v3/kv/range", {"key": _b64("\0"), "limit": 1})
        return int(payload["header"]["revision"])

    async def unchanged_since(self, ranges: Mapping[str, int]) -> bool:
        """Whether no key under each prefix was created or modified after its revision: one read-only
        transaction comparing mod revisions over whole ranges; no value travels (deletions are not
        seen, which is what a caller confirming a denial wants: a deletion grants nothing)."""
        compares = [
            {"target": "MOD", "key": _b64(prefix), "range_end": _end_b64(prefix), "result": "LESS",
             "mod_revision": revision + 1}
            for prefix, revision in ranges.items()
        ]  # fmt: skip
        payload = await self._post("/v3/kv/txn", {"compare": compares})
        return bool(payload.get("succeeded", False))

    async def read(self, keys: Sequence[str] = (), prefixes: Sequence[str] = ()) -> Reads:
        """Several keys and ranges in one read-only transaction: one round trip, one revision (a
        linearizable read, like :meth:`range`)."""
        ops = [{"request_range": {"key": _b64(key)}} for key in keys]
        ops += [
            {"request_range": {"key": _b64(prefix), "range_end": _end_b64(prefix)}} for prefix in prefixes
        ]
        payload = await self._post("/v3/kv/txn", {"success": ops}, read=True)
        answers = [_range_answer(raw) for raw in payload.get("responses", [])]
        if len(answers) != len(ops):
            raise EtcdError(f"etcd answered {len(answers)} of the {len(ops)} reads of a transaction")
        values = {key: (found[0] if found else None) for key, found in zip(keys, answers, strict=False)}
        lists = dict(zip(prefixes, answers[len(keys) :], strict=True))
        return Reads(int(payload["header"]["revision"]), values, lists)

    async def _txn(self, compare: dict[str, Any], success: dict[str, Any], key: str) -> tuple[bool, int]:
        payload = await self._post(
            "/v3/kv/txn",
            {"compare": [compare], "success": [success], "failure": [{"request_range": {"key": _b64(key)}}]},
        )
        return bool(payload.get("succeeded", False)), int(payload["header"]["revision"])

    async def create(self, key: str, value: bytes) -> int | None:
        """Store ``key`` only if it does not exist; the new revision, or None when it exists."""
        ok, revision = await self._txn(
            {"target": "CREATE", "key": _b64(key), "create_revision": 0},
            {"request_put": {"key": _b64(key), "value": _b64(value)}},
            key,
        )
        return revision if ok else None

    async def update(self, key: str, value: bytes, mod_revision: int) -> int | None:
        """Replace ``key`` only if it is still at ``mod_revision``; the new revision, or None."""
        ok, revision = await self._txn(
            {"target": "MOD", "key": _b64(key), "mod_revision": mod_revision},
            {"request_put": {"key": _b64(key), "value": _b64(value)}},
            key,
        )
        return revision if ok else None

    async def delete(self, key: str, mod_revision: int) -> int | None:
        """Delete ``key`` only if it is still at ``mod_revision``; the revision, or None."""
        ok, revision = await self._txn(
            {"target": "MOD", "key": _b64(key), "mod_revision": mod_revision},
            {"request_delete_range": {"key": _b64(key)}},
            key,
        )
        return revision if ok else None

    async def delete_listing(
        self, key: str, mod_revision: int, prefix: str
    ) -> tuple[int | None, tuple[KeyValue, ...]]:
        """:meth:`delete`, also reading the keys under ``prefix`` in the same transaction (as they
        are right after the deletion): (the revision or None, those keys; none when not deleted)."""
        payload = await self._post(
            "/v3/kv/txn",
            {
                "compare": [{"target": "MOD", "key": _b64(key), "mod_revision": mod_revision}],
                "success": [
                    {"request_delete_range": {"key": _b64(key)}},
                    {"request_range": {"key": _b64(prefix), "range_end": _end_b64(prefix)}},
                ],
            },
        )
        if not payload.get("succeeded", False):
            return None, ()
        responses = payload.get("responses", [])
        listed = _range_answer(responses[1]) if len(responses) > 1 else ()
        return int(payload["header"]["revision"]), listed

    async def write_all(
        self,
        *,
        absent: Sequence[str] = (),
        unchanged: Mapping[str, int] | None = None,
        puts: Mapping[str, bytes] | None = None,
        deletes: Sequence[str] = (),
    ) -> int | None:
        """Apply ``puts`` and ``deletes`` in one transaction, only if no ``absent`` key exists and every
        ``unchanged`` key is still at its mod revision; the new revision, or None when a compare failed.
        """
        compares: list[dict[str, Any]] = [
            {"target": "CREATE", "key": _b64(key), "create_revision": 0} for key in absent
        ]
        compares += [
            {"target": "MOD", "key": _b64(key), "mod_revision": revision}
            for key, revision in (unchanged or {}).items()
        ]
        success: list[dict[str, Any]] = [
            {"request_put": {"key": _b64(key), "value": _b64(value)}} for key, value in (puts or {}).items()
        ]
        success += [{"request_delete_range": {"key": _b64(key)}} for key in deletes]
        payload = await self._post("/v3/kv/txn", {"compare": compares, "success": success})
        return int(payload["header"]["revision"]) if payload.get("succeeded", False) else None

    async def compact(self, revision: int) -> None:
        """Discard history before ``revision`` (used by tests and by maintenance)."""
        await self._post("/v3/kv/compaction", {"revision": revision, "physical": True})

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[tuple[int, list[WatchEvent]]]:
        """Yield (revision, events) for every change under ``prefix`` from ``start_revision`` on.

        Raises :class:`EtcdCompactedError` when ``start_revision`` is older than the compacted history,
        and :class:`EtcdUnavailableError` when the stream breaks (the caller resumes or reports).
        """
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _end_b64(prefix),
                "start_revision": start_revision,
                "prev_kv": True,
                "progress_notify": True,
            }
        }
        errors: list[str] = []
        start = self._current
        for attempt in range(len(self.endpoints)):
            index = (start + attempt) % len(self.endpoints)
            url = self.endpoints[index] + "/v3/watch"
            try:
                async with self._http().post(
                    url, json=body, timeout=aiohttp.ClientTimeout(total=None)
                ) as resp:
                    self._current = index
                    try:
                        async for line in _lines(resp.content):
                            if line.strip():
                                yield _watch_batch(json.loads(line))
                    finally:
                        # A watch ends early (caller stopped, compaction): abort the connection
                        # rather than start a TLS goodbye that could outlive the event loop.
                        if resp.connection is not None and resp.connection.transport is not None:
                            resp.connection.transport.abort()
                    raise EtcdUnavailableError(f"etcd at {url} closed the watch stream")
            except aiohttp.ClientConnectorError as exc:
                errors.append(f"{self.endpoints[index]}: {exc}")
            except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
                raise EtcdUnavailableError(f"etcd watch at {url} broke: {exc}") from exc
        raise EtcdUnavailableError("no etcd endpoint accepted a watch: " + "; ".join(errors))


def _range_answer(raw: dict[str, Any]) -> tuple[KeyValue, ...]:
    """The keys of one ``response_range`` of a transaction's answer."""
    found = raw.get("response_range")
    if not isinstance(found, dict):
        raise EtcdError(f"etcd answered a transaction's read with {sorted(raw)}")
    return tuple(parse_kv(kv) for kv in found.get("kvs", []))


async def _lines(content: aiohttp.StreamReader, limit: int = WATCH_MESSAGE_LIMIT) -> AsyncIterator[bytes]:
    """The stream's newline-separated messages, however long (up to ``limit`` bytes each).

    aiohttp's own line reader refuses a line over 512 KiB (``LineTooLong``), and a watch that
    catches up from an old revision gets messages of up to 1000 revisions' events with their
    previous values: megabytes. That error used to escape the watch, which then never delivered
    anything again while its Kubernetes watch kept sending bookmarks.
    """
    buffer = bytearray()
    searched = 0  # the buffer holds no newline before this offset
    async for chunk in content.iter_any():
        buffer += chunk
        while (end := buffer.find(b"\n", searched)) >= 0:
            yield bytes(buffer[:end])
            del buffer[: end + 1]
            searched = 0
        searched = len(buffer)
        if len(buffer) > limit:
            raise EtcdUnavailableError(f"etcd sent a watch message over {limit} bytes")
    if buffer:
        yield bytes(buffer)


def _watch_batch(message: dict[str, Any]) -> tuple[int, list[WatchEvent]]:
    """One gateway watch message as (revision, events); raises on cancel/compaction.

    A message without events is a progress notification (the watch has sent every change up to
    the revision; the watch asks for them with ``progress_notify``) or the creation answer, whose
    revision is reported as 0."""
    if "error" in message:
        raise EtcdUnavailableError(f"etcd watch failed: {message['error']}")
    result = message.get("result", {})
    if result.get("created"):
        # The header of the answer that creates a watch is the store's revision, not how far the
        # watch has sent: a watch from an older revision still has those events to send.
        return 0, []
    if result.get("canceled"):
        compacted = int(result.get("compact_revision", 0))
        if compacted:
            raise EtcdCompactedError(f"revision compacted (oldest kept is {compacted})", compacted)
        raise EtcdUnavailableError(f"etcd cancelled the watch: {result.get('cancel_reason', 'no reason')}")
    events = [
        WatchEvent(
            kind=raw.get("type", "PUT"),
            kv=parse_kv(raw["kv"]),
            prev=parse_kv(raw["prev_kv"]) if "prev_kv" in raw else None,
        )
        for raw in result.get("events", [])
    ]
    return int(result.get("header", {}).get("revision", 0)), events
