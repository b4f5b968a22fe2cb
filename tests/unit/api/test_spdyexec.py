"""Remote command over SPDY: negotiation, the streams expected, and the relay to a backend."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from nestlab.api import rawupgrade, spdy, spdyexec
from nestlab.api.spdysession import SpdySession
from nestlab.api.streamtypes import CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, StreamOptions
from tests.unit.api.spdyfakes import FakeClient, MemoryChannel

EXIT_3 = (
    b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
    b'exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}'
)


def request(*versions: str, upgrade: str = "SPDY/3.1") -> object:
    headers = [("Connection", "Upgrade"), ("Upgrade", upgrade)]
    headers += [("X-Stream-Protocol-Version", version) for version in versions]
    return make_mocked_request("POST", "/exec", headers=headers)


def test_negotiation_takes_the_clients_first_known_protocol() -> None:
    chosen = rawupgrade.negotiate(
        request("v9.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"),  # type: ignore[arg-type]
        spdyexec.PROTOCOLS,
    )
    assert chosen == "v4.channel.k8s.io"
    chosen = rawupgrade.negotiate(request("v2.channel.k8s.io, channel.k8s.io"), spdyexec.PROTOCOLS)  # type: ignore[arg-type]
    assert chosen == "v2.channel.k8s.io"


def test_negotiation_refusals_are_upstreams() -> None:
    missing = rawupgrade.negotiate(request(), spdyexec.PROTOCOLS)  # type: ignore[arg-type]
    assert isinstance(missing, web.Response)
    assert missing.status == 400
    assert missing.text == "unable to upgrade: X-Stream-Protocol-Version is required\n"
    refused = rawupgrade.negotiate(request("v9.channel.k8s.io"), spdyexec.PROTOCOLS)  # type: ignore[arg-type]
    assert isinstance(refused, web.Response)
    assert refused.status == 403
    assert refused.text is not None
    assert refused.text.startswith(
        "unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io], server accepts [v5."
    )
    assert refused.headers.getall("X-Accepted-Stream-Protocol-Versions") == list(spdyexec.PROTOCOLS)


def test_wants_spdy_checks_both_upgrade_headers() -> None:
    assert spdyexec.wants_spdy(request("v4.channel.k8s.io"))  # type: ignore[arg-type]
    assert not spdyexec.wants_spdy(request("v4.channel.k8s.io", upgrade="websocket"))  # type: ignore[arg-type]
    plain = make_mocked_request("POST", "/exec", headers={"Upgrade": "SPDY/3.1"})
    assert not spdyexec.wants_spdy(plain)


def test_expected_streams_follow_the_query_and_protocol() -> None:
    options = StreamOptions("c", ("sh",), stdin=True, stdout=True, stderr=True, tty=True)
    assert spdyexec.expected_streams(options, "v4.channel.k8s.io") == {"error", "stdin", "stdout", "resize"}
    assert spdyexec.expected_streams(options, "v2.channel.k8s.io") == {"error", "stdin", "stdout"}
    plain = StreamOptions("c", ("ls",))
    assert spdyexec.expected_streams(plain, "v4.channel.k8s.io") == {"error", "stdout", "stderr"}


def test_error_stream_carries_json_for_v4_and_the_message_before() -> None:
    success = b'{"metadata":{},"status":"Success"}'
    assert spdyexec.error_stream_payload("v5.channel.k8s.io", EXIT_3) == EXIT_3
    assert spdyexec.error_stream_payload("v3.channel.k8s.io", success) == b""
    assert spdyexec.error_stream_payload("v3.channel.k8s.io", EXIT_3).startswith(b"command terminated")


def test_resize_lines_become_channel_4_messages() -> None:
    buffer = bytearray()
    assert spdyexec.resize_messages(buffer, b'{"Width":80,"Height":24}\n{"Wid') == [
        b'{"Width":80,"Height":24}'
    ]
    assert spdyexec.resize_messages(buffer, b'th":100,"Height":30}\nnot json\n') == [
        b'{"Width":100,"Height":30}'
    ]
    assert spdyexec.resize_messages(buffer, b"x" * (spdyexec.RESIZE_LINE_MAX + 1)) == []
    assert buffer == bytearray()


def test_failure_status_is_an_internal_error() -> None:
    status = json.loads(spdyexec.failure_status("agent esx-01 unreachable"))
    assert (status["reason"], status["code"]) == ("InternalError", 500)
    assert status["message"] == "Internal error occurred: agent esx-01 unreachable"


class RecordingBackend:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes]] = []
        self.outgoing: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.closed = False

    async def send(self, channel: int, data: bytes) -> None:
        self.sent.append((channel, data))
        if channel == CLOSE:
            await self.outgoing.put((STDOUT, b"out"))
            await self.outgoing.put((STDERR, b"err"))
            await self.outgoing.put((ERROR, EXIT_3))
            await self.outgoing.put(None)

    async def receive(self) -> tuple[int, bytes] | None:
        return await self.outgoing.get()

    async def close(self) -> None:
        self.closed = True


def test_relay_maps_streams_to_channels_and_ends_with_the_status() -> None:
    async def main() -> None:
        channel = MemoryChannel()
        client = FakeClient(channel)
        backend = RecordingBackend()
        options = StreamOptions("c", ("sh",), stdin=True, stdout=True, stderr=False, tty=True)
        async with SpdySession(channel) as session:
            ids = {kind: client.open(streamType=kind) for kind in ("error", "stdin", "stdout", "resize")}
            streams = await spdyexec.wait_for_streams(
                session, spdyexec.expected_streams(options, "v4.channel.k8s.io"), 5
            )
            assert streams is not None
            client.send(spdy.Data(ids["resize"], b'{"Width":120,"Height":40}\n'))
            client.send(spdy.Data(ids["stdin"], b"typed"))
            client.send(spdy.Data(ids["stdin"], b"", fin=True))
            relay = asyncio.create_task(spdyexec.relay(session, streams, backend, "v4.channel.k8s.io"))
            assert await client.data_until_fin(ids["stdout"]) == b"out"
            await relay
            client.hang_up()
        assert (STDIN, b"typed") in backend.sent
        assert (RESIZE, b'{"Width":120,"Height":40}') in backend.sent
        assert backend.sent.index((STDIN, b"typed")) < backend.sent.index((CLOSE, bytes([STDIN])))
        assert backend.closed

    asyncio.run(main())


def test_missing_streams_time_out() -> None:
    async def main() -> None:
        channel = MemoryChannel()
        client = FakeClient(channel)
        async with SpdySession(channel) as session:
            client.open(streamType="error")
            assert await spdyexec.wait_for_streams(session, frozenset({"error", "stdout"}), 0.2) is None
            client.hang_up()

    asyncio.run(main())


class SilentBackend(RecordingBackend):
    async def send(self, channel: int, data: bytes) -> None:
        self.sent.append((channel, data))


def test_client_hang_up_closes_the_backend() -> None:
    async def main() -> None:
        channel = MemoryChannel()
        client = FakeClient(channel)
        backend = SilentBackend()
        async with SpdySession(channel) as session:
            for kind in ("error", "stdout", "stderr"):
                client.open(streamType=kind)
            streams = await spdyexec.wait_for_streams(session, frozenset({"error", "stdout", "stderr"}), 5)
            assert streams is not None
            relay = asyncio.create_task(spdyexec.relay(session, streams, backend, "v4.channel.k8s.io"))
            client.hang_up()
            await asyncio.wait_for(relay, 5)
        assert backend.closed

    asyncio.run(main())
