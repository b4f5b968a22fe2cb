"""Time from a host failure to a Deployment back at full strength, split into its phases.

Run as root on a lab that `nestlab up` built:  .venv/bin/python bench/host_failure.py --name LAB --runs 5
Each run deploys a fresh 3-replica web Deployment (so the replicas spread over the hosts again),
stops the host of one replica with `nestlab node stop` (with the cp/lb nodes placed on it) and
watches the API (nodes, and pods of the Deployment) until 3 replicas are Ready elsewhere. Phases,
each from the end of the previous one, times as this process saw the watch events:

- detection: the stop returned -> the Node is NotReady or carries the unreachable taint
  (the node Lease expired; the node lifecycle controller noticed);
- eviction: -> every pod of the failed host is being deleted (tolerationSeconds, from the lab
  spec's controlPlane.podEvictionSeconds, ran out; the taint manager deleted them);
- scheduling: -> the replacements exist and are bound to other hosts (ReplicaSet + scheduler);
- boot: -> the replacements are Ready (image on the host, microVM boot, container start).

The phases' logic is nestlab.drills.timeline, shared with `nestlab drill host-failure`.
Then it starts the host again, waits for the lab to be whole and deletes the Deployment. Prints
every run and the p50 of each phase; asserts nothing. The stopped host never carries the depot
(the replacements pull from it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nestlab.drills.timeline import PHASES, Timeline, split
from tests.e2e.conftest import LiveLab, nestlab
from tests.e2e.labtools import (
    POD_TIMEOUT_S,
    RESTORE_TIMEOUT_S,
    LabApi,
    apply,
    attach,
    kubectl,
    nodes,
    placed_on,
    wait_for,
    wait_lab_healthy,
)
from tests.e2e.workloads import ApiWatch, deployment, pod_ready

Obj = dict[str, Any]


def one_run(lab: LiveLab, api: LabApi, namespace: str, run: int, replicas: int) -> dict[str, float]:
    name = f"hf{run}"
    apply(lab, deployment(name, namespace, replicas=replicas))
    kubectl(
        lab, "rollout", "status", f"deployment/{name}", "-n", namespace, f"--timeout={POD_TIMEOUT_S:.0f}s"
    )
    code, body = api.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{name}")
    placed = {p["metadata"]["uid"]: p["spec"]["nodeName"] for p in body.get("items") or [] if pod_ready(p)}
    spared = placed_on(lab, "depot")
    candidates = [h for h in nodes(lab, "host") if h != spared and h in placed.values()]
    if code != 200 or not candidates:
        raise SystemExit(f"no replica on a host that can be stopped (the depot is on {spared}): {placed}")
    host = "esx-02" if "esx-02" in candidates else candidates[0]
    timeline = Timeline(host, replicas)
    watches = [
        ApiWatch(api, "/api/v1/nodes", timeline.nodes_seen),
        ApiWatch(api, f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{name}", timeline.pods_seen),
    ]
    for watch in watches:
        watch.start()
    try:
        began = time.monotonic()
        nestlab("node", "stop", host, "--name", lab.name)
        stopped = time.monotonic()
        with timeline.lock:
            timeline.old = {uid for uid, on in placed.items() if on == host}
        wait_for(timeline.complete, f"{name}: {replicas} replicas Ready again", timeout=POD_TIMEOUT_S)
    finally:
        for watch in watches:
            watch.stop()
        nestlab("node", "start", host, "--name", lab.name, timeout=RESTORE_TIMEOUT_S)
        wait_lab_healthy(lab)
        kubectl(lab, "delete", "deployment", name, "-n", namespace, "--timeout=300s", check=False)
    seconds = split(stopped, timeline.first)
    seconds["stop command"] = stopped - began
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    lab = attach(args.name)
    api = LabApi(lab)
    wait_lab_healthy(lab)
    namespace = f"bench-hf-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    results: list[dict[str, float]] = []
    try:
        for run in range(args.runs):
            results.append(one_run(lab, api, namespace, run, args.replicas))
            row = "  ".join(f"{k} {v:6.1f}s" for k, v in results[-1].items())
            print(f"run {run + 1}/{args.runs}: {row}", flush=True)
    finally:
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    print(f"host failure -> {args.replicas} replicas Ready elsewhere, p50 of {len(results)} runs:")
    for key in (*PHASES, "total", "stop command"):
        values = [r[key] for r in results]
        median, low, high = statistics.median(values), min(values), max(values)
        print(f"  {key:13s} p50 {median:6.1f} s  min {low:6.1f}  max {high:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
