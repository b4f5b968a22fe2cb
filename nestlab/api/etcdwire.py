"""etcd's v3 gRPC messages and methods, declared here so the etcd client needs no generated code.

The API server speaks gRPC to etcd, as kube-apiserver does: etcd's JSON gateway costs etcd twice
the CPU per request (it decodes the JSON and calls its own gRPC server over TLS), and etcd is the
largest CPU consumer of the lab's control plane (docs/control-plane.md). Only the messages the
client sends or reads are declared, with the field numbers of etcd's ``api/etcdserverpb/rpc.proto``
and ``api/mvccpb/kv.proto``; protobuf skips unknown fields of an answer, so leaving out the rest
loses nothing the client uses. Enums travel as their numbers (``COMPARE_LESS``, ``TARGET_*``,
``EVENT_*``). The descriptors are built once, at import, into protobuf's own (C) message classes.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS: Final = {
    "bytes": _F.TYPE_BYTES,
    "string": _F.TYPE_STRING,
    "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32,  # etcd's enums: the same varint on the wire
    "bool": _F.TYPE_BOOL,
}
_PACKAGE = "nestlab.etcdwire"

# message -> fields: (name, number, type, repeated, oneof group or "")
_Field = tuple[str, int, str, bool, str]
_MESSAGES: Final[dict[str, list[_Field]]] = {
    "ResponseHeader": [
        ("cluster_id", 1, "uint64", False, ""),
        ("member_id", 2, "uint64", False, ""),
        ("revision", 3, "int64", False, ""),
        ("raft_term", 4, "uint64", False, ""),
    ],
    "KeyValue": [  # mvccpb.KeyValue
        ("key", 1, "bytes", False, ""),
        ("create_revision", 2, "int64", False, ""),
        ("mod_revision", 3, "int64", False, ""),
        ("version", 4, "int64", False, ""),
        ("value", 5, "bytes", False, ""),
        ("lease", 6, "int64", False, ""),
    ],
    "Event": [  # mvccpb.Event
        ("type", 1, "int32", False, ""),
        ("kv", 2, "KeyValue", False, ""),
        ("prev_kv", 3, "KeyValue", False, ""),
    ],
    "RangeRequest": [
        ("key", 1, "bytes", False, ""),
        ("range_end", 2, "bytes", False, ""),
        ("limit", 3, "int64", False, ""),
        ("revision", 4, "int64", False, ""),
        ("serializable", 7, "bool", False, ""),
    ],
    "RangeResponse": [
        ("header", 1, "ResponseHeader", False, ""),
        ("kvs", 2, "KeyValue", True, ""),
        ("more", 3, "bool", False, ""),
        ("count", 4, "int64", False, ""),
    ],
    "PutRequest": [
        ("key", 1, "bytes", False, ""),
        ("value", 2, "bytes", False, ""),
    ],
    "PutResponse": [("header", 1, "ResponseHeader", False, "")],
    "DeleteRangeRequest": [
        ("key", 1, "bytes", False, ""),
        ("range_end", 2, "bytes", False, ""),
    ],
    "DeleteRangeResponse": [
        ("header", 1, "ResponseHeader", False, ""),
        ("deleted", 2, "int64", False, ""),
    ],
    "RequestOp": [
        ("request_range", 1, "RangeRequest", False, "request"),
        ("request_put", 2, "PutRequest", False, "request"),
        ("request_delete_range", 3, "DeleteRangeRequest", False, "request"),
    ],
    "ResponseOp": [
        ("response_range", 1, "RangeResponse", False, "response"),
        ("response_put", 2, "PutResponse", False, "response"),
        ("response_delete_range", 3, "DeleteRangeResponse", False, "response"),
    ],
    "Compare": [
        ("result", 1, "int32", False, ""),
        ("target", 2, "int32", False, ""),
        ("key", 3, "bytes", False, ""),
        ("version", 4, "int64", False, "target_union"),
        ("create_revision", 5, "int64", False, "target_union"),
        ("mod_revision", 6, "int64", False, "target_union"),
        ("value", 7, "bytes", False, "target_union"),
        ("range_end", 64, "bytes", False, ""),
    ],
    "TxnRequest": [
        ("compare", 1, "Compare", True, ""),
        ("success", 2, "RequestOp", True, ""),
        ("failure", 3, "RequestOp", True, ""),
    ],
    "TxnResponse": [
        ("header", 1, "ResponseHeader", False, ""),
        ("succeeded", 2, "bool", False, ""),
        ("responses", 3, "ResponseOp", True, ""),
    ],
    "CompactionRequest": [
        ("revision", 1, "int64", False, ""),
        ("physical", 2, "bool", False, ""),
    ],
    "CompactionResponse": [("header", 1, "ResponseHeader", False, "")],
    "WatchCreateRequest": [
        ("key", 1, "bytes", False, ""),
        ("range_end", 2, "bytes", False, ""),
        ("start_revision", 3, "int64", False, ""),
        ("progress_notify", 4, "bool", False, ""),
        ("prev_kv", 6, "bool", False, ""),
    ],
    "WatchRequest": [("create_request", 1, "WatchCreateRequest", False, "request_union")],
    "WatchResponse": [
        ("header", 1, "ResponseHeader", False, ""),
        ("watch_id", 2, "int64", False, ""),
        ("created", 3, "bool", False, ""),
        ("canceled", 4, "bool", False, ""),
        ("compact_revision", 5, "int64", False, ""),
        ("cancel_reason", 6, "string", False, ""),
        ("events", 11, "Event", True, ""),
    ],
    "StatusRequest": [],
    "StatusResponse": [
        ("header", 1, "ResponseHeader", False, ""),
        ("version", 2, "string", False, ""),
        ("leader", 4, "uint64", False, ""),
        ("raftTerm", 6, "uint64", False, ""),
        ("isLearner", 10, "bool", False, ""),
    ],
    "MemberListRequest": [],
    "Member": [
        ("ID", 1, "uint64", False, ""),
        ("name", 2, "string", False, ""),
        ("isLearner", 5, "bool", False, ""),
    ],
    "MemberListResponse": [
        ("header", 1, "ResponseHeader", False, ""),
        ("members", 2, "Member", True, ""),
    ],
}

COMPARE_LESS = 2  # Compare.CompareResult (EQUAL 0, GREATER 1, LESS 2)
TARGET_CREATE, TARGET_MOD = 1, 2  # Compare.CompareTarget (VERSION 0, CREATE 1, MOD 2)
EVENT_PUT, EVENT_DELETE = 0, 1  # mvccpb.Event.EventType

RANGE, TXN, COMPACT = "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Txn", "/etcdserverpb.KV/Compact"
WATCH = "/etcdserverpb.Watch/Watch"  # a stream both ways; the others are one request, one answer
STATUS, MEMBER_LIST = "/etcdserverpb.Maintenance/Status", "/etcdserverpb.Cluster/MemberList"
ANSWERS: Final[dict[str, str]] = {
    RANGE: "RangeResponse",
    TXN: "TxnResponse",
    COMPACT: "CompactionResponse",
    WATCH: "WatchResponse",
    STATUS: "StatusResponse",
    MEMBER_LIST: "MemberListResponse",
}
"""The message each gRPC method answers with."""


def _file() -> descriptor_pb2.FileDescriptorProto:
    """The declarations above as one proto3 file descriptor."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="nestlab/etcdwire.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        groups: list[str] = []
        for field, number, kind, repeated, group in fields:
            entry = message.field.add(
                name=field,
                number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if kind in _SCALARS:
                entry.type = _SCALARS[kind]
            else:
                entry.type = _F.TYPE_MESSAGE
                entry.type_name = f".{_PACKAGE}.{kind}"
            if group:
                if group not in groups:
                    groups.append(group)
                    message.oneof_decl.add(name=group)
                entry.oneof_index = groups.index(group)
    return proto


def _classes() -> dict[str, type[Message]]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in _MESSAGES
    }


CLASSES: Final = _classes()


def new(name: str, **fields: Any) -> Any:
    """A message of the class ``name`` with ``fields`` set (nested messages as dicts or messages)."""
    return CLASSES[name](**fields)


def encode(message: Message) -> bytes:
    """The message's wire bytes (deterministic: the same message always gives the same bytes)."""
    return message.SerializeToString(deterministic=True)


def decoder(name: str) -> Any:
    """A function that parses wire bytes into a message of the class ``name``."""
    return CLASSES[name].FromString
