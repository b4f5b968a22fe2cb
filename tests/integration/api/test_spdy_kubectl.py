"""REAL kubectl (Debian's 1.20 and 1.30) against the SPDY adapters, in a small HTTPS test server.

The server (aiohttp, in a thread) answers what kubectl asks before streaming (version, discovery,
the pod) and routes ``pods/exec`` and ``pods/portforward`` to :mod:`nestlab.api.spdyexec` and
:mod:`nestlab.api.spdyportforward` with in-process backends: an exec that echoes stdin to stdout
and exits with the code its command names, and a pod port that answers one tiny HTTP response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from nestlab.api import spdy, spdyexec, spdyportforward
from nestlab.api.streamtypes import CLOSE, ERROR, RESIZE, STDIN, STDOUT, StreamError, StreamOptions
from nestlab.runtime import proc
from tests.integration.api.conftest import Pki, free_port, wait_until

pytestmark = pytest.mark.integration

KUBECTL_130 = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.30")
KUBECTL_133 = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")
SCRIPT = "/usr/bin/script"  # util-linux: runs a command in a pseudo-terminal
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default", "uid": "0c5bd1b4-0000-4000-8000-000000000001"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True}]},
}
STDIN_TEXT = "".join(f"line {n} over spdy\n" for n in range(60_000))  # ~1 MB: well past any window
HTTP_ANSWER = b"HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello from pod\n"


def exit_status(code: int, command: list[str]) -> bytes:
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {command}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


RESIZES: list[bytes] = []
"""Terminal sizes the exec backends received (channel 4)."""


class EchoExec:
    """``sh -c 'cat; exit N'``: stdin back on stdout, then exit with the N the command names.

    With a tty, a ^D ends the input as a terminal's line discipline would.
    """

    def __init__(self, options: StreamOptions) -> None:
        self.options = options
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        found = re.search(r"exit (\d+)", " ".join(options.command))
        self.code = int(found.group(1)) if found else 0
        if not options.stdin:
            self.queue.put_nowait((STDOUT, f"ran {' '.join(options.command)}\n".encode()))
            self._end()

    def _end(self) -> None:
        self.queue.put_nowait((ERROR, exit_status(self.code, list(self.options.command))))
        self.queue.put_nowait(None)

    async def send(self, channel: int, data: bytes) -> None:
        if channel == STDIN and self.options.tty and b"\x04" in data:
            await self.queue.put((STDOUT, data.partition(b"\x04")[0]))
            self._end()
        elif channel == STDIN:
            await self.queue.put((STDOUT, data))
        elif channel == RESIZE:
            RESIZES.append(data)
        elif channel == CLOSE and data == bytes([STDIN]):
            self._end()

    async def receive(self) -> tuple[int, bytes] | None:
        return await self.queue.get()

    async def close(self) -> None:
        pass


class TinyHttpPort:
    """A pod port that reads one request and answers :data:`HTTP_ANSWER`, then closes."""

    def __init__(self) -> None:
        self.request = b""
        self.answered = asyncio.Event()
        self.sent = False

    async def send(self, data: bytes) -> None:
        self.request += data
        if b"\r\n\r\n" in self.request:
            self.answered.set()

    async def receive(self) -> bytes | None:
        await self.answered.wait()
        if self.sent:
            return None
        self.sent = True
        return HTTP_ANSWER

    async def close(self) -> None:
        pass


@contextlib.contextmanager
def stream_server(pki: Pki) -> Iterator[tuple[str, list[str], list[bytes]]]:
    """The test server in a thread: (url, request log, header blocks the server decompressed)."""
    port = free_port()
    seen: list[str] = []
    blocks: list[bytes] = []
    original = spdy.HeaderDecompressor.decompress

    def recording(self: spdy.HeaderDecompressor, compressed: bytes) -> dict[str, list[str]]:
        blocks.append(compressed)
        return original(self, compressed)

    async def version(_: web.Request) -> web.Response:
        return web.json_response(
            {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}
        )

    async def api(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}
                ],
            }
        )

    async def apis(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def core(_: web.Request) -> web.Response:
        verbs = ["get", "list"]
        resources = [
            {"name": "pods", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": verbs},
            {
                "name": "pods/exec",
                "singularName": "",
                "namespaced": True,
                "kind": "PodExecOptions",
                "verbs": ["create", "get"],
            },
            {
                "name": "pods/portforward",
                "singularName": "",
                "namespaced": True,
                "kind": "PodPortForwardOptions",
                "verbs": ["create", "get"],
            },
        ]
        return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})

    async def pod(_: web.Request) -> web.Response:
        return web.json_response(POD)

    async def exec_(request: web.Request) -> web.StreamResponse:
        query = request.query
        options = StreamOptions(
            container=query.get("container", "c"),
            command=tuple(query.getall("command", [])),
            stdin=query.get("stdin") in ("1", "true"),
            stdout=query.get("stdout") in ("1", "true"),
            stderr=query.get("stderr") in ("1", "true"),
            tty=query.get("tty") in ("1", "true"),
        )

        async def open_backend() -> EchoExec:
            return EchoExec(options)

        return await spdyexec.serve_spdy_exec(request, open_backend, options)

    async def portforward(request: web.Request) -> web.StreamResponse:
        async def open_port(number: int) -> TinyHttpPort:
            if number != 8080:
                raise StreamError(f"error forwarding port {number} to pod p: connection refused")
            return TinyHttpPort()

        if spdyportforward.wants_tunneled_portforward(request):
            return await spdyportforward.serve_tunneled_portforward(request, open_port)
        return await spdyportforward.serve_spdy_portforward(request, open_port)

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path_qs} upgrade={request.headers.get('Upgrade', '')}")
        return await handler(request)  # type: ignore[no-any-return]

    app = web.Application(middlewares=[record])
    base = "/api/v1/namespaces/{ns}/pods/{name}"
    app.router.add_get("/version", version)
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", core)
    app.router.add_get(base, pod)
    app.router.add_route("*", base + "/exec", exec_)
    app.router.add_route("*", base + "/portforward", portforward)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))

    state: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        runner = web.AppRunner(app, handler_cancellation=True)  # as nestlab-apiserver runs it
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        stop = asyncio.Event()
        state.update(loop=asyncio.get_running_loop(), stop=stop)
        started.set()
        await stop.wait()
        await runner.cleanup()

    spdy.HeaderDecompressor.decompress = recording  # type: ignore[method-assign]
    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(timeout=20), "the test server did not start"
        yield f"https://127.0.0.1:{port}", seen, blocks
    finally:
        spdy.HeaderDecompressor.decompress = original  # type: ignore[method-assign]
        if "loop" in state:
            state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(timeout=20)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[tuple[str, list[str], list[bytes]]]:
    """The server for the module; at the end, no handler may have failed (aiohttp logs those)."""
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    try:
        with stream_server(pki) as running:
            yield running
    finally:
        logging.getLogger().removeHandler(errors)
    assert not errors.records, "\n".join(errors.records)


@pytest.fixture(params=["1.20", "1.30"])
def kubectl(request: pytest.FixtureRequest, kubectl_120: Path, server: Any, pki: Pki, tmp_path: Path) -> Any:
    if request.param == "1.30" and not KUBECTL_130.exists():
        pytest.skip(f"{KUBECTL_130} is not installed")
    binary = kubectl_120 if request.param == "1.20" else KUBECTL_130
    url = server[0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": url, "certificate-authority": str(pki.ca)}}],
        "users": [{"name": "u", "user": {"token": "unused"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u", "namespace": "default"}}],
        "current-context": "t",
    }
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    return request.param, binary, env


def test_exec_stdin_round_trip_and_exit_code(kubectl: Any, server: Any) -> None:
    version, binary, env = kubectl
    before = len(server[1])
    env = {**env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    result = proc.run(
        [binary, "exec", "-i", "p", "--", "sh", "-c", "cat; exit 3"],
        timeout=30,
        check=False,
        env=env,
        stdin=STDIN_TEXT,
    )
    assert result.stdout == STDIN_TEXT, (version, result.stderr, server[1][-5:])
    assert result.returncode == 3, (version, result.stderr)
    assert any("upgrade=SPDY/3.1" in line and "/exec" in line for line in server[1][before:]), server[1]


def test_exec_without_stdin_succeeds(kubectl: Any, server: Any) -> None:
    version, binary, env = kubectl
    env = {**env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    result = proc.run([binary, "exec", "p", "--", "date"], timeout=30, check=False, env=env)
    assert (result.returncode, result.stdout) == (0, "ran date\n"), (version, result.stderr)


def test_header_dictionary_matches_kubectl(kubectl: Any, server: Any) -> None:
    """kubectl's first header block names the dictionary's adler32 (zlib FDICT): ours must match."""
    _, binary, env = kubectl
    env = {**env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    server[2].clear()
    proc.run([binary, "exec", "p", "--", "true"], timeout=30, check=False, env=env)
    first = server[2][0]
    assert first[1] & 0x20, "kubectl's header zlib stream does not announce a dictionary"
    assert int.from_bytes(first[2:6], "big") == zlib.adler32(spdy.HEADER_DICTIONARY)


def _read_until_closed(client: socket.socket) -> bytes:
    """Everything the forwarded connection sends until it closes.

    A reset counts as closed: kubectl closes its local end when the pod side refuses, and if it
    closes before reading the request we sent, the kernel answers that unread data with a reset.
    """
    answer = b""
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline and (chunk := client.recv(4096)):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def _fetch_through_port_forward(binary: Path, env: dict[str, str], log: Path, port: int = 8080) -> bytes:
    process = proc.spawn([str(binary), "port-forward", "pod/p", f":{port}"], log=log, env=env)
    try:
        found: dict[str, int] = {}

        def forwarding() -> bool:
            assert process.poll() is None, log.read_text()
            match = re.search(rf"Forwarding from 127\.0\.0\.1:(\d+) -> {port}", log.read_text())
            if match:
                found["port"] = int(match.group(1))
            return bool(match)

        wait_until(forwarding, "kubectl port-forward", timeout=20)
        answers = []
        for _ in range(2 if port == 8080 else 1):  # two connections over the same SPDY connection
            with socket.create_connection(("127.0.0.1", found["port"]), timeout=10) as client:
                client.sendall(b"GET / HTTP/1.0\r\n\r\n")
                answers.append(_read_until_closed(client))
        assert len(set(answers)) == 1, answers
        return answers[0]
    finally:
        process.stop(grace=5)


def test_port_forward(kubectl: Any, server: Any, tmp_path: Path) -> None:
    version, binary, env = kubectl
    before = len(server[1])
    env = {**env, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
    assert _fetch_through_port_forward(binary, env, tmp_path / "pf.log") == HTTP_ANSWER, version
    assert any("upgrade=SPDY/3.1" in line and "/portforward" in line for line in server[1][before:]), server[
        1
    ]


def test_port_forward_tunneled_in_websocket(kubectl: Any, server: Any, tmp_path: Path) -> None:
    version, binary, env = kubectl
    if version == "1.20":
        pytest.skip("kubectl 1.20 has no WebSocket tunnel")
    before = len(server[1])
    env = {**env, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true"}
    assert _fetch_through_port_forward(binary, env, tmp_path / "pf.log") == HTTP_ANSWER
    assert any("upgrade=websocket" in line and "/portforward" in line for line in server[1][before:]), server[
        1
    ]


def test_port_forward_failure_reaches_the_user(kubectl: Any, server: Any, tmp_path: Path) -> None:
    """A port the pod refuses: the connection closes and kubectl prints the pod side's message."""
    _, binary, env = kubectl
    env = {**env, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
    log = tmp_path / "pf.log"
    assert _fetch_through_port_forward(binary, env, log, port=81) == b""
    wait_until(
        lambda: "error forwarding port 81 to pod p: connection refused" in log.read_text(), "the error"
    )


def test_exec_with_a_terminal_sends_its_size(kubectl: Any, server: Any, tmp_path: Path) -> None:
    """``exec -it`` under a pseudo-terminal (util-linux ``script``): resize stream and raw input."""
    version, binary, env = kubectl
    env = {**env, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "SHELL": "/bin/sh"}
    RESIZES.clear()
    command = f"stty cols 123 rows 45; exec {binary} exec -it p -- sh -c 'cat; exit 4'"
    log = tmp_path / "tty.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - argv list; script runs the command in a pty
            [SCRIPT, "-qec", command, "/dev/null"], stdin=subprocess.PIPE, stdout=sink, env=env
        )
    try:
        wait_until(lambda: bool(RESIZES), "the terminal size", timeout=20)
        assert process.stdin is not None
        process.stdin.write(b"typed in a tty\x04")
        process.stdin.flush()
        assert process.wait(timeout=20) == 4, (version, log.read_text())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdin is not None
        process.stdin.close()
    assert json.loads(RESIZES[0]) == {"Width": 123, "Height": 45}
    assert "typed in a tty" in log.read_text()


def test_newest_kubectl_tunnels_port_forward_by_default(kubectl: Any, server: Any, tmp_path: Path) -> None:
    """kubectl 1.31+ port-forwards through the WebSocket tunnel without being asked."""
    version, _, env = kubectl
    if version != "1.30" or not KUBECTL_133.exists():
        pytest.skip(f"runs once, with {KUBECTL_133}")
    before = len(server[1])
    assert _fetch_through_port_forward(KUBECTL_133, env, tmp_path / "pf.log") == HTTP_ANSWER
    assert any("upgrade=websocket" in line and "/portforward" in line for line in server[1][before:]), server[
        1
    ]
