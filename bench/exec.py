"""What ``kubectl exec`` and ``kubectl port-forward`` cost on the lab, against the direct path.

Run as root on a lab that `nestlab up` built:
    .venv/bin/python bench/exec.py --name LAB --runs 30 --size-mb 4

- exec round trip: ``kubectl exec client -- true``, ``--runs`` times, each timed from kubectl's
  start to its exit (kubectl's own start, discovery cache warm after the first, VIP -> API server
  -> agent -> virtio-serial -> pod-init -> fork/exec in the container -> exit status back);
  p50, p90 and max;
- exec stdin: a ``--size-mb`` file written into the web pod through ``kubectl exec -i ... cat``;
- port-forward throughput: that file fetched over HTTP through ``kubectl port-forward`` (SPDY)
  and directly from this machine to the pod's address (the lab's routes on the outer machine),
  alternately, ``--fetches`` times each, in the same run; MB/s of each and their ratio.
Asserts nothing but that the bytes arrive intact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.conftest import KUBECTL
from tests.e2e.labtools import attach, kubectl, wait_phase
from tests.e2e.services import CLIENT
from tests.e2e.workloads import LIMITS, SERVE, WEB

FORWARD_READY_S = 120.0  # kubectl port-forward listening: discovery + the SPDY session on a loaded lab
FETCH_TIMEOUT_S = 300.0  # a few MB over TCG pods on two shared cores


def pod(name: str, image: str, command: list[str]) -> dict[str, object]:
    container = {"name": "main", "image": image, "command": command, "resources": LIMITS}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> tuple[bytes, float]:
    began = time.monotonic()
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as answer:  # noqa: S310 - lab URLs
        body = answer.read()
    return body, time.monotonic() - began


def round_trips(base: list[str], runs: int) -> None:
    """``kubectl exec client -- true``, ``runs`` times."""
    times = []
    for run in range(1, runs + 1):
        began = time.monotonic()
        subprocess.run([*base, "exec", "client", "--", "true"], check=True, capture_output=True)  # noqa: S603
        times.append(time.monotonic() - began)
        print(f"exec {run}: {times[-1]:.3f} s", flush=True)
    print(
        f"kubectl exec -- true, {len(times)} runs: p50 {statistics.median(times):.3f} s, "
        f"p90 {percentile(times, 0.9):.3f} s, max {max(times):.3f} s"
    )


def write_file(base: list[str], size_mb: int) -> str:
    """A random ``size_mb`` file written to the web pod's /www/big through exec stdin; its digest."""
    payload = os.urandom(size_mb * 1024 * 1024)
    began = time.monotonic()
    argv = [*base, "exec", "-i", "web", "--", "sh", "-c", "cat > /www/big"]
    subprocess.run(argv, input=payload, check=True)  # noqa: S603
    took = time.monotonic() - began
    print(f"kubectl exec -i stdin: {size_mb} MB in {took:.2f} s ({size_mb / took:.2f} MB/s)")
    return hashlib.sha256(payload).hexdigest()


def forward(base: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """``kubectl port-forward pod/web LOCAL:80``, once it listens."""
    local = free_port()
    forwarder = subprocess.Popen(  # noqa: S603
        [*base, "port-forward", "pod/web", f"{local}:80"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + FORWARD_READY_S
    stdout = forwarder.stdout
    while stdout is not None and f"127.0.0.1:{local}" not in stdout.readline().decode():
        if time.monotonic() > deadline or forwarder.poll() is not None:
            forwarder.kill()
            forwarder.wait()
            raise SystemExit("kubectl port-forward never listened")
    return forwarder, local


def throughput(urls: dict[str, str], digest: str, size_mb: int, fetches: int) -> None:
    """Each URL fetched ``fetches`` times, alternately; MB/s of each and the ratio."""
    rates: dict[str, list[float]] = {path: [] for path in urls}
    for round_ in range(1, fetches + 1):
        for path, url in urls.items():  # alternate, so a busy moment of the lab hits both
            body, took = fetch(url)
            if hashlib.sha256(body).hexdigest() != digest:
                raise SystemExit(f"{path} fetch {round_}: {len(body)} bytes, not the file written")
            rates[path].append(size_mb / took)
            print(f"{path} fetch {round_}: {took:.2f} s ({rates[path][-1]:.2f} MB/s)", flush=True)
    through, direct = statistics.median(rates["port-forward"]), statistics.median(rates["direct"])
    print(
        f"{size_mb} MB over HTTP, median of {fetches}: port-forward {through:.2f} MB/s, "
        f"direct {direct:.2f} MB/s, ratio {through / direct:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--runs", type=int, default=30, help="exec round trips")
    parser.add_argument("--size-mb", type=int, default=4, help="the file port-forward fetches")
    parser.add_argument("--fetches", type=int, default=3, help="fetches per path")
    args = parser.parse_args()
    lab = attach(args.name)
    namespace = f"bench-exec-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    forwarder: subprocess.Popen[bytes] | None = None
    try:
        for obj in (pod("client", CLIENT, ["sh", "-c", "sleep 36000"]), pod("web", WEB, SERVE)):
            kubectl(lab, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))
        wait_phase(lab, namespace, "client", ("Running",))
        pod_ip = wait_phase(lab, namespace, "web", ("Running",))["status"]["podIP"]
        base = [KUBECTL, "--kubeconfig", str(lab.files.kubeconfig), "-n", namespace]
        round_trips(base, args.runs)
        digest = write_file(base, args.size_mb)
        forwarder, local = forward(base)
        urls = {"port-forward": f"http://127.0.0.1:{local}/big", "direct": f"http://{pod_ip}/big"}
        throughput(urls, digest, args.size_mb, args.fetches)
    finally:
        if forwarder is not None:
            forwarder.terminate()
            forwarder.wait(timeout=30)
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
