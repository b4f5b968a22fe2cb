"""How long a ConfigMap change takes to be visible inside a running pod that mounts it.

Run as root on a lab that `nestlab up` built:
    .venv/bin/python bench/configmap_update.py --name LAB --changes 10

One pod mounts a ConfigMap and prints its file every 0.2 s; `kubectl logs -f` streams that output.
Each change, after a random wait (so changes fall at random points of the agent's re-read cycle),
replaces the ConfigMap (through the VIP) with a new value and times until the pod
prints it: the agent's re-read of the pod's ConfigMaps/Secrets (every 10 s), the new generation
sent to pod-init over virtio-serial, the ``..data`` symlink swap, the container's next read, then
the console -> agent -> API -> kubectl path of the log line (about half a second). Prints p50,
p90 and max; asserts nothing.
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.labtools import KUBECTL, LabApi, attach, kubectl, wait_phase

CHANGE_TIMEOUT_S = 120.0
READER = 'while true; do echo "value=$(cat /cfg/value)"; sleep 0.2; done'


def pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {"name": "reader", "image": "depot:5000/nestlab/client:1", "command": ["sh", "-c", READER],
                 "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}
            ],
            "volumes": [{"name": "cfg", "configMap": {"name": "bench"}}],
        },
    }  # fmt: skip


def follow(argv: list[str], lines: queue.Queue[str]) -> subprocess.Popen[str]:
    """``kubectl logs -f``, each line put on ``lines`` as it arrives."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # noqa: S603

    stdout = process.stdout

    def pump() -> None:
        for line in stdout or ():
            lines.put(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--spread", type=float, default=10.0, help="random wait before each change (s)")
    args = parser.parse_args()
    lab = attach(args.name)
    api = LabApi(lab)
    namespace = f"bench-cm-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    base = f"/api/v1/namespaces/{namespace}"
    lines: queue.Queue[str] = queue.Queue()
    follower = None
    try:
        for kind, body in (("configmaps", {"metadata": {"name": "bench"}, "data": {"value": "v0"}}),
                           ("pods", pod("reader"))):  # fmt: skip
            code, answer = api.request("POST", f"{base}/{kind}", body)
            if code != 201:
                raise SystemExit(f"creating the {kind[:-1]} answered {code}: {answer.get('message')}")
        wait_phase(lab, namespace, "reader", ("Running",))
        argv = [KUBECTL, "--kubeconfig", str(lab.files.kubeconfig), "logs", "-f", "reader", "-n", namespace]
        follower = follow(argv, lines)
        times = []
        for change in range(1, args.changes + 1):
            # a random phase against the agent's 10 s re-read: changing right after the pod showed
            # the last value would always land just after a re-read (the worst case every time)
            time.sleep(random.uniform(0, args.spread))  # noqa: S311 - not cryptography
            began = time.monotonic()
            body = {"metadata": {"name": "bench"}, "data": {"value": f"v{change}"}}
            code, _ = api.request("PUT", f"{base}/configmaps/bench", body)
            if code != 200:
                raise SystemExit(f"update {change} answered {code}")
            while True:
                remaining = CHANGE_TIMEOUT_S - (time.monotonic() - began)
                if remaining <= 0:
                    raise SystemExit(f"value v{change} never showed in the pod")
                try:
                    if lines.get(timeout=remaining) == f"value=v{change}":
                        break
                except queue.Empty:
                    continue
            times.append(time.monotonic() - began)
            print(f"change {change}: visible in the pod after {times[-1]:.2f} s", flush=True)
        ordered = sorted(times)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        print(
            f"ConfigMap update -> visible in the pod, {len(times)} changes: "
            f"p50 {statistics.median(times):.2f} s, p90 {p90:.2f} s, max {ordered[-1]:.2f} s"
        )
    finally:
        if follower is not None:
            follower.kill()
            follower.wait()
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
