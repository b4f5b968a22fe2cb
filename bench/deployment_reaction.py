"""How fast a Deployment turns into pods: create -> pods created -> bound -> all Ready.

Run as root on a lab that `nestlab up` built:
    .venv/bin/python bench/deployment_reaction.py --name LAB --runs 5
Each run POSTs a fresh 3-replica web Deployment through the VIP and watches its pods. "created" is
the Deployment and ReplicaSet controllers' reaction (create -> every replica's pod exists),
"bound" adds the scheduler, "ready" adds image, microVM boot and container start on the hosts.
Times are from just before the POST to the watch event that showed each milestone. The
Deployment is deleted (and its pods waited out) before the next run. Prints every run and the
p50 of each; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import POD_TIMEOUT_S, LabApi, attach, kubectl, wait_for, wait_lab_healthy
from tests.e2e.workloads import ApiWatch, deployment, pod_ready

Obj = dict[str, Any]
MILESTONES = ("created", "bound", "ready")


def reached(pods: list[Obj], replicas: int) -> set[str]:
    """The milestones true of one view of the Deployment's pods (pure)."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    done = {"created"} if len(live) >= replicas else set()
    if sum(1 for p in live if (p.get("spec") or {}).get("nodeName")) >= replicas:
        done.add("bound")
    if sum(1 for p in live if pod_ready(p)) >= replicas:
        done.add("ready")
    return done


class Firsts:
    """The first time each milestone was seen."""

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()

    def seen(self, when: float, objects: dict[str, Obj]) -> None:
        with self.lock:
            for milestone in reached(list(objects.values()), self.replicas):
                self.at.setdefault(milestone, when)

    def complete(self) -> bool:
        with self.lock:
            return all(m in self.at for m in MILESTONES)


def one_run(lab: LiveLab, api: LabApi, namespace: str, name: str, replicas: int) -> dict[str, float]:
    firsts = Firsts(replicas)
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    watch = ApiWatch(api, f"{pods_path}?labelSelector=app%3D{name}", firsts.seen)
    watch.start()
    try:
        if not watch.listed.wait(timeout=60):
            raise SystemExit(f"cannot list {pods_path}: is the API up?")
        began = time.monotonic()
        code, body = api.request(
            "POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment(name, namespace, replicas)
        )
        if code != 201:
            raise SystemExit(f"creating Deployment {name} answered {code}: {body.get('message')}")
        wait_for(firsts.complete, f"{replicas} pods of {name} Ready", timeout=POD_TIMEOUT_S)
    finally:
        watch.stop()
    kubectl(lab, "delete", "deployment", name, "-n", namespace, "--timeout=300s")
    wait_for(
        lambda: not api.items(pods_path, labelSelector=f"app={name}"), f"{name}'s pods gone", timeout=300
    )
    return {m: firsts.at[m] - began for m in MILESTONES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    lab = attach(args.name)
    api = LabApi(lab)
    wait_lab_healthy(lab)
    namespace = f"bench-dr-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    results: list[dict[str, float]] = []
    try:
        for run in range(args.runs):
            results.append(one_run(lab, api, namespace, f"dr{run}", args.replicas))
            row = "  ".join(f"{k} {v:6.2f}s" for k, v in results[-1].items())
            print(f"run {run + 1}/{args.runs}: {row}", flush=True)
    finally:
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    print(f"Deployment of {args.replicas} replicas, from create, p50 of {len(results)} runs:")
    for milestone in MILESTONES:
        values = [r[milestone] for r in results]
        median, low, high = statistics.median(values), min(values), max(values)
        print(f"  pods {milestone:8s} p50 {median:7.2f} s  min {low:7.2f}  max {high:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
