"""rawupgrade over a REAL aiohttp server on loopback: fails if aiohttp changes under the takeover."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from nestlab.api import rawupgrade


def test_aiohttp_still_has_the_internals_used() -> None:
    assert callable(RequestHandler.set_parser)
    assert callable(RequestHandler.keep_alive)


async def serve_echo() -> tuple[web.AppRunner, int, list[bytes]]:
    seen: list[bytes] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response, channel = await rawupgrade.upgrade(request, "SPDY/3.1", {"X-Stream-Protocol-Version": "v4"})
        try:
            while data := await channel.read():
                seen.append(data)
                await channel.write(data.upper())
        finally:  # the client's hang-up: EOF, or (handler_cancellation) cancellation
            seen.append(b"<end>")
            await channel.close()
        return response

    app = web.Application()
    app.router.add_post("/x", handler)
    runner = web.AppRunner(app, handler_cancellation=True)  # as nestlab-apiserver runs it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port, seen


def test_upgrade_answers_101_and_hands_over_both_directions() -> None:
    async def main() -> None:
        runner, port, seen = await serve_echo()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                b"X-Stream-Protocol-Version: v4\r\nContent-Length: 0\r\n\r\n"
            )
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
            assert head.startswith("HTTP/1.1 101 Switching Protocols\r\n")
            assert "Upgrade: SPDY/3.1\r\n" in head
            assert "Connection: Upgrade\r\n" in head
            assert "X-Stream-Protocol-Version: v4\r\n" in head
            assert "Transfer-Encoding" not in head
            assert "Content-Length" not in head
            big = b"GET / HTTP/1.1\r\n\r\n" + b"a" * 300_000  # looks like HTTP: must not reach its parser
            writer.write(big)
            echoed = await asyncio.wait_for(reader.readexactly(len(big)), 5)
            assert echoed == big.upper()
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            for _ in range(100):
                if seen[-1:] == [b"<end>"]:
                    break
                await asyncio.sleep(0.01)
            assert seen[-1] == b"<end>"
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_is_upgrade_matches_upstreams_header_check() -> None:
    from aiohttp.test_utils import make_mocked_request

    def req(connection: str, upgrade: str) -> web.Request:
        return make_mocked_request("POST", "/", headers={"Connection": connection, "Upgrade": upgrade})

    assert rawupgrade.is_upgrade(req("keep-alive, Upgrade", "spdy/3.1"), "SPDY/3.1")
    assert not rawupgrade.is_upgrade(req("keep-alive", "SPDY/3.1"), "SPDY/3.1")
    assert not rawupgrade.is_upgrade(req("Upgrade", "websocket"), "SPDY/3.1")
