"""Port-forward over SPDY: stream checks, pairing by request id, and the byte relay."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import make_mocked_request

from nestlab.api import spdy, spdyportforward
from nestlab.api.spdysession import SpdySession, SpdyStream
from nestlab.api.streamtypes import StreamError
from tests.unit.api.spdyfakes import FakeClient, MemoryChannel


def stream(stream_id: int = 1, **headers: str) -> SpdyStream:
    return SpdyStream(None, stream_id, {k.lower(): [v] for k, v in headers.items()})  # type: ignore[arg-type]


def headed(headers: dict[str, str]) -> SpdyStream:
    return stream(1, **headers)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"streamType": "data"}, '"port" header is required'),
        ({"port": "http", "streamType": "data"}, "unable to parse 'http' as a port"),
        ({"port": "0", "streamType": "data"}, "port '0' must be > 0"),
        ({"port": "70000", "streamType": "data"}, "unable to parse '70000' as a port"),
        ({"port": "80"}, '"streamType" header is required'),
        ({"port": "80", "streamType": "stdin"}, "invalid stream type 'stdin'"),
        ({"port": "80", "streamType": "error"}, None),
    ],
)
def test_stream_checks_are_upstreams(headers: dict[str, str], problem: str | None) -> None:
    assert spdyportforward.check_stream(headed(headers)) == problem


def test_request_id_falls_back_to_stream_ids_for_old_clients() -> None:
    assert spdyportforward.request_id(stream(5, requestID="7", streamType="data")) == "7"
    assert spdyportforward.request_id(stream(5, streamType="error")) == "5"
    assert spdyportforward.request_id(stream(7, streamType="data")) == "5"


def test_wants_tunneled_portforward_needs_the_tunnel_subprotocol() -> None:
    def ws(protocols: str) -> object:
        headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Protocol": protocols}
        return make_mocked_request("GET", "/portforward", headers=headers)

    assert spdyportforward.wants_tunneled_portforward(ws("SPDY/3.1+portforward.k8s.io"))  # type: ignore[arg-type]
    assert not spdyportforward.wants_tunneled_portforward(ws("portforward.k8s.io"))  # type: ignore[arg-type]


class EchoPort:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False

    async def send(self, data: bytes) -> None:
        await self.queue.put(data.upper())
        if data.endswith(b"\n"):
            await self.queue.put(None)

    async def receive(self) -> bytes | None:
        return await self.queue.get()

    async def close(self) -> None:
        self.closed = True


def test_pairs_are_forwarded_and_failures_reported_on_the_error_stream() -> None:
    ports: list[EchoPort] = []

    async def open_port(port: int) -> EchoPort:
        if port != 8080:
            raise StreamError(f"error forwarding port {port} to pod p: connection refused")
        ports.append(EchoPort())
        return ports[-1]

    async def main() -> None:
        channel = MemoryChannel()
        client = FakeClient(channel)
        async with SpdySession(channel, spdyportforward.check_stream) as session:
            serving = asyncio.create_task(spdyportforward.serve_pairs(session, open_port))
            error = client.open(streamType="error", port="8080", requestID="0")
            data = client.open(streamType="data", port="8080", requestID="0")
            client.send(spdy.Data(data, b"hello\n"))
            assert await client.data_until_fin(data) == b"HELLO\n"
            assert await client.data_until_fin(error) == b""
            bad_error = client.open(streamType="error", port="81", requestID="1")
            client.open(streamType="data", port="81", requestID="1")
            assert (
                await client.data_until_fin(bad_error)
                == b"error forwarding port 81 to pod p: connection refused"
            )
            client.hang_up()
            await serving
        assert len(ports) == 1
        assert ports[0].closed

    asyncio.run(main())


def test_a_lonely_stream_times_out_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spdyportforward, "PAIR_TIMEOUT_S", 0.1)

    async def open_port(port: int) -> EchoPort:
        raise AssertionError("no pair, no connection")

    async def main() -> None:
        channel = MemoryChannel()
        client = FakeClient(channel)
        async with SpdySession(channel, spdyportforward.check_stream) as session:
            serving = asyncio.create_task(spdyportforward.serve_pairs(session, open_port))
            error = client.open(streamType="error", port="8080", requestID="3")
            assert await client.frame() == spdy.SynReply(error, {})
            assert await client.frame() == spdy.Data(error, b"(request=3) timed out waiting for streams")
            assert await client.frame() == spdy.RstStream(error, spdy.RstStatus.CANCEL)
            client.hang_up()
            await serving

    asyncio.run(main())


def test_client_hang_up_closes_open_ports() -> None:
    ports: list[EchoPort] = []

    async def open_port(port: int) -> EchoPort:
        ports.append(EchoPort())
        return ports[-1]

    async def main() -> None:
        channel = MemoryChannel()
        client = FakeClient(channel)
        async with SpdySession(channel, spdyportforward.check_stream) as session:
            serving = asyncio.create_task(spdyportforward.serve_pairs(session, open_port))
            client.open(streamType="error", port="8080", requestID="0")
            data = client.open(streamType="data", port="8080", requestID="0")
            client.send(spdy.Data(data, b"no newline yet"))
            assert await client.frame() == spdy.SynReply(1, {})
            assert await client.frame() == spdy.SynReply(data, {})
            assert await client.frame() == spdy.Data(data, b"NO NEWLINE YET")
            client.hang_up()
            await asyncio.wait_for(serving, 5)
        assert len(ports) == 1
        assert ports[0].closed

    asyncio.run(main())
