"""``kubectl logs`` (1.20 and the new ones) -> the real apiserver -> a real agent log endpoint (mTLS).

The agent side is nestlab's own log endpoint and console collector, serving a pod directory laid
out as the agent lays it out; this test writes the console as QEMU would and moves the
containers' states as pod-init's events would. No VM is booted.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from nestlab.agent import logs, logstore
from nestlab.agent.logstore import ContainerView, PodLogs
from nestlab.api import nodeagent
from nestlab.runtime import proc
from tests.integration.api.conftest import ApiServer, free_port, wait_until

pytestmark = pytest.mark.integration

NODE = "esx-logs"
HOUR_NS = 3600 * 1_000_000_000


@dataclass
class FakePods:
    """The agent's pods as the log endpoint sees them: directories, console files, container states."""

    root: Path
    pods: dict[tuple[str, str], PodLogs] = field(default_factory=dict)
    fixed_ns: int | None = None
    """When set, the collector stamps lines with this time (to make old lines); else the real time."""

    def clock(self) -> int:
        return self.fixed_ns if self.fixed_ns is not None else time.time_ns()

    def add(self, namespace: str, name: str, *containers: str) -> PodLogs:
        directory = self.root / f"{namespace}-{name}"
        (directory / "vm").mkdir(parents=True)
        views = {c: ContainerView(c, "running", "", 0, False) for c in containers}
        self.pods[namespace, name] = PodLogs(namespace, name, directory, views)
        return self.pods[namespace, name]

    def set(self, namespace: str, name: str, view: ContainerView) -> None:
        pod = self.pods[namespace, name]
        self.pods[namespace, name] = PodLogs(
            namespace, name, pod.directory, {**pod.containers, view.name: view}
        )

    def console(self, namespace: str, name: str, *lines: str) -> None:
        with (self.pods[namespace, name].directory / "vm" / "console.log").open("a") as handle:
            handle.writelines(line + "\n" for line in lines)

    def stored(self, namespace: str, name: str, container: str, instance: int) -> str:
        path = self.pods[namespace, name].log_file(container, instance)
        return path.read_text() if path.exists() else ""


@dataclass
class LogAgent:
    pods: FakePods
    port: int
    following: list[tuple[str, str, str]]
    """The agent's open followed logs (``logs.FOLLOWING``)."""
    loop: asyncio.AbstractEventLoop
    """The agent's loop, where the collector's passes run."""

    def between_passes(self, change: Callable[[], None]) -> None:
        """Run ``change`` on the agent's loop, so that no collector pass sees only part of it.

        A pass reads the pods' records first and their consoles after: a restart marked from the
        test's thread in the middle of a pass would file the new instance's lines under the old one.
        """
        done = asyncio.run_coroutine_threadsafe(_call(change), self.loop)
        done.result(timeout=30)

    def node(self) -> dict[str, Any]:
        return {
            "metadata": {"name": NODE},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            },
        }


async def _call(change: Callable[[], None]) -> None:
    change()


@pytest.fixture(scope="module")
def log_agent(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogAgent]:
    """The agent's log endpoint and collector on 127.0.0.1 (lab-CA certificate, client certs required),
    and a Node advertising it."""
    pods = FakePods(tmp_path_factory.mktemp("agent-pods"))
    collector = logstore.Collector(lambda: list(pods.pods.values()), clock_ns=pods.clock)
    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="log-agent", daemon=True)
    thread.start()
    pki = apiserver.pki
    context = logs.tls_context(pki.server_cert, pki.server_key, pki.ca)

    async def start() -> tuple[web.AppRunner, asyncio.Task[None]]:
        lookup = lambda namespace, name: pods.pods.get((namespace, name))  # noqa: E731
        runner = await logs.serve(lookup, "127.0.0.1", port, context, refresh=collector.ingest)
        return runner, asyncio.create_task(collector.run(0.1))

    runner, task = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    code, body = apiserver.request("POST", "/api/v1/nodes", node)
    assert code == 201, body
    body["status"] = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady", "message": "test"}],
    }
    code, body = apiserver.request("PUT", f"/api/v1/nodes/{NODE}/status", body)
    assert code == 200, body
    try:
        yield LogAgent(pods, port, runner.app[logs.FOLLOWING], loop)
    finally:
        apiserver.request("DELETE", f"/api/v1/nodes/{NODE}")

        async def stop() -> None:
            task.cancel()
            await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def make_pod(apiserver: ApiServer, namespace: str, name: str, *containers: str) -> None:
    code, body = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    assert code in (201, 409), body
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": NODE, "containers": [{"name": c, "image": "busybox:1.36"} for c in containers]},
    }
    code, body = apiserver.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert code == 201, body


def namespace_for(kubectl: Callable[..., proc.Result], what: str) -> str:
    version = str(kubectl.version)  # type: ignore[attr-defined]
    return f"logs-{what}-" + version.replace(".", "-")


COLLECT_S = 30.0  # the agent reads consoles every 0.25 s; a bound for a loaded machine, never reached


def collected(
    agent: LogAgent, namespace: str, name: str, container: str, *, instance: int, text: str
) -> None:
    wait_until(
        lambda: text in agent.pods.stored(namespace, name, container, instance),
        f"{text!r} collected",
        COLLECT_S,
    )


def test_logs_options(kubectl: Callable[..., proc.Result], apiserver: ApiServer, log_agent: LogAgent) -> None:
    ns = namespace_for(kubectl, "opts")
    make_pod(apiserver, ns, "web", "httpd")
    pods = log_agent.pods
    pods.add(ns, "web", "httpd")
    pods.fixed_ns = time.time_ns() - 2 * HOUR_NS  # the first instance's lines are two hours old
    pods.console(ns, "web", "[    0.2] kernel noise", "[httpd] first run 1", "[httpd] first run 2")
    collected(log_agent, ns, "web", "httpd", instance=0, text="first run 2")
    with pytest.raises(
        proc.ProcessError, match=r'previous terminated container "httpd" in pod "web" not found'
    ):
        kubectl("logs", "-n", ns, "web", "--previous")

    def restarted() -> None:
        pods.set(ns, "web", ContainerView("httpd", "running", "", 1, True))  # pod-init restarted it
        pods.fixed_ns = None
        pods.console(ns, "web", "[httpd] second run 1", "[httpd] second run 2", "[httpd] second run 3")

    log_agent.between_passes(restarted)
    collected(log_agent, ns, "web", "httpd", instance=1, text="second run 3")

    def logs(*options: str) -> str:
        return kubectl("logs", "-n", ns, "web", *options).stdout

    assert logs() == "second run 1\nsecond run 2\nsecond run 3\n"
    assert logs("--previous") == "first run 1\nfirst run 2\n"
    assert logs("-c", "httpd", "--tail=2") == "second run 2\nsecond run 3\n"
    assert logs("--limit-bytes=8") == "second r"
    stamped = logs("--timestamps", "--tail=1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z second run 3\n", stamped), stamped
    assert logs("--previous", "--since=1h") == ""
    assert logs("--since=1h") == "second run 1\nsecond run 2\nsecond run 3\n"
    an_hour_ago = datetime.fromtimestamp(time.time() - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert logs("--previous", f"--since-time={an_hour_ago}") == ""
    assert logs(f"--since-time={an_hour_ago}", "--tail=1") == "second run 3\n"
    with pytest.raises(proc.ProcessError, match="container nope is not valid for pod web"):
        kubectl("logs", "-n", ns, "web", "-c", "nope")


def test_which_container(
    kubectl: Callable[..., proc.Result], apiserver: ApiServer, log_agent: LogAgent
) -> None:
    ns = namespace_for(kubectl, "which")
    make_pod(apiserver, ns, "two", "a", "b")
    log_agent.pods.add(ns, "two", "a", "b")
    log_agent.pods.console(ns, "two", "[a] from a", "[b] from b")
    collected(log_agent, ns, "two", "b", instance=0, text="from b")
    assert kubectl("logs", "-n", ns, "two", "-c", "b").stdout == "from b\n"
    code, body = apiserver.request("GET", f"/api/v1/namespaces/{ns}/pods/two/log")
    assert code == 400, body
    assert body["message"] == "a container name must be specified for pod two, choose one of: [a b]"
    unnamed = kubectl("logs", "-n", ns, "two", check=False)
    if kubectl.version == "1.20":  # type: ignore[attr-defined]
        assert "a container name must be specified for pod two, choose one of: [a b]" in unnamed.stderr
    else:  # newer kubectl picks the first container itself, and says so
        assert unnamed.stdout == "from a\n", unnamed
        assert 'Defaulted container "a" out of: a, b' in unnamed.stderr
    log_agent.pods.set(ns, "two", ContainerView("b", "waiting", "ContainerCreating", 0, False))
    waiting = kubectl("logs", "-n", ns, "two", "-c", "b", check=False)
    assert 'container "b" in pod "two" is waiting to start: ContainerCreating' in waiting.stderr


def test_a_pod_without_a_node_has_an_empty_log(apiserver: ApiServer) -> None:
    ns = "logs-pending"
    code, body = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    assert code in (201, 409), body
    pod = {"metadata": {"name": "pending"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert apiserver.request("POST", f"/api/v1/namespaces/{ns}/pods", pod)[0] == 201
    assert apiserver.request("GET", f"/api/v1/namespaces/{ns}/pods/pending/log") == (200, "")


def test_invalid_options_are_422(apiserver: ApiServer, log_agent: LogAgent) -> None:
    code, body = apiserver.request("GET", "/api/v1/namespaces/default/pods/any/log?tailLines=-1")
    assert code == 422, body
    assert (
        body["message"]
        == 'PodLogOptions "any" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0'
    )


def test_follow_streams_until_the_container_ends(
    kubectl: Callable[..., proc.Result], apiserver: ApiServer, log_agent: LogAgent, tmp_path: Path
) -> None:
    ns = namespace_for(kubectl, "follow")
    make_pod(apiserver, ns, "tail", "main")
    pods = log_agent.pods
    pods.add(ns, "tail", "main")
    pods.console(ns, "tail", "[main] before")
    collected(log_agent, ns, "tail", "main", instance=0, text="before")
    out = tmp_path / "follow.out"
    argv = [kubectl.argv0, "logs", "-f", "-n", ns, "tail"]  # type: ignore[attr-defined]
    follower = proc.spawn(argv, log=out, env=kubectl.env)  # type: ignore[attr-defined]
    try:
        wait_until(lambda: "before\n" in out.read_text(), "the existing line", 20)
        for i in range(3):
            pods.console(ns, "tail", f"[main] live {i}")
            wait_until(lambda i=i: f"live {i}\n" in out.read_text(), f"live line {i} while following", 20)
        assert follower.poll() is None, out.read_text()  # still following a running container
        pods.console(ns, "tail", "[main] last words")
        pods.set(ns, "tail", ContainerView("main", "terminated", "Completed", 0, False))
        wait_until(lambda: follower.poll() is not None, "kubectl logs -f to end with the container", 20)
        assert follower.poll() == 0, out.read_text()
        assert out.read_text() == "before\nlive 0\nlive 1\nlive 2\nlast words\n"
    finally:
        follower.stop()


def test_a_follower_that_goes_away_releases_the_agent(
    kubectl: Callable[..., proc.Result], apiserver: ApiServer, log_agent: LogAgent, tmp_path: Path
) -> None:
    ns = namespace_for(kubectl, "gone")
    make_pod(apiserver, ns, "quiet", "main")
    log_agent.pods.add(ns, "quiet", "main")
    log_agent.pods.console(ns, "quiet", "[main] hello")
    collected(log_agent, ns, "quiet", "main", instance=0, text="hello")
    out = tmp_path / "follow.out"
    argv = [kubectl.argv0, "logs", "-f", "-n", ns, "quiet"]  # type: ignore[attr-defined]
    follower = proc.spawn(argv, log=out, env=kubectl.env)  # type: ignore[attr-defined]
    try:
        wait_until(lambda: "hello\n" in out.read_text(), "the first line", 20)
        assert (ns, "quiet", "main") in log_agent.following
    finally:
        follower.stop()
    # the container still runs and writes nothing: only noticing the client left ends the stream
    wait_until(lambda: (ns, "quiet", "main") not in log_agent.following, "the agent's stream released", 20)


def test_the_shared_client_follows_the_agent_directly(apiserver: ApiServer, log_agent: LogAgent) -> None:
    """The node-agent client alone (mutual TLS, no idle timeout): chunks arrive as lines are written."""
    pods, ns = log_agent.pods, "direct"
    pods.add(ns, "p", "c")
    pods.console(ns, "p", "[c] one")
    collected(log_agent, ns, "p", "c", instance=0, text="one")
    tls = nodeagent.client_tls(apiserver.pki.ca, apiserver.pki.alice_cert, apiserver.pki.alice_key)
    params = {"follow": "true", "timestamps": "true"}

    async def follow() -> str:
        seen = ""
        async with nodeagent.stream(
            log_agent.node(), f"/containerLogs/{ns}/p/c", params, tls, idle_timeout=None
        ) as answer:
            chunks = answer.chunks()
            while "one" not in seen:
                seen += (await asyncio.wait_for(anext(chunks), 20)).decode()
            pods.console(ns, "p", "[c] two")
            while "two" not in seen:
                seen += (await asyncio.wait_for(anext(chunks), 20)).decode()
            pods.set(ns, "p", ContainerView("c", "terminated", "Error", 0, False))
            async with asyncio.timeout(20):
                seen += b"".join([chunk async for chunk in chunks]).decode()
        return seen

    text = asyncio.run(follow())
    assert [line.split(" ", 1)[1] for line in text.splitlines()] == ["one", "two"]
    with pytest.raises(nodeagent.AgentAnswerError) as caught:
        asyncio.run(follow_previous(log_agent, tls))
    assert (caught.value.status, caught.value.text) == (
        400,
        'previous terminated container "c" in pod "p" not found',
    )


async def follow_previous(agent: LogAgent, tls: Any) -> None:
    async with nodeagent.stream(agent.node(), "/containerLogs/direct/p/c", {"previous": "true"}, tls):
        pass
