"""The agent's /exec, /attach and /portForward endpoints: query and Status shapes (pure), and the
WebSocket endpoints through aiohttp's test server with the real multiplexer and an in-test pod side."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from nestlab.agent import logs, podstate
from nestlab.agent import streams as agentstreams
from nestlab.agent.streams import (
    EXEC_PROTOCOL,
    PORT_PROTOCOL,
    QueryError,
    StreamTarget,
    error_status,
    exit_status,
    parse_exec_query,
    parse_port,
    parse_resize,
)
from nestlab.runtime.streamframes import FrameType
from nestlab.runtime.streams import PodStreams
from tests.unit.runtime.fakepod import FakePod

WAIT_S = 10.0


# --- pure ---------------------------------------------------------------------------------------


def test_exec_query_flags_commands_and_tty_merges_stderr() -> None:
    query = MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo hi"), ("stdin", "1"),
                       ("stdout", "1"), ("stderr", "1"), ("tty", "1")])  # fmt: skip
    options = parse_exec_query(query, attach=False)
    assert options.command == ("sh", "-c", "echo hi")
    assert (options.stdin, options.stdout, options.stderr, options.tty) == (True, True, False, True)
    attach = parse_exec_query(MultiDict([("stdout", "true"), ("stderr", "0")]), attach=True)
    assert (attach.command, attach.stdout, attach.stderr) == ((), True, False)


@pytest.mark.parametrize(
    ("query", "attach", "message"),
    [
        ([("stdout", "1")], False, "at least one command"),
        ([("command", "ls")], False, "at least one of stdin, stdout, stderr"),
        ([("command", "ls"), ("stdout", "yes")], False, "stdout='yes' must be 1 or 0"),
        ([("command", "ls"), ("stdout", "1")], True, "attach takes no command"),
    ],
)
def test_exec_query_refusals(query: list[tuple[str, str]], attach: bool, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_exec_query(MultiDict(query), attach=attach)


def test_port_query() -> None:
    assert parse_port({"port": "8080"}) == 8080
    for bad in ("", "0", "65536", "http", "-1"):
        with pytest.raises(QueryError, match="must be a TCP port number"):
            parse_port({"port": bad})


def test_statuses_have_upstream_shapes() -> None:
    assert exit_status(("true",), 0) == {"metadata": {}, "status": "Success"}
    assert exit_status(("sh", "-c", "exit 3"), 3) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    failed = error_status(
        "error executing command in container", 'exec: "nope": executable file not found in $PATH'
    )
    assert failed["reason"] == "InternalError"
    assert failed["code"] == 500
    assert failed["message"] == (
        'Internal error occurred: error executing command in container: exec: "nope": '
        "executable file not found in $PATH"
    )


def test_resize_message() -> None:
    assert parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    assert parse_resize(b"garbage") is None
    assert parse_resize(b'{"Width":1}') is None


def test_find_target_reads_records_and_handles() -> None:
    record = podstate.PodRecord(
        "uid-1", "demo", "web", "Always",
        [podstate.ContainerState("main", "img", state="running"), podstate.ContainerState("side", "img")],
    )  # fmt: skip
    target = agentstreams.find_target({"uid-1": record}, lambda uid: None, "demo", "web")
    assert target == StreamTarget("uid-1", {"main": "running", "side": "waiting"}, None)
    assert agentstreams.find_target({"uid-1": record}, lambda uid: None, "demo", "other") is None


# --- the endpoints ------------------------------------------------------------------------------


class Pods:
    """One fake pod ``demo/web`` (containers ``main`` running, ``side`` waiting) on a real PodStreams."""

    def __init__(self, streams: PodStreams, pod: FakePod) -> None:
        self.streams = streams
        self.pod = pod

    def lookup(self, namespace: str, name: str) -> StreamTarget | None:
        if (namespace, name) != ("demo", "web"):
            return None
        return StreamTarget("uid-1", {"main": "running", "side": "waiting"}, self.streams)


@asynccontextmanager
async def agent() -> AsyncIterator[tuple[TestClient[Any, Any], Pods]]:
    directory = Path(tempfile.mkdtemp(prefix="nla-"))
    streams = PodStreams.listen(directory / "stream.sock")
    pod = FakePod()
    pods = Pods(streams, pod)
    client = TestClient(TestServer(logs.app(lambda ns, name: None, sessions=pods.lookup)))
    try:
        await pod.connect(directory / "stream.sock")
        await client.start_server()
        yield client, pods
    finally:
        await client.close()
        streams.close()
        await pod.close()
        shutil.rmtree(directory)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), WAIT_S * 3))


async def messages(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[int, bytes]]:
    """Every channel message until the agent closes."""
    out = []
    async for message in ws:
        assert message.type == aiohttp.WSMsgType.BINARY
        out.append((message.data[0], message.data[1:]))
    return out


def status_of(received: list[tuple[int, bytes]]) -> dict[str, Any]:
    statuses = [json.loads(data) for channel, data in received if channel == 3]
    assert len(statuses) == 1, received
    assert received[-1][0] == 3  # the Status is the last message
    return statuses[0]


EXEC = "/exec/demo/web/main"


def test_exec_output_exit_code_and_refusal() -> None:
    async def scenario() -> None:
        async with agent() as (client, _pods):
            query = [("command", "echo"), ("command", "hi there"), ("stdout", "1"), ("stderr", "1")]
            async with client.ws_connect(EXEC, params=query, protocols=(EXEC_PROTOCOL,)) as ws:
                assert ws.protocol == EXEC_PROTOCOL
                received = await messages(ws)
            assert received[0] == (1, b"hi there\n")
            assert status_of(received) == {"metadata": {}, "status": "Success"}
            query = [("command", "fail"), ("command", "3"), ("stdout", "1"), ("stderr", "1")]
            async with client.ws_connect(EXEC, params=query, protocols=(EXEC_PROTOCOL,)) as ws:
                received = await messages(ws)
            assert received[0] == (2, b"failing\n")
            status = status_of(received)
            assert status["reason"] == "NonZeroExitCode"
            assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
            query = [("command", "fail"), ("command", "3"), ("stdout", "1")]  # stderr not asked for
            async with client.ws_connect(EXEC, params=query, protocols=(EXEC_PROTOCOL,)) as ws:
                received = await messages(ws)
            assert [channel for channel, _ in received] == [3]
            query = [("command", "nope"), ("stdout", "1")]
            async with client.ws_connect(EXEC, params=query, protocols=(EXEC_PROTOCOL,)) as ws:
                status = status_of(await messages(ws))
            assert status["reason"] == "InternalError"
            assert status["message"].endswith('exec: "nope": executable file not found in $PATH')

    run(scenario)


def test_stdin_resize_and_stdin_close() -> None:
    async def scenario() -> None:
        async with agent() as (client, pods):
            query = [("command", "cat"), ("stdin", "1"), ("stdout", "1"), ("tty", "1")]
            async with client.ws_connect(EXEC, params=query, protocols=(EXEC_PROTOCOL,)) as ws:
                await ws.send_bytes(b"\x00typed\n")
                assert (await ws.receive_bytes()) == b"\x01typed\n"
                await ws.send_bytes(b'\x04{"Width":100,"Height":30}')
                assert (await ws.receive_bytes()) == b"\x01size 30 100\n"
                await ws.send_bytes(b"\xff\x00")  # v5: stdin closed
                received = await messages(ws)
            assert status_of(received)["status"] == "Success"
            session = next(iter(pods.pod.requests))
            assert pods.pod.requests[session][:4] == ["exec", "main", "1", "1"]

    run(scenario)


def test_a_client_that_leaves_abandons_the_session() -> None:
    async def scenario() -> None:
        async with agent() as (client, pods):
            query = [("command", "hang"), ("stdout", "1")]
            async with client.ws_connect(EXEC, params=query, protocols=(EXEC_PROTOCOL,)):
                async with asyncio.timeout(WAIT_S):
                    while not pods.pod.requests:
                        await asyncio.sleep(0.01)
            async with asyncio.timeout(WAIT_S):
                while not any(f.type == FrameType.CLOSE for f in pods.pod.received):
                    await asyncio.sleep(0.01)
            assert pods.streams.open_sessions == 0

    run(scenario)


def test_the_client_is_answered_while_the_pod_is_slow_to_open() -> None:
    async def scenario() -> None:
        async with agent() as (client, pods):
            pods.pod.hold_reading.clear()  # pod-init busy: the OPEN waits
            query = [("command", "echo"), ("command", "late"), ("stdout", "1")]
            async with client.ws_connect(
                EXEC, params=query, protocols=(EXEC_PROTOCOL,), autoping=False
            ) as ws:
                await ws.ping(b"still there?")
                pong = await ws.receive()
                assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"still there?")
                pods.pod.hold_reading.set()
                received = [(m.data[0], m.data[1:]) async for m in ws if m.type == aiohttp.WSMsgType.BINARY]
            assert received[0] == (1, b"late\n")
            assert status_of(received)["status"] == "Success"

    run(scenario)


def test_attach_ends_with_success_when_the_container_ends() -> None:
    async def scenario() -> None:
        async with agent() as (client, pods):
            query = [("stdout", "1"), ("stderr", "1")]
            async with client.ws_connect(
                "/attach/demo/web/main", params=query, protocols=(EXEC_PROTOCOL,)
            ) as ws:
                assert (await ws.receive_bytes()) == b"\x01attached\n"
                await pods.pod.end_attach()
                received = await messages(ws)
            assert status_of(received) == {"metadata": {}, "status": "Success"}

    run(scenario)


@pytest.mark.parametrize(
    ("path", "query", "code", "text"),
    [
        ("/exec/demo/gone/main", [("command", "ls"), ("stdout", "1")], 404, 'pod "gone" in namespace "demo" is not on this node'),
        ("/exec/demo/web/other", [("command", "ls"), ("stdout", "1")], 404, 'container "other" not found in pod "web"'),
        ("/exec/demo/web/side", [("command", "ls"), ("stdout", "1")], 404, 'container "side" in pod "web" is not running'),
        ("/exec/demo/web/main", [("stdout", "1")], 400, "at least one command"),
        ("/attach/demo/web/main", [], 400, "at least one of stdin, stdout, stderr"),
        ("/portForward/demo/web", [("port", "http")], 400, "must be a TCP port number"),
        ("/portForward/demo/gone", [("port", "80")], 404, 'pod "gone" in namespace "demo" is not on this node'),
    ],
)  # fmt: skip
def test_refusals_before_the_upgrade(path: str, query: list[tuple[str, str]], code: int, text: str) -> None:
    async def scenario() -> None:
        async with agent() as (client, _pods):
            response = await client.get(path, params=query)
            assert response.status == code
            assert text in await response.text()

    run(scenario)


def test_a_client_without_the_subprotocol_is_refused() -> None:
    async def scenario() -> None:
        async with agent() as (client, _pods):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(
                    EXEC, params=[("command", "ls"), ("stdout", "1")], protocols=("v4.channel.k8s.io",)
                )
            assert refused.value.status == 400

    run(scenario)


def test_port_forward_relays_bytes_and_reports_a_refused_connect() -> None:
    async def scenario() -> None:
        async with agent() as (client, pods):
            path = "/portForward/demo/web"
            async with client.ws_connect(path, params={"port": "7"}, protocols=(PORT_PROTOCOL,)) as ws:
                assert ws.protocol == PORT_PROTOCOL
                await ws.send_bytes(b"GET / HTTP/1.0\r\n\r\n")
                assert (await ws.receive_bytes()) == b"GET / HTTP/1.0\r\n\r\n"
            async with asyncio.timeout(WAIT_S):  # the client's close abandoned the pod's connection
                while not any(f.type == FrameType.CLOSE for f in pods.pod.received):
                    await asyncio.sleep(0.01)
            async with client.ws_connect(path, params={"port": "9"}, protocols=(PORT_PROTOCOL,)) as ws:
                message = await ws.receive()
                assert message.type == aiohttp.WSMsgType.TEXT
                assert message.data == (
                    "error forwarding port 9 to pod demo/web, uid uid-1: failed to connect to localhost:9 "
                    "inside the pod VM: dial tcp4 127.0.0.1:9: connect: connection refused"
                )
                assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE

    run(scenario)


def test_routes_exist_only_when_sessions_are_served() -> None:
    application = logs.app(lambda ns, name: None)
    paths = {r.resource.canonical for r in application.router.routes() if r.resource is not None}
    assert not any(p.startswith(("/exec", "/attach", "/portForward")) for p in paths)
    served = logs.app(lambda ns, name: None, sessions=lambda ns, name: None)
    paths = {r.resource.canonical for r in served.router.routes() if r.resource is not None}
    assert {"/exec/{namespace}/{pod}/{container}", "/attach/{namespace}/{pod}/{container}"} <= paths
    assert "/portForward/{namespace}/{pod}" in paths
    assert isinstance(served, web.Application)
