"""etcd's gRPC messages as the client declares them: the bytes etcd expects, and the answers it sends."""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from nestlab.api import etcdwire
from nestlab.api.etcd import (
    EtcdClient,
    EtcdCompactedError,
    EtcdError,
    EtcdUnavailableError,
    _classify,
    _watch_batch,
)


def test_a_create_compare_sends_its_zero_revision() -> None:
    """``create_revision`` is in a oneof: a zero must still travel (field 5, varint 0), as Go sends it."""
    compare = etcdwire.new("Compare", target=etcdwire.TARGET_CREATE, key=b"/a", create_revision=0)
    # field 2 (target) = 1, field 3 (key) = "/a", field 5 (create_revision) = 0
    assert etcdwire.encode(compare) == bytes.fromhex("1001" + "1a022f61" + "2800")


def test_a_range_request_has_etcds_field_numbers() -> None:
    request = etcdwire.new(
        "RangeRequest", key=b"/r/", range_end=b"/r0", limit=500, revision=7, serializable=True
    )
    # key=1, range_end=2, limit=3, revision=4, serializable=7
    assert etcdwire.encode(request) == bytes.fromhex("0a032f722f" + "12032f7230" + "18f403" + "2007" + "3801")


def test_a_transaction_nests_its_operations() -> None:
    put = etcdwire.new("RequestOp", request_put=etcdwire.new("PutRequest", key=b"k", value=b"v"))
    txn = etcdwire.new("TxnRequest", success=[put])
    # success=2 { request_put=2 { key=1 "k", value=2 "v" } }
    assert etcdwire.encode(txn) == bytes.fromhex("1208" + "1206" + "0a016b" + "120176")


def test_an_answer_with_fields_the_client_does_not_declare_still_parses() -> None:
    """etcd's StatusResponse carries more fields (dbSize=3, raftIndex=5, ...) than declared."""
    wire = bytes.fromhex("0a0310d209" + "1206332e342e3233" + "1880a001" + "20d209" + "2815" + "3004")
    answer = etcdwire.decoder("StatusResponse")(wire)
    assert (answer.header.member_id, answer.version, answer.leader, answer.raftTerm) == (
        1234,
        "3.4.23",
        1234,
        4,
    )


def _answer(**fields: object) -> object:
    return etcdwire.new("WatchResponse", header=etcdwire.new("ResponseHeader", revision=42), **fields)


def test_watch_events_keep_their_kind_and_previous_value() -> None:
    kv = etcdwire.new("KeyValue", key=b"/p/a", value=b"2", create_revision=3, mod_revision=42)
    before = etcdwire.new("KeyValue", key=b"/p/a", value=b"1", create_revision=3, mod_revision=40)
    put = etcdwire.new("Event", type=etcdwire.EVENT_PUT, kv=kv, prev_kv=before)
    gone = etcdwire.new(
        "Event", type=etcdwire.EVENT_DELETE, kv=etcdwire.new("KeyValue", key=b"/p/b", mod_revision=42)
    )
    revision, events = _watch_batch(_answer(events=[put, gone]))
    assert revision == 42
    assert [(e.kind, e.kv.key, e.kv.value, e.prev.value if e.prev else None) for e in events] == [
        ("PUT", "/p/a", b"2", b"1"),
        ("DELETE", "/p/b", b"", None),
    ]


def test_a_compacted_watch_says_from_where_and_a_cancelled_one_why() -> None:
    with pytest.raises(EtcdCompactedError) as compacted:
        _watch_batch(_answer(canceled=True, compact_revision=30))
    assert compacted.value.compact_revision == 30
    with pytest.raises(EtcdUnavailableError, match="permission denied"):
        _watch_batch(_answer(canceled=True, cancel_reason="permission denied"))


def _error(code: grpc.StatusCode, details: str) -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), details=details)


@pytest.mark.parametrize(
    ("code", "details", "etcds", "sent"),
    [
        (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed", True, None),
        (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted", True, None),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests", True, None),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: Connection refused",
            False,
            False,
        ),
        (grpc.StatusCode.UNAVAILABLE, "Socket closed", False, True),
        (grpc.StatusCode.UNAVAILABLE, "recvmsg:Connection reset by peer", False, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", False, True),
    ],
)
def test_etcds_refusals_are_told_from_transport_failures(
    code: grpc.StatusCode, details: str, etcds: bool, sent: bool | None
) -> None:
    """Only a failure to connect proves a write never reached etcd; anything else after sending
    leaves it in doubt (module docstring of nestlab.api.etcd)."""
    message, failure = _classify(_error(code, details))
    assert (failure is None) == etcds
    if failure is None:
        assert message == details
    else:
        assert failure.sent == sent
        assert failure.timed_out == (code is grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.mark.parametrize(
    "endpoint",
    ["127.0.0.1:2379", "https://cp-1", "https://cp-1:port", "unix:///run/etcd.sock", "https://cp-1:2379/v3"],
)
def test_an_endpoint_that_is_not_http_host_port_is_refused_by_name(endpoint: str) -> None:
    with pytest.raises(EtcdError, match="is not http\\(s\\)://host:port") as refused:
        EtcdClient(["https://cp-2:2379", endpoint])
    assert repr(endpoint) in str(refused.value)
