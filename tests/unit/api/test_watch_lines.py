"""A watch line is encoded once for every watch sent the same stored object, never reused for another."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from nestlab.api import jsoncodec, reads, status
from nestlab.api.store import WatchEvent


def _pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "7"}, "spec": {"nodeName": "esx-01"}}


def test_one_object_sent_to_many_watches_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = jsoncodec.dumps

    def counting(value: Any, **kwargs: Any) -> bytes:
        calls.append(value)
        return real(value, **kwargs)

    monkeypatch.setattr(reads.jsoncodec, "dumps", counting)
    pod = _pod("web-0")
    lines = {reads.watch_line("MODIFIED", pod) for _ in range(100)}
    assert len(calls) == 1
    (line,) = lines
    assert json.loads(line) == {"type": "MODIFIED", "object": pod}
    assert line.endswith(b"\n")


def test_the_event_type_and_the_object_identity_are_part_of_the_key() -> None:
    pod, twin = _pod("web-0"), _pod("web-0")
    added, modified = reads.watch_line("ADDED", pod), reads.watch_line("MODIFIED", pod)
    assert json.loads(added)["type"] == "ADDED"
    assert json.loads(modified)["type"] == "MODIFIED"
    twin["spec"]["nodeName"] = "esx-02"  # an equal-looking, separate object: encoded on its own
    assert json.loads(reads.watch_line("ADDED", twin))["object"]["spec"]["nodeName"] == "esx-02"


def test_the_memo_is_bounded_and_keeps_its_objects_alive() -> None:
    for index in range(reads._LINES_KEPT + 50):
        reads.watch_line("ADDED", _pod(f"p-{index}"))  # each object is dropped by the caller at once
    assert len(reads._LINES) == reads._LINES_KEPT
    for (identity, _kind), (obj, line) in reads._LINES.items():
        assert id(obj) == identity  # never an identity reused by another object
        assert json.loads(line)["object"]["metadata"]["name"] == obj["metadata"]["name"]


def _event(kind: str, name: str, rv: str) -> WatchEvent:
    return WatchEvent(kind, {"metadata": {"name": name, "resourceVersion": rv}})


def _line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def test_a_burst_goes_out_as_one_write_and_remembers_the_last_revision() -> None:
    data, last = reads._lines([_event("ADDED", "a", "5"), _event("MODIFIED", "a", "6")], _line, "4")
    assert [json.loads(x)["type"] for x in data.splitlines()] == ["ADDED", "MODIFIED"]
    assert last == "6"


class _Sink:
    """What a watch wrote, in place of the client's connection."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.ended = False


def _streamed(monkeypatch: pytest.MonkeyPatch, chunks: Any) -> _Sink:
    """Run ``reads.stream`` over ``chunks`` with the response's writes recorded."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from nestlab.api.resources import PODS

    sink = _Sink()

    async def prepare(self: web.StreamResponse, request: web.BaseRequest) -> None:
        return None

    async def write(self: web.StreamResponse, data: bytes) -> None:
        sink.writes.append(bytes(data))

    async def write_eof(self: web.StreamResponse, data: bytes = b"") -> None:
        sink.ended = True

    monkeypatch.setattr(web.StreamResponse, "prepare", prepare)
    monkeypatch.setattr(web.StreamResponse, "write", write)
    monkeypatch.setattr(web.StreamResponse, "write_eof", write_eof)

    async def scenario() -> None:
        request = make_mocked_request("GET", "/api/v1/pods?watch=1")
        await reads.stream(request, PODS, chunks, seconds=5, since="", shape="", query={})

    asyncio.run(scenario())
    return sink


def test_each_list_is_one_write_and_an_error_ends_the_stream_as_an_error_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def chunks() -> Any:
        yield [_event("ADDED", "a", "5"), _event("MODIFIED", "a", "6")]
        yield [_event("ADDED", "b", "9")]
        raise status.gone("too old resource version: 3")

    sink = _streamed(monkeypatch, chunks())
    assert len(sink.writes) == 3
    assert [json.loads(x)["type"] for x in sink.writes[0].splitlines()] == ["ADDED", "MODIFIED"]
    error = json.loads(sink.writes[2])
    assert (error["type"], error["object"]["code"]) == ("ERROR", 410)
    assert "too old resource version: 3" in error["object"]["message"]
    assert sink.ended


def test_the_end_of_the_events_ends_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    async def chunks() -> Any:
        yield [_event("ADDED", "a", "5")]

    sink = _streamed(monkeypatch, chunks())
    assert [json.loads(x)["type"] for x in sink.writes] == ["ADDED"]
    assert sink.ended


def test_a_client_gone_before_the_stream_begins_ends_the_watch_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiohttp raises ConnectionResetError from prepare() when the client closed first: the watch ends
    without a traceback in the server's log and without reading the store."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from nestlab.api.resources import PODS

    async def gone(self: web.StreamResponse, request: web.BaseRequest) -> None:
        raise ConnectionResetError("Cannot write to closing transport")

    monkeypatch.setattr(web.StreamResponse, "prepare", gone)
    read: list[WatchEvent] = []

    async def events() -> Any:
        read.append(WatchEvent("ADDED", _pod("never")))
        yield [read[-1]]

    async def scenario() -> web.StreamResponse:
        request = make_mocked_request("GET", "/api/v1/pods?watch=1")
        return await reads.stream(request, PODS, events(), seconds=5, since="", shape="", query={})

    response = asyncio.run(scenario())
    assert isinstance(response, web.StreamResponse)
    assert read == []
