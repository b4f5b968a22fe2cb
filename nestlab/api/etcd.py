"""The one module that talks to etcd: its v3 gRPC API, with endpoint failover.

Kubernetes keeps every object in etcd and borrows etcd's revision as ``resourceVersion``; so do we.
The client speaks gRPC, as kube-apiserver does (messages in :mod:`nestlab.api.etcdwire`): etcd's
JSON gateway, which it used before, cost etcd twice the CPU per request. One channel per member,
each a single HTTP/2 connection that carries every request and watch to that member.

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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio

from nestlab.api import etcdquorum, etcdwire
from nestlab.api.etcdquorum import ClusterView
from nestlab.errors import NestlabError

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
_READS = (etcdwire.RANGE,)
# etcd errors after which a request can be sent again: the member refused it before proposing it
# (or, for reads, it changes nothing). "request timed out" after a write was proposed is in doubt.
_RETRY_READ = ("leader changed", "no leader", "proposal dropped", "request timed out", "too many requests")
_RETRY_WRITE = ("no leader", "proposal dropped", "too many requests")
# What gRPC says when it never got a connection to send on (nothing reached etcd).
_NOT_SENT = ("failed to connect", "dns resolution failed", "empty address list", "ssl handshake failed")
# The channel to each member. Reconnect quickly once a member is back (gRPC's default backoff grows
# to two minutes, during which the poll would count the member as gone); ping a connection that
# carries a request or watch every 10 s, so a half-open one (its member powered off) fails within
# 15 s (etcd accepts pings every 5 s and more; none on an idle connection); no size limit on what
# etcd sends (a watch catching up gets up to 1000 revisions' events in one message).
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", -1),
)


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


def _key(text: str) -> bytes:
    return text.encode()


def prefix_end(prefix: str) -> str:
    """The exclusive end of the key range starting with ``prefix`` (etcd's range_end convention)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw).decode("latin-1")
        raw.pop()
    return "\0"


def _end(prefix: str) -> bytes:
    return prefix_end(prefix).encode("latin-1")


def parse_kv(raw: Any) -> KeyValue:
    """An etcd ``mvccpb.KeyValue`` message as a :class:`KeyValue`."""
    return KeyValue(
        key=raw.key.decode(),
        value=raw.value,
        create_revision=raw.create_revision,
        mod_revision=raw.mod_revision,
    )


def _credentials(tls: TLSFiles | None) -> grpc.ChannelCredentials:
    """TLS for https endpoints: the lab CA and client certificate, or the system's CAs."""
    if tls is None:
        return grpc.ssl_channel_credentials()
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=None if tls.key is None else tls.key.read_bytes(),
        certificate_chain=None if tls.cert is None else tls.cert.read_bytes(),
    )


def _target(endpoint: str) -> tuple[str, bool]:
    """``https://host:port`` as (gRPC target, TLS or not)."""
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port or parts.path:
        raise EtcdError(f"etcd endpoint {endpoint!r} is not http(s)://host:port (as in --etcd-servers)")
    return parts.netloc, parts.scheme == "https"


def _compare(target: int, key: str, **value: Any) -> Any:
    return etcdwire.new("Compare", target=target, key=_key(key), **value)


def _range_op(key: str, range_end: bytes = b"") -> Any:
    return etcdwire.new(
        "RequestOp", request_range=etcdwire.new("RangeRequest", key=_key(key), range_end=range_end)
    )


def _put_op(key: str, value: bytes) -> Any:
    return etcdwire.new("RequestOp", request_put=etcdwire.new("PutRequest", key=_key(key), value=value))


def _delete_op(key: str) -> Any:
    return etcdwire.new("RequestOp", request_delete_range=etcdwire.new("DeleteRangeRequest", key=_key(key)))


class _FailureError(Exception):
    """Internal: one attempt at one member failed in the transport; ``sent`` says whether the
    request may have reached etcd, ``timed_out`` whether it was its deadline."""

    def __init__(self, detail: str, *, sent: bool, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.sent = sent
        self.timed_out = timed_out


def _classify(error: grpc.aio.AioRpcError) -> tuple[str, _FailureError | None]:
    """etcd's own message (second item None), or the transport failure the error is."""
    code, detail = error.code(), error.details() or ""
    if detail.startswith("etcdserver:") or code not in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    ):
        return detail or code.name, None
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return detail, _FailureError(f"no answer in time ({detail})", sent=True, timed_out=True)
    sent = not any(word in detail.lower() for word in _NOT_SENT)
    return detail, _FailureError(f"{code.name}: {detail}", sent=sent)


class EtcdClient:
    """Async etcd v3 gRPC client; create one per event loop and ``close()`` it."""

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
        self._targets = tuple(_target(endpoint) for endpoint in self.endpoints)
        self._current = 0
        self._timeout = timeout
        self._credentials = _credentials(tls)
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[int, str], Any] = {}
        self._poll_timeout = poll_timeout
        self._poll = etcdquorum.MemberPoll(
            self.endpoints, self._member_status, poll_interval, membership=self._cluster_size
        )

    def _channel(self, index: int) -> grpc.aio.Channel:
        channel = self._channels.get(index)
        if channel is None:
            target, secure = self._targets[index]
            if secure:
                channel = grpc.aio.secure_channel(target, self._credentials, options=_CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
            self._channels[index] = channel
        return channel

    async def close(self) -> None:
        """Stop the member poll and close every channel (their calls end at once)."""
        await self._poll.stop()
        channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        for channel in channels:
            await channel.close()

    def _stub(self, index: int, method: str) -> Any:
        """The callable of ``method`` on member ``index``'s channel (made once, then reused)."""
        stub = self._stubs.get((index, method))
        if stub is None:
            kind = (
                self._channel(index).stream_stream
                if method == etcdwire.WATCH
                else self._channel(index).unary_unary
            )
            stub = kind(
                method,
                request_serializer=etcdwire.encode,
                response_deserializer=etcdwire.decoder(etcdwire.ANSWERS[method]),
            )
            self._stubs[(index, method)] = stub
        return stub

    async def _unary(self, index: int, method: str, request: Any, timeout: float) -> Any:
        """One call to one member; raises :class:`_FailureError` for a transport failure and
        :class:`_RefusedError` (with etcd's message) when etcd refused it."""
        try:
            return await self._stub(index, method)(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            message, failure = _classify(exc)
            if failure is not None:
                raise failure from exc
            raise _RefusedError(message) from exc

    # --- the member-status view (module docstring: quorum rule) ------------------------------------

    async def cluster_view(self) -> ClusterView:
        """The latest poll of every member's status (one round now when none ran yet)."""
        return await self._poll.current()

    async def _member_status(self, endpoint: str) -> etcdquorum.MemberStatus:
        index = self.endpoints.index(endpoint)
        try:
            answer = await self._unary(
                index, etcdwire.STATUS, etcdwire.new("StatusRequest"), self._poll_timeout
            )
        except _FailureError as exc:
            return etcdquorum.unanswered(endpoint, etcdquorum.NO_ANSWER if exc.timed_out else exc.detail)
        except _RefusedError as exc:
            return etcdquorum.unanswered(endpoint, str(exc))
        return etcdquorum.parse_status(endpoint, answer.header.member_id, answer.leader, answer.raftTerm)

    async def _cluster_size(self, endpoint: str) -> int:
        """Voting members in the member list of the member at ``endpoint`` (answered from its local
        state, also without quorum); 0 when it does not answer."""
        index = self.endpoints.index(endpoint)
        try:
            answer = await self._unary(
                index, etcdwire.MEMBER_LIST, etcdwire.new("MemberListRequest"), self._poll_timeout
            )
        except (_FailureError, _RefusedError):
            return 0
        return sum(1 for member in answer.members if not member.isLearner)

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

    async def _send(self, index: int, method: str, request: Any, timeout: float) -> Any:
        """One call; raises :class:`_QuorumLostError` when the view loses the quorum before the answer."""
        call = asyncio.ensure_future(self._unary(index, method, request, timeout))
        lost = asyncio.ensure_future(self._poll.lost.wait())
        try:
            await asyncio.wait((call, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not call.done():
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
        if call.cancelled():
            raise _QuorumLostError
        return call.result()

    async def _call(self, method: str, request: Any, *, read: bool = False) -> Any:
        """Call a member, moving on to the next ones as the module docstring says; ``read`` marks
        a transaction that only reads (retried like a range)."""
        self._poll.start()
        write = method not in _READS and not read
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        errors: list[str] = []
        unreachable = 0
        while True:
            refusal = self._refusal(write)
            if refusal is not None:
                raise EtcdQuorumError(refusal)
            index = self._order()[0]
            endpoint = self.endpoints[index]
            left = max(0.05, deadline - loop.time())
            try:
                return_value = await self._send(
                    index, method, request, min(left, _READ_ATTEMPT_TIMEOUT) if not write else left
                )
            except _QuorumLostError:
                refusal = self._refusal(write) or "etcd lost its quorum"
                if write:
                    raise EtcdInDoubtError(
                        etcdquorum.in_doubt(endpoint, "lost its quorum before answering")
                    ) from None
                raise EtcdQuorumError(refusal) from None
            except _FailureError as exc:
                self._current = (index + 1) % len(self.endpoints)  # the next attempt goes elsewhere
                if exc.sent and write:
                    why = "did not answer in time" if exc.timed_out else "dropped the connection"
                    raise EtcdInDoubtError(etcdquorum.in_doubt(endpoint, f"{why} ({exc.detail})")) from exc
                errors.append(f"{endpoint}: {exc.detail}")
                unreachable += 1
                if unreachable >= 2 * len(self.endpoints) or loop.time() >= deadline:
                    raise EtcdUnavailableError(
                        "no etcd endpoint answered: " + "; ".join(errors[-3:])
                    ) from exc
                continue
            except _RefusedError as exc:
                message = str(exc)
                if "compacted" in message:
                    raise EtcdCompactedError(message, 0) from exc
                if any(word in message for word in (_RETRY_WRITE if write else _RETRY_READ)):
                    errors.append(f"{endpoint}: {message}")
                    if loop.time() + _RETRY_PAUSE < deadline:
                        await asyncio.sleep(_RETRY_PAUSE)  # an election is under way: wait for its leader
                        continue
                    raise EtcdUnavailableError(
                        f"etcd has no leader yet after {self._timeout:g} s: {message}"
                    ) from exc
                if write and "timed out" in message:
                    raise EtcdInDoubtError(etcdquorum.in_doubt(endpoint, f"answered {message!r}")) from exc
                raise EtcdError(f"etcd {method} failed: {message}") from exc
            self._current = index
            return return_value

    async def get(self, key: str) -> KeyValue | None:
        """The current value of ``key``, or None."""
        answer = await self._call(etcdwire.RANGE, etcdwire.new("RangeRequest", key=_key(key)))
        return parse_kv(answer.kvs[0]) if answer.kvs else None

    async def range(self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0) -> RangeResult:
        """Keys under ``prefix`` from ``start`` on (sorted by key), at ``revision`` (0 = latest)."""
        request = etcdwire.new(
            "RangeRequest", key=_key(start or prefix), range_end=_end(prefix), limit=limit, revision=revision
        )
        answer = await self._call(etcdwire.RANGE, request)
        return RangeResult(tuple(parse_kv(kv) for kv in answer.kvs), answer.header.revision, answer.more)

    async def revision(self) -> int:
        """The current store revision (also a cheap health check)."""
        answer = await self._call(etcdwire.RANGE, etcdwire.new("RangeRequest", key=b"\0", limit=1))
        return int(answer.header.revision)

    async def unchanged_since(self, ranges: Mapping[str, int]) -> bool:
        """Whether no key under each prefix was created or modified after its revision: one read-only
        transaction comparing mod revisions over whole ranges; no value travels (deletions are not
        seen, which is what a caller confirming a denial wants: a deletion grants nothing)."""
        compares = [
            _compare(etcdwire.TARGET_MOD, prefix, range_end=_end(prefix), result=etcdwire.COMPARE_LESS,
                     mod_revision=revision + 1)
            for prefix, revision in ranges.items()
        ]  # fmt: skip
        answer = await self._call(etcdwire.TXN, etcdwire.new("TxnRequest", compare=compares), read=True)
        return bool(answer.succeeded)

    async def read(self, keys: Sequence[str] = (), prefixes: Sequence[str] = ()) -> Reads:
        """Several keys and ranges in one read-only transaction: one round trip, one revision (a
        linearizable read, like :meth:`range`)."""
        ops = [_range_op(key) for key in keys] + [_range_op(prefix, _end(prefix)) for prefix in prefixes]
        answer = await self._call(etcdwire.TXN, etcdwire.new("TxnRequest", success=ops), read=True)
        answers = [_range_answer(raw) for raw in answer.responses]
        if len(answers) != len(ops):
            raise EtcdError(f"etcd answered {len(answers)} of the {len(ops)} reads of a transaction")
        values = {key: (found[0] if found else None) for key, found in zip(keys, answers, strict=False)}
        lists = dict(zip(prefixes, answers[len(keys) :], strict=True))
        return Reads(int(answer.header.revision), values, lists)

    async def _txn(self, compare: Any, success: Any, key: str) -> tuple[bool, int]:
        request = etcdwire.new("TxnRequest", compare=[compare], success=[success], failure=[_range_op(key)])
        answer = await self._call(etcdwire.TXN, request)
        return bool(answer.succeeded), int(answer.header.revision)

    async def create(self, key: str, value: bytes) -> int | None:
        """Store ``key`` only if it does not exist; the new revision, or None when it exists."""
        ok, revision = await self._txn(
            _compare(etcdwire.TARGET_CREATE, key, create_revision=0), _put_op(key, value), key
        )
        return revision if ok else None

    async def update(self, key: str, value: bytes, mod_revision: int) -> int | None:
        """Replace ``key`` only if it is still at ``mod_revision``; the new revision, or None."""
        ok, revision = await self._txn(
            _compare(etcdwire.TARGET_MOD, key, mod_revision=mod_revision), _put_op(key, value), key
        )
        return revision if ok else None

    async def delete(self, key: str, mod_revision: int) -> int | None:
        """Delete ``key`` only if it is still at ``mod_revision``; the revision, or None."""
        ok, revision = await self._txn(
            _compare(etcdwire.TARGET_MOD, key, mod_revision=mod_revision), _delete_op(key), key
        )
        return revision if ok else None

    async def delete_listing(
        self, key: str, mod_revision: int, prefix: str
    ) -> tuple[int | None, tuple[KeyValue, ...]]:
        """:meth:`delete`, also reading the keys under ``prefix`` in the same transaction (as they
        are right after the deletion): (the revision or None, those keys; none when not deleted)."""
        request = etcdwire.new(
            "TxnRequest",
            compare=[_compare(etcdwire.TARGET_MOD, key, mod_revision=mod_revision)],
            success=[_delete_op(key), _range_op(prefix, _end(prefix))],
        )
        answer = await self._call(etcdwire.TXN, request)
        if not answer.succeeded:
            return None, ()
        listed = _range_answer(answer.responses[1]) if len(answer.responses) > 1 else ()
        return int(answer.header.revision), listed

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
        compares = [_compare(etcdwire.TARGET_CREATE, key, create_revision=0) for key in absent]
        compares += [
            _compare(etcdwire.TARGET_MOD, key, mod_revision=revision)
            for key, revision in (unchanged or {}).items()
        ]
        success = [_put_op(key, value) for key, value in (puts or {}).items()]
        success += [_delete_op(key) for key in deletes]
        answer = await self._call(etcdwire.TXN, etcdwire.new("TxnRequest", compare=compares, success=success))
        return int(answer.header.revision) if answer.succeeded else None

    async def compact(self, revision: int) -> None:
        """Discard history before ``revision`` (used by tests and by maintenance)."""
        await self._call(
            etcdwire.COMPACT, etcdwire.new("CompactionRequest", revision=revision, physical=True)
        )

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[tuple[int, list[WatchEvent]]]:
        """Yield (revision, events) for every change under ``prefix`` from ``start_revision`` on.

        Raises :class:`EtcdCompactedError` when ``start_revision`` is older than the compacted history,
        and :class:`EtcdUnavailableError` when the stream breaks (the caller resumes or reports).
        A member that cannot be reached before the watch starts is skipped for the next one.
        """
        create = etcdwire.new(
            "WatchCreateRequest",
            key=_key(prefix),
            range_end=_end(prefix),
            start_revision=start_revision,
            prev_kv=True,
            progress_notify=True,
        )
        request = etcdwire.new("WatchRequest", create_request=create)
        errors: list[str] = []
        start = self._current
        for attempt in range(len(self.endpoints)):
            index = (start + attempt) % len(self.endpoints)
            endpoint = self.endpoints[index]
            call = self._stub(index, etcdwire.WATCH)()
            answered = False
            try:
                await call.write(request)
                while True:
                    answer = await call.read()
                    if answer is grpc.aio.EOF:
                        raise EtcdUnavailableError(f"etcd at {endpoint} closed the watch stream")
                    if not answered:
                        answered, self._current = True, index
                    yield _watch_batch(answer)
            except grpc.aio.AioRpcError as exc:
                message, failure = _classify(exc)
                if failure is not None and not failure.sent and not answered:
                    errors.append(f"{endpoint}: {failure.detail}")
                    continue
                raise EtcdUnavailableError(f"etcd watch at {endpoint} broke: {message}") from exc
            except asyncio.InvalidStateError as exc:  # the call ended before the request was written
                errors.append(f"{endpoint}: {exc}")
                continue
            finally:
                call.cancel()
        raise EtcdUnavailableError("no etcd endpoint accepted a watch: " + "; ".join(errors))


class _RefusedError(Exception):
    """Internal: etcd answered the call with an error; the message is etcd's."""


def _range_answer(raw: Any) -> tuple[KeyValue, ...]:
    """The keys of one ``response_range`` of a transaction's answer."""
    if raw.WhichOneof("response") != "response_range":
        raise EtcdError(f"etcd answered a transaction's read with {raw.WhichOneof('response')}")
    return tuple(parse_kv(kv) for kv in raw.response_range.kvs)


def _watch_batch(message: Any) -> tuple[int, list[WatchEvent]]:
    """One ``WatchResponse`` as (revision, events); raises on cancel/compaction.

    A message without events is a progress notification (the watch has sent every change up to
    the revision; the watch asks for them with ``progress_notify``) or the creation answer, whose
    revision is reported as 0."""
    if message.created:
        # The header of the answer that creates a watch is the store's revision, not how far the
        # watch has sent: a watch from an older revision still has those events to send.
        return 0, []
    if message.canceled:
        if message.compact_revision:
            raise EtcdCompactedError(
                f"revision compacted (oldest kept is {message.compact_revision})", message.compact_revision
            )
        raise EtcdUnavailableError(f"etcd cancelled the watch: {message.cancel_reason or 'no reason'}")
    events = [
        WatchEvent(
            kind="DELETE" if raw.type == etcdwire.EVENT_DELETE else "PUT",
            kv=parse_kv(raw.kv),
            prev=parse_kv(raw.prev_kv) if raw.HasField("prev_kv") else None,
        )
        for raw in message.events
    ]
    return int(message.header.revision), events
