"""exec, attach, cp and port-forward into vSphere Pods on the teaching lab (issue 13 item 5).

kubectl -> VIP -> API server (``pods/exec``...) -> the agent on the pod's host -> virtio-serial ->
pod-init -> a process inside the container. Each test drives a real kubectl, the modern one
(WebSocket for exec/attach/cp, SPDY or SPDY-in-WebSocket for port-forward) and Debian's 1.20
(SPDY for everything):

- ``kubectl exec``: output, stderr, stdin, exit code propagation, a missing container refused in
  upstream's words;
- ``kubectl exec -it`` with a real terminal (tmux): a shell prompt, the terminal's size inside
  the pod, a typed command answered, the shell's exit code back to the terminal;
- ``kubectl cp`` both ways (tar over exec), byte for byte;
- ``kubectl port-forward`` fetching the web pod's page;
- ``kubectl attach`` seeing the container's output as it is written.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import KUBECTL, LiveLab
from tests.e2e.labtools import apply, kubectl, wait_for, wait_phase
from tests.e2e.services import CLIENT
from tests.e2e.workloads import LIMITS, SERVE, WEB
from tests.integration.api.conftest import free_port

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
TICKER = 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 1; done'
TMUX_DEADLINE_S = 120.0  # a prompt through VIP -> API -> agent -> a TCG pod on a loaded lab


def pod(name: str, namespace: str, image: str, command: list[str], *containers: str) -> Obj:
    names = containers or ("main",)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "containers": [
                {"name": c, "image": image, "command": command, "resources": LIMITS} for c in names
            ]
        },
    }


NS = "exec-e2e"


@pytest.fixture(scope="module")
def namespace(agents: LiveLab) -> Iterator[str]:
    """One namespace for the module, its pods booted together once (TCG pods boot slowly)."""
    kubectl(agents, "create", "namespace", NS)
    try:
        pods = (
            pod("client", NS, CLIENT, ["sh", "-c", "sleep 3600"], "main", "side"),
            pod("web", NS, WEB, SERVE),
            pod("ticker", NS, CLIENT, ["sh", "-c", TICKER]),
        )
        for obj in pods:
            apply(agents, obj)
        for obj in pods:
            seen = wait_phase(agents, NS, obj["metadata"]["name"], ("Running", "Failed"))
            assert seen["status"]["phase"] == "Running", seen["status"]
        yield NS
    finally:
        kubectl(agents, "delete", "namespace", NS, "--wait=false", check=False)


@pytest.fixture
def client_pod(namespace: str) -> str:
    return "client"


def test_exec_output_stdin_and_exit_code(
    agents: LiveLab, namespace: str, client_pod: str, kubectl_binary: str
) -> None:
    def exec_(*command: str, stdin: str | None = None) -> Any:
        return kubectl(
            agents,
            "exec",
            *(["-i"] if stdin is not None else []),
            "-n",
            namespace,
            client_pod,
            "-c",
            "main",
            "--",
            *command,
            stdin=stdin,
            check=False,
            binary=kubectl_binary,
        )

    done = exec_("sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3, done
    assert done.stdout == "out\n"
    assert "err" in done.stderr
    assert exec_("cat", stdin="typed into the pod\n").stdout == "typed into the pod\n"
    text = "".join(f"line {i}\n" for i in range(20000))  # ~200 KB: many stdin frames, backpressure
    counted = exec_("sh", "-c", "cat | wc -c", stdin=text)
    assert counted.stdout.strip() == str(len(text)), counted
    assert exec_("true").returncode == 0
    nope = exec_("/no/such/program")
    assert nope.returncode != 0
    assert "/no/such/program" in nope.stderr, nope


def test_exec_into_a_missing_container_is_refused_as_upstream(
    agents: LiveLab, namespace: str, client_pod: str, kubectl_binary: str
) -> None:
    refused = kubectl(
        agents,
        "exec",
        "-n",
        namespace,
        client_pod,
        "-c",
        "nope",
        "--",
        "true",
        check=False,
        binary=kubectl_binary,
    )
    assert refused.returncode != 0
    assert f"container nope is not valid for pod {client_pod}" in refused.stderr, refused.stderr


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """A tmux server of the test's own (its own socket), killed at the end whatever happens."""
    socket = tmp_path / "tmux.sock"
    argv = ["tmux", "-S", str(socket)]
    yield argv
    subprocess.run([*argv, "kill-server"], check=False, capture_output=True, timeout=30)  # noqa: S603


def pane(tmux: list[str]) -> str:
    return subprocess.run(  # noqa: S603
        [*tmux, "capture-pane", "-p", "-t", "tty"], check=True, capture_output=True, text=True, timeout=30
    ).stdout


def wait_pane(tmux: list[str], text: str) -> str:
    deadline = time.monotonic() + TMUX_DEADLINE_S
    while time.monotonic() < deadline:
        seen = pane(tmux)
        if text in seen:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"{text!r} never showed in the terminal; it shows:\n{pane(tmux)}")


def keys(tmux: list[str], *typed: str) -> None:
    subprocess.run([*tmux, "send-keys", "-t", "tty", *typed], check=True, timeout=30)  # noqa: S603


def test_exec_it_with_a_real_terminal(
    agents: LiveLab, namespace: str, client_pod: str, tmux: list[str]
) -> None:
    config = str(agents.files.kubeconfig)
    command = shlex.join(
        [KUBECTL, "--kubeconfig", config, "exec", "-it", "-n", namespace, client_pod, "--", "sh"]
    )
    script = f'{command}; echo "KUBECTL-EXIT=$?"; sleep 600'
    subprocess.run(  # noqa: S603
        [*tmux, "new-session", "-d", "-s", "tty", "-x", "120", "-y", "40", script], check=True, timeout=30
    )
    wait_pane(tmux, "/ #")  # the pod's shell prompt (root, in /; tmux drops the trailing blank)
    keys(tmux, "stty size; echo answer=$((6*7))", "Enter")
    seen = wait_pane(tmux, "answer=42")
    assert "40 120" in seen, seen  # the terminal's rows and columns reached the pod's pty
    keys(tmux, "exit 5", "Enter")
    wait_pane(tmux, "KUBECTL-EXIT=5")


def test_cp_both_ways(
    agents: LiveLab, namespace: str, client_pod: str, kubectl_binary: str, tmp_path: Path
) -> None:
    payload = os.urandom(256 * 1024)
    source = tmp_path / "up.bin"
    source.write_bytes(payload)
    kubectl(
        agents,
        "cp",
        str(source),
        f"{namespace}/{client_pod}:/tmp/up.bin",
        "-c",
        "main",
        binary=kubectl_binary,
    )
    inside = kubectl(
        agents, "exec", "-n", namespace, client_pod, "-c", "main", "--", "sh", "-c", "cat /tmp/up.bin | wc -c"
    )
    assert inside.stdout.strip() == str(len(payload))
    back = tmp_path / "back.bin"
    kubectl(
        agents, "cp", f"{namespace}/{client_pod}:/tmp/up.bin", str(back), "-c", "main", binary=kubectl_binary
    )
    assert hashlib.sha256(back.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()


def listening(out: Path, local: int) -> Callable[[], bool]:
    return lambda: f"127.0.0.1:{local}" in out.read_text()


def test_port_forward_fetches_the_web_page(
    agents: LiveLab, namespace: str, kubectl_binary: str, tmp_path: Path
) -> None:
    # the modern kubectl: SPDY, then SPDY tunneled in a WebSocket (the default from 1.31 on)
    tunnels = ("false", "true") if kubectl_binary == KUBECTL else ("false",)
    for tunnel in tunnels:
        local = free_port()
        out = tmp_path / f"port-forward-{tunnel}.out"
        argv = [kubectl_binary, "--kubeconfig", str(agents.files.kubeconfig), "port-forward", "-n", namespace]
        env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": tunnel}
        with out.open("wb") as sink:
            forwarder = subprocess.Popen(  # noqa: S603
                [*argv, "pod/web", f"{local}:80"], stdout=sink, stderr=subprocess.STDOUT, env=env
            )
        try:
            wait_for(listening(out, local), "kubectl port-forward listening", 120)
            for _ in range(3):  # several connections over one port-forward session
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=60) as answer:
                    assert "nestlab vSphere Pod" in answer.read().decode(), tunnel
        finally:
            forwarder.terminate()
            forwarder.wait(timeout=30)


def test_attach_sees_the_output(agents: LiveLab, namespace: str, kubectl_binary: str, tmp_path: Path) -> None:
    out = tmp_path / "attach.out"
    argv = [kubectl_binary, "--kubeconfig", str(agents.files.kubeconfig), "attach", "-n", namespace, "ticker"]
    with out.open("wb") as sink:
        attached = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for(lambda: "tick " in out.read_text(), "the container's output through attach", 120)
        first = int(out.read_text().split("tick ")[1].split()[0])
        wait_for(lambda: f"tick {first + 2}" in out.read_text(), "later output as it is written", 120)
    finally:
        attached.terminate()
        attached.wait(timeout=30)
