"""The SPDY session over an in-memory pipe, driven by a scripted kubectl-like client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from nestlab.api import spdy, spdysession
from nestlab.api.spdysession import SpdySession, SpdyStream, StreamClosed
from tests.unit.api.spdyfakes import FakeClient, MemoryChannel

Scenario = Callable[[SpdySession, FakeClient], Awaitable[None]]


def run(scenario: Scenario, check: spdysession.StreamCheck | None = None) -> MemoryChannel:
    async def main() -> MemoryChannel:
        channel = MemoryChannel()
        client = FakeClient(channel)
        async with SpdySession(channel, check) as session:
            await asyncio.wait_for(scenario(session, client), 10)
            client.hang_up()
        return channel

    return asyncio.run(main())


async def accept(session: SpdySession) -> SpdyStream:
    stream = await session.accept()
    assert stream is not None
    return stream


def test_stream_is_replied_to_and_carries_headers_and_data() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        stream_id = client.open(streamType="stdin", port="80")
        assert await client.frame() == spdy.SynReply(stream_id, {})
        stream = await accept(session)
        assert (stream.stream_id, stream.header("StreamType"), stream.header("missing")) == (1, "stdin", "")
        client.send(spdy.Data(stream_id, b"abc"))
        client.send(spdy.Data(stream_id, b"def", fin=True))
        assert [await stream.read(), await stream.read(), await stream.read()] == [b"abc", b"def", b""]

    run(scenario)


def test_write_and_half_close_reach_the_client() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        stream_id = client.open(streamType="stdout")
        await client.frame()
        stream = await accept(session)
        await stream.write(b"x" * (spdysession.WRITE_CHUNK + 5))
        await stream.close()
        await stream.close()  # idempotent
        assert await client.data_until_fin(stream_id) == b"x" * (spdysession.WRITE_CHUNK + 5)
        with pytest.raises(StreamClosed):
            await stream.write(b"late")

    run(scenario)


def test_client_pings_are_answered() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        client.send(spdy.Ping(7))
        assert await client.frame() == spdy.Ping(7)

    run(scenario)


def test_reset_by_the_client_ends_both_directions() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        stream_id = client.open(streamType="data")
        await client.frame()
        stream = await accept(session)
        client.send(spdy.RstStream(stream_id, spdy.RstStatus.CANCEL))
        assert await stream.read() == b""
        assert stream.was_reset
        with pytest.raises(StreamClosed):
            await stream.write(b"x")

    run(scenario)


def test_rejected_and_invalid_streams_are_reset() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        refused = client.open(streamType="bogus")
        assert await client.frame() == spdy.RstStream(refused, spdy.RstStatus.CANCEL)
        client.send(spdy.SynStream(2, {}))  # even ids are the server's
        assert await client.frame() == spdy.RstStream(2, spdy.RstStatus.PROTOCOL_ERROR)
        client.send(spdy.SynStream(1, {}))  # ids must grow
        assert await client.frame() == spdy.RstStream(1, spdy.RstStatus.PROTOCOL_ERROR)

    def check(stream: SpdyStream) -> str | None:
        return "bad type" if stream.header("streamType") == "bogus" else None

    run(scenario, check)


def test_close_sends_goaway_naming_the_last_stream() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        client.open(streamType="error")
        client.open(streamType="stdout")
        await client.frame()
        await client.frame()
        closing = asyncio.create_task(session.close())
        assert await client.frame() == spdy.GoAway(3, spdy.GoAwayStatus.OK)
        client.hang_up()
        await closing
        assert await session.accept() is not None  # streams opened before still delivered
        assert session.ended.is_set()

    channel = run(scenario)
    assert channel.closed


def test_broken_client_bytes_end_the_session_with_a_protocol_error() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        client.channel.to_server.put_nowait(bytes.fromhex("8002000100000000"))
        assert await client.frame() == spdy.GoAway(0, spdy.GoAwayStatus.PROTOCOL_ERROR)
        await session.ended.wait()
        assert await session.accept() is None

    run(scenario)


def test_a_full_stream_stops_reading_the_connection_until_consumed() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        stream_id = client.open(streamType="stdin")
        await client.frame()
        stream = await accept(session)
        chunk = b"y" * 32768
        count = spdysession.STREAM_BUFFER // len(chunk) + 4
        for _ in range(count):
            client.send(spdy.Data(stream_id, chunk))
        for _ in range(50):
            await asyncio.sleep(0)
        assert client.channel.to_server.qsize() > 0, "the session kept reading past a full stream"
        received = b""
        while len(received) < count * len(chunk):
            received += await stream.read()
        assert received == chunk * count
        for _ in range(50):  # window updates go out in the background
            await asyncio.sleep(0)
        updates = []
        while not client.channel.to_client.empty():
            client.buffer += client.channel.to_client.get_nowait()
        while client.buffer:
            header = spdy.parse_header(client.buffer[:8])
            end = 8 + header.length
            updates.append(spdy.decode(header, client.buffer[8:end], client.decompressor))
            client.buffer = client.buffer[end:]
        windows = [u for u in updates if isinstance(u, spdy.WindowUpdate)]
        assert {u.stream_id for u in windows} == {0, stream_id}
        assert (
            sum(u.delta for u in windows if u.stream_id == stream_id)
            >= len(received) - spdy.DEFAULT_WINDOW // 2
        )

    run(scenario)


def test_abandoned_stream_drops_data_without_blocking() -> None:
    async def scenario(session: SpdySession, client: FakeClient) -> None:
        first = client.open(streamType="data")
        await client.frame()
        stream = await accept(session)
        stream.abandon()
        for _ in range(spdysession.STREAM_BUFFER // 32768 + 4):
            client.send(spdy.Data(first, b"z" * 32768))
        second = client.open(streamType="error")
        assert await client.frame() == spdy.SynReply(second, {})
        assert await stream.read() == b""

    run(scenario)
