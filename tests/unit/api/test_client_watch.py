"""The client's watch against a small in-process HTTP server: silence, dropped pools, spread timeouts.

The server here is a plain aiohttp app that sends what each test scripts (event lines, bookmarks,
then nothing while holding the connection open): the half-open path a moved VIP leaves behind,
without a network. What is checked is the client's side: a silent watch ends with 503, every
pooled connection is dropped with it (other watches on the same client end too, so their owners
resume at once), a watch that hears bookmarks is never taken for dead, and timeoutSeconds spread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from nestlab.api import status
from nestlab.api.client import ApiClient, Credentials, watch_timeout
from nestlab.api.resources import CONFIGMAPS

Opened = dict[str, int]  # {"watches": how many watch requests the server has begun answering}
Scenario = Callable[[ApiClient, Opened], Awaitable[None]]
DEADLINE_S = 30.0  # only a broken client gets near this: every wait below ends on an event first


def _line(kind: str, version: int) -> bytes:
    obj = {"kind": "ConfigMap", "metadata": {"name": f"cm{version}", "resourceVersion": str(version)}}
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def _app(lines: list[bytes], *, then_hang: bool, every: float = 0.0) -> tuple[web.Application, Opened]:
    app, opened = web.Application(), {"watches": 0}
    hold = asyncio.Event()  # never set: a hanging answer holds its connection open, silent

    async def collection(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" or "watch" not in request.query:
            await hold.wait()
        opened["watches"] += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for line in lines:
            await response.write(line)
            await asyncio.sleep(every)
        if then_hang:
            await hold.wait()
        await response.write_eof()
        return response

    async def one(_request: web.Request) -> web.StreamResponse:
        await hold.wait()
        raise AssertionError("unreachable")

    app.router.add_route("*", "/api/v1/configmaps", collection)
    app.router.add_get("/api/v1/configmaps/{name}", one)
    return app, opened


async def _with_server(
    served: tuple[web.Application, Opened], scenario: Scenario, *, timeout: float = 10.0
) -> None:
    app, opened = served
    server = TestServer(app)
    await server.start_server()
    client = ApiClient(Credentials(f"http://127.0.0.1:{server.port}"), timeout=timeout)
    try:
        await asyncio.wait_for(scenario(client, opened), DEADLINE_S)
    finally:
        await client.close()
        await server.close()


async def _drain(events: AsyncIterator[tuple[str, dict[str, object]]], into: list[str]) -> None:
    async for kind, obj in events:
        into.append(f"{kind} {obj['metadata']['resourceVersion']}")  # type: ignore[index]


def test_watch_timeout_spreads_between_the_minimum_and_twice_it() -> None:
    assert watch_timeout(300, draw=0.0) == 300
    assert watch_timeout(300, draw=0.5) == 450
    assert watch_timeout(300, draw=0.999) == 599
    drawn = {watch_timeout(300) for _ in range(200)}
    assert min(drawn) >= 300
    assert max(drawn) < 600
    assert len(drawn) > 10  # spread, not one value


def test_a_silent_watch_ends_with_503_after_delivering_what_came() -> None:
    seen: list[str] = []

    async def scenario(client: ApiClient, _opened: Opened) -> None:
        events = client.watch(CONFIGMAPS, since="1", bookmarks=True, idle=0.3)
        with pytest.raises(status.ApiError) as caught:
            await _drain(events, seen)
        assert caught.value.code == 503
        assert "went silent (no data for 0.3s)" in caught.value.message

    asyncio.run(_with_server(_app([_line("ADDED", 2), _line("BOOKMARK", 5)], then_hang=True), scenario))
    assert seen == ["ADDED 2", "BOOKMARK 5"]


def test_one_silent_watch_drops_every_pooled_connection_so_the_other_watches_end_too() -> None:
    """kubelet's closeAllConns: the second watch has no idle limit, only the drop can end it."""

    async def scenario(client: ApiClient, opened: Opened) -> None:
        quiet: list[str] = []
        other = asyncio.create_task(_drain(client.watch(CONFIGMAPS, since="1", timeout=600), quiet))
        while opened["watches"] < 1:  # the other watch is open and streaming before the silence
            await asyncio.sleep(0.01)
        with pytest.raises(status.ApiError):
            await _drain(client.watch(CONFIGMAPS, since="1", bookmarks=True, idle=0.3), [])
        with pytest.raises(status.ApiError) as caught:
            await other
        assert caught.value.code == 503
        assert quiet == ["ADDED 2"]

    asyncio.run(_with_server(_app([_line("ADDED", 2)], then_hang=True), scenario))


def test_a_request_without_an_answer_says_a_write_may_be_stored_and_leaves_the_watches_be() -> None:
    """A slow answer is not a dead path (etcd may be electing): only a silent watch drops the pool."""

    async def scenario(client: ApiClient, opened: Opened) -> None:
        seen: list[str] = []
        watching = asyncio.create_task(_drain(client.watch(CONFIGMAPS, since="1", timeout=600), seen))
        while opened["watches"] < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(status.ApiError) as caught:
            await client.create(CONFIGMAPS, "", {"metadata": {"name": "x"}})
        assert caught.value.code == 503
        assert "did not answer POST /api/v1/configmaps within 0.3s" in caught.value.message
        assert "may or may not have been stored" in caught.value.message
        with pytest.raises(status.ApiError) as read:
            await client.get(CONFIGMAPS, "", "x")
        assert "may or may not" not in read.value.message  # a read changes nothing
        assert not watching.done()
        assert seen == ["ADDED 2"]
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)

    asyncio.run(_with_server(_app([_line("ADDED", 2)], then_hang=True), scenario, timeout=0.3))


def test_a_watch_that_hears_bookmarks_in_time_is_never_taken_for_dead() -> None:
    """Twenty lines 0.05 s apart, under an idle limit of 1 s: the stream ends cleanly, all there."""
    lines = [_line("BOOKMARK", version) for version in range(1, 21)]
    seen: list[str] = []

    async def scenario(client: ApiClient, _opened: Opened) -> None:
        await _drain(client.watch(CONFIGMAPS, since="1", bookmarks=True, idle=1.0), seen)

    asyncio.run(_with_server(_app(lines, then_hang=False, every=0.05), scenario))
    assert seen == [f"BOOKMARK {version}" for version in range(1, 21)]


def test_silences_together_drop_the_pool_once_and_the_next_watch_dials_a_fresh_one() -> None:
    """Two watches silent at once: one drop (the second finds the pool already replaced)."""

    async def scenario(client: ApiClient, opened: Opened) -> None:
        old = client._http()
        first = asyncio.create_task(_drain(client.watch(CONFIGMAPS, since="1", idle=0.3), []))
        second = asyncio.create_task(_drain(client.watch(CONFIGMAPS, since="1", idle=0.3), []))
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(r, status.ApiError) and r.code == 503 for r in results)
        fresh = client._http()  # the pool the next requests and watches use
        assert old.closed
        assert fresh is not old
        assert not fresh.closed
        with pytest.raises(status.ApiError):
            await _drain(client.watch(CONFIGMAPS, since="1", idle=0.3), [])
        assert opened["watches"] == 3  # the third watch reached the server through the fresh pool
        assert fresh.closed  # and its own silence dropped that pool in turn

    asyncio.run(_with_server(_app([_line("ADDED", 2)], then_hang=True), scenario))
