"""``kubectl exec/attach/cp/port-forward`` -> the real apiserver -> a stand-in node agent (mutual TLS).

The agent side (:mod:`tests.integration.api.stream_agent`) speaks the agent's session protocol
and runs the asked command as a local process, so output, stdin, stderr and exit codes are real;
no VM boots.
Real kubectl binaries drive the apiserver: modern ones over WebSocket (exec, attach, cp) and SPDY
or SPDY-in-WebSocket (port-forward); 1.20 and 1.27 over SPDY for everything.
"""

from __future__ import annotations

import asyncio
import shlex
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nestlab.agent import logs
from nestlab.runtime import proc
from tests.integration.api import stream_agent
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    BOB_TOKEN,
    ApiServer,
    free_port,
    wait_until,
    write_kubeconfig,
)
from tests.integration.api.stream_agent import PAGE, FakeAgent

pytestmark = pytest.mark.integration

NODE = "esx-exec"
NS = "exec-api"
KUBECTLS = Path("/usr/lib/google-cloud-sdk/bin")
WEBSOCKET_KUBECTLS = [v for v in ("1.30", "1.33") if (KUBECTLS / f"kubectl.{v}").exists()]


@pytest.fixture(scope="module")
def agent(apiserver: ApiServer) -> Iterator[FakeAgent]:
    """The fake agent on 127.0.0.1 (lab-CA certificate, client certificates required), a Node
    advertising it, and a namespace where bob may only view."""
    loop = asyncio.new_event_loop()
    fake = FakeAgent(free_port(), free_port())
    thread = threading.Thread(target=loop.run_forever, name="exec-agent", daemon=True)
    thread.start()
    pki = apiserver.pki
    context = logs.tls_context(pki.server_cert, pki.server_key, pki.ca)
    runners = asyncio.run_coroutine_threadsafe(stream_agent.serve(fake, context), loop).result(timeout=30)
    code, body = apiserver.request("POST", "/api/v1/nodes", {"metadata": {"name": NODE}})
    assert code == 201, body
    body["status"] = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": fake.port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady", "message": "test"}],
    }
    assert apiserver.request("PUT", f"/api/v1/nodes/{NODE}/status", body)[0] == 200
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] in (201, 409)
    viewer = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bob-views"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "bob"}],
    }
    code, body = apiserver.request(
        "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", viewer
    )
    assert code in (201, 409), body
    try:
        yield fake
    finally:
        apiserver.request("DELETE", f"/api/v1/nodes/{NODE}")
        for each in runners:
            asyncio.run_coroutine_threadsafe(each.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def make_pod(
    apiserver: ApiServer,
    agent: FakeAgent,
    name: str,
    *containers: str,
    node: str = NODE,
    phase: str = "Running",
) -> None:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox:1.36"} for c in containers]}
    if node:
        spec["nodeName"] = node
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)
    assert code == 201, body
    body["status"] = {"phase": phase}
    code, body = apiserver.request("PUT", f"/api/v1/namespaces/{NS}/pods/{name}/status", body)
    assert code == 200, body
    if node and phase == "Running":
        agent.pods[NS, name] = set(containers)


@pytest.fixture(scope="module")
def pods(apiserver: ApiServer, agent: FakeAgent) -> None:
    make_pod(apiserver, agent, "one", "main")
    make_pod(apiserver, agent, "two", "a", "b")
    make_pod(apiserver, agent, "done", "main", phase="Succeeded")
    make_pod(apiserver, agent, "unplaced", "main", node="")
    make_pod(apiserver, agent, "lost", "main")
    agent.pods.pop((NS, "lost"))  # the API says Running, the agent does not have it


@pytest.fixture(params=WEBSOCKET_KUBECTLS)
def kubectl(request: pytest.FixtureRequest, apiserver: ApiServer, tmp_path: Path) -> Any:
    """A modern kubectl (WebSocket exec) as the lab administrator."""
    binary = KUBECTLS / f"kubectl.{request.param}"
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver, token=ADMIN_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}

    def run(*args: str, check: bool = True, stdin: str | None = None) -> proc.Result:
        return proc.run([str(binary), "-n", NS, *args], timeout=60, check=check, env=env, stdin=stdin)

    return run


def test_exec_output_and_exit_code(kubectl: Any, pods: None, agent: FakeAgent) -> None:
    done = kubectl("exec", "one", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert done.returncode == 3, done
    assert done.stdout == "out\n"
    assert "err\n" in done.stderr
    assert kubectl("exec", "one", "--", "echo", "hello", "world").stdout == "hello world\n"
    path, query = agent.queries[-1]
    assert path == f"/exec/{NS}/one/main"
    assert [v for k, v in query if k == "command"] == ["echo", "hello", "world"]


def test_exec_stdin(kubectl: Any, pods: None) -> None:
    text = "line one\nline two\n" * 1000
    assert kubectl("exec", "-i", "one", "--", "cat", stdin=text).stdout == text
    assert kubectl("exec", "-i", "one", "--", "wc", "-l", stdin=text).stdout.strip() == "2000"


def test_exec_picks_containers_as_upstream(kubectl: Any, pods: None, agent: FakeAgent) -> None:
    assert kubectl("exec", "two", "-c", "b", "--", "true").returncode == 0
    assert agent.queries[-1][0] == f"/exec/{NS}/two/b"
    missing = kubectl("exec", "two", "-c", "x", "--", "true", check=False)
    assert missing.returncode != 0
    assert "container x is not valid for pod two" in missing.stderr, missing.stderr


def test_exec_refusals(kubectl: Any, pods: None) -> None:
    done = kubectl("exec", "done", "--", "true", check=False)
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in done.stderr
    unplaced = kubectl("exec", "unplaced", "--", "true", check=False)
    assert "pod unplaced does not have a host assigned" in unplaced.stderr, unplaced.stderr
    lost = kubectl("exec", "lost", "--", "true", check=False)
    assert lost.returncode != 0
    assert f"pod {NS}/lost is not running on this node (node {NODE})" in lost.stderr, lost.stderr
    nope = kubectl("exec", "one", "--", "/no/such/program", check=False)
    assert nope.returncode == 1
    assert 'exec: "/no/such/program": not found' in nope.stderr


def test_attach_sees_output(kubectl: Any, pods: None) -> None:
    assert "output of the main process" in kubectl("attach", "one").stdout


def exec_path(pod: str, *query: str) -> str:
    return f"/api/v1/namespaces/{NS}/pods/{pod}/exec?" + "&".join(query)


def test_upstream_status_answers(apiserver: ApiServer, pods: None) -> None:
    code, body = apiserver.request("POST", exec_path("one", "command=true"))
    assert (code, body["message"]) == (400, "Upgrade request required")
    code, body = apiserver.request("GET", exec_path("ghost", "command=true"))
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'pods "ghost" not found')
    code, body = apiserver.request("POST", exec_path("one"))
    assert (code, body["message"]) == (400, "you must specify at least 1 command")
    code, body = apiserver.request("POST", exec_path("two", "command=true"))
    assert (code, body["message"]) == (
        400,
        "a container name must be specified for pod two, choose one of: [a b]",
    )
    code, body = apiserver.request("POST", exec_path("done", "command=true"))
    assert (code, body["message"]) == (
        400,
        "cannot exec into a container in a completed pod; current phase is Succeeded",
    )
    code, body = apiserver.request("PUT", exec_path("one", "command=true"))
    assert code == 405, body


def test_view_may_not_exec_edit_may(apiserver: ApiServer, pods: None) -> None:
    for method in ("GET", "POST"):
        code, body = apiserver.request(method, exec_path("one", "command=true"), token=BOB_TOKEN)
        assert code == 403, body
        assert (
            'cannot create resource "pods/exec" in API group "" in the namespace "exec-api"'
            in body["message"]
        )
    code, body = apiserver.request(
        "POST", f"/api/v1/namespaces/{NS}/pods/one/portforward?ports=80", token=BOB_TOKEN
    )
    assert code == 403, body
    editor = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "carol-edits"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "carol"}],
    }
    code, body = apiserver.request(
        "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", editor
    )
    assert code in (201, 409), body
    carol = apiserver.context(apiserver.pki.carol_cert, apiserver.pki.carol_key)
    for sub in ("exec?command=true", "attach?stdout=1", "portforward?ports=80"):
        code, body = apiserver.request(
            "GET", f"/api/v1/namespaces/{NS}/pods/one/{sub}", token=None, context=carol
        )
        assert (code, body["message"]) == (400, "Upgrade request required"), sub  # authorized, then refused


def test_discovery_lists_the_subresources(apiserver: ApiServer) -> None:
    code, body = apiserver.request("GET", "/api/v1")
    assert code == 200
    verbs = {r["name"]: r["verbs"] for r in body["resources"]}
    for sub in ("exec", "attach", "portforward"):
        assert sorted(verbs[f"pods/{sub}"]) == ["create", "get"]


def test_websocket_port_forward_reaches_the_pod(apiserver: ApiServer, pods: None) -> None:
    """A WebSocket client (upstream's channel form) through the apiserver to a local HTTP server."""

    async def http_server() -> tuple[web.AppRunner, int]:
        app = web.Application()

        async def hello(_request: web.Request) -> web.Response:
            return web.Response(text="hello through the tunnel")

        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner, port

    async def main() -> list[bytes]:
        runner, port = await http_server()
        expected_port.append(port)
        context = apiserver.context()
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        url = f"{apiserver.url}/api/v1/namespaces/{NS}/pods/one/portforward?ports={port}"
        got: list[bytes] = []
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(url, protocols=("v4.channel.k8s.io",), headers=headers, ssl=context) as ws,
            ):
                assert ws.protocol == "v4.channel.k8s.io"
                sock = ws.get_extra_info("socket")
                await ws.send_bytes(b"\x00GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
                async with asyncio.timeout(30):
                    async for message in ws:
                        got.append(message.data)
            async with asyncio.timeout(10):  # TLS closes over a few loop turns: let it finish
                while sock.fileno() != -1:
                    await asyncio.sleep(0.01)
        finally:
            await runner.cleanup()
        return got

    expected_port: list[int] = []
    got = asyncio.run(main())
    port = expected_port[0].to_bytes(2, "little")
    assert got[:2] == [b"\x00" + port, b"\x01" + port]
    body = b"".join(m[1:] for m in got[2:] if m[:1] == b"\x00")
    assert body.startswith(b"HTTP/1."), got
    assert body.endswith(b"hello through the tunnel"), got


@pytest.mark.parametrize("version", ["1.20", *(["1.27"] if (KUBECTLS / "kubectl.1.27").exists() else [])])
def test_exec_and_attach_over_spdy(
    version: str, request: pytest.FixtureRequest, admin_env: dict[str, str], pods: None
) -> None:
    """kubectl before 1.29 speaks SPDY/3.1 only (H1's adapters), over the same checks and agent."""
    binary = request.getfixturevalue("kubectl_120") if version == "1.20" else KUBECTLS / "kubectl.1.27"

    def run(*args: str, stdin: str | None = None) -> proc.Result:
        return proc.run([str(binary), "-n", NS, *args], timeout=60, check=False, env=admin_env, stdin=stdin)

    done = run("exec", "one", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout) == (3, "out\n"), done
    assert "err\n" in done.stderr
    text = "over spdy\n" * 5000
    assert run("exec", "-i", "one", "--", "cat", stdin=text).stdout == text
    missing = run("exec", "two", "-c", "x", "--", "true")
    assert "container x is not valid for pod two" in missing.stderr, missing.stderr
    assert "output of the main process" in run("attach", "one").stdout


def port_forward(argv: list[str], env: dict[str, str], remote: int, tmp_path: Path) -> str:
    """Run ``kubectl port-forward pod/one LOCAL:remote``, fetch / through it, stop it."""
    local = free_port()
    out = tmp_path / f"port-forward-{local}.out"
    forwarder = proc.spawn(
        [*argv, "-n", NS, "port-forward", "pod/one", f"{local}:{remote}"], log=out, env=env
    )
    try:
        wait_until(lambda: f"127.0.0.1:{local}" in out.read_text(), "kubectl port-forward listening", 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=30) as answer:
            first = str(answer.read().decode())
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=30) as answer:
            assert answer.read().decode() == first  # a second connection over the same session
        return first
    finally:
        forwarder.stop()


@pytest.fixture
def admin_env(apiserver: ApiServer, tmp_path: Path) -> dict[str, str]:
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver, token=ADMIN_TOKEN)
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(config)}


@pytest.mark.parametrize(
    "how",
    [(v, t) for v in WEBSOCKET_KUBECTLS for t in ("false", "true")],
    ids=lambda how: f"{how[0]}-{'websocket-tunnel' if how[1] == 'true' else 'spdy'}",
)
def test_kubectl_port_forward(
    how: tuple[str, str], admin_env: dict[str, str], agent: FakeAgent, pods: None, tmp_path: Path
) -> None:
    version, tunnel = how
    env = {**admin_env, "KUBECTL_PORT_FORWARD_WEBSOCKETS": tunnel}
    assert port_forward([str(KUBECTLS / f"kubectl.{version}")], env, agent.web_port, tmp_path) == PAGE


def test_kubectl_120_port_forward(
    kubectl_120: Path, admin_env: dict[str, str], agent: FakeAgent, pods: None, tmp_path: Path
) -> None:
    assert port_forward([str(kubectl_120)], admin_env, agent.web_port, tmp_path) == PAGE


def test_kubectl_cp_both_ways(kubectl: Any, pods: None, tmp_path: Path) -> None:
    """``kubectl cp`` is tar over exec stdin/stdout (the fake agent's "container" is this machine)."""
    payload = bytes(range(256)) * 2048  # 512 KiB of every byte value
    source = tmp_path / "up.bin"
    source.write_bytes(payload)
    inside = tmp_path / "inside"
    inside.mkdir()
    kubectl("cp", str(source), f"{NS}/one:{inside}/copied.bin")
    assert (inside / "copied.bin").read_bytes() == payload
    back = tmp_path / "back.bin"
    kubectl("cp", f"{NS}/one:{inside}/copied.bin", str(back))
    assert back.read_bytes() == payload


def test_an_unreachable_agent_is_named(kubectl: Any, apiserver: ApiServer, agent: FakeAgent) -> None:
    """A Node whose agent does not answer (nothing listens on its port): 503 naming the node."""
    dead = "esx-dead"
    code, body = apiserver.request("POST", "/api/v1/nodes", {"metadata": {"name": dead}})
    assert code in (201, 409), body
    node = apiserver.request("GET", f"/api/v1/nodes/{dead}")[1]
    node["status"] = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": free_port()}},
    }
    try:
        assert apiserver.request("PUT", f"/api/v1/nodes/{dead}/status", node)[0] == 200
        if apiserver.request("GET", f"/api/v1/namespaces/{NS}/pods/orphan")[0] == 404:
            make_pod(apiserver, agent, "orphan", "main", node=dead)
        refused = kubectl("exec", "orphan", "--", "true", check=False)
        assert refused.returncode != 0
        wanted = f"error dialing backend: node {dead}: the node agent at https://127.0.0.1:"
        assert wanted in refused.stderr, refused
    finally:  # the session's API server is shared: a NotReady node would change other tests' scheduling
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}/pods/orphan?gracePeriodSeconds=0")
        apiserver.request("DELETE", f"/api/v1/nodes/{dead}")


@pytest.mark.parametrize("version", ["1.30", "1.20"])
def test_exec_it_with_a_terminal(
    version: str, request: pytest.FixtureRequest, admin_env: dict[str, str], pods: None, tmp_path: Path
) -> None:
    """``kubectl exec -it`` in a real terminal (tmux, 120x40): the size reaches the pty, keys are
    answered, the shell's exit code comes back (1.30: WebSocket; 1.20: SPDY)."""
    binary = request.getfixturevalue("kubectl_120") if version == "1.20" else KUBECTLS / "kubectl.1.30"
    env = [f"{k}={v}" for k, v in admin_env.items()]
    command = shlex.join(["env", *env, str(binary), "-n", NS, "exec", "-it", "one", "--", "sh"])
    tmux = ["tmux", "-S", str(tmp_path / "tmux.sock")]

    def pane() -> str:
        return proc.run([*tmux, "capture-pane", "-p", "-t", "tty"], timeout=30).stdout

    def typed(*keys: str) -> None:
        proc.run([*tmux, "send-keys", "-t", "tty", *keys], timeout=30)

    proc.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            "tty",
            "-x",
            "120",
            "-y",
            "40",
            f'{command}; echo "EXIT=$?"; sleep 600',
        ],
        timeout=30,
    )
    try:
        # Keys typed before kubectl has the terminal in raw mode and the stream open can be lost
        # (1.20 once in a loaded suite run): type once the container's shell shows its prompt.
        wait_until(lambda: pane().rstrip().endswith("#"), "the container shell's prompt", 30)
        typed("stty size; echo answer=$((6*7))", "Enter")
        wait_until(lambda: "answer=42" in pane(), "the typed command answered", 30)
        assert "40 120" in pane(), pane()
        typed("exit 5", "Enter")
        wait_until(lambda: "EXIT=5" in pane(), "the shell's exit code back in the terminal", 30)
    finally:
        proc.run([*tmux, "kill-server"], timeout=30, check=False)
