"""How long a 3-replica rolling update takes (maxSurge 1, maxUnavailable 0), watched through the API.

Run as root on a lab that `nestlab up` built:  .venv/bin/python bench/rolling_update.py --name LAB --runs 5
A 3-replica web Deployment (the one the e2e test rolls) is rolled between two images, alternately,
with `kubectl set image`. Each run is timed from just before the command to the first watch event
in which the Deployment is rolled out as `kubectl rollout status` means it: the controller saw
the new generation, and every replica is updated and available with no old pod left. The lowest
number of Ready replicas seen meanwhile (sampled every 0.5 s) is printed beside it. Prints every
run and the p50; asserts nothing.
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
from tests.e2e.labtools import POD_TIMEOUT_S, LabApi, apply, attach, kubectl, wait_for, wait_lab_healthy
from tests.e2e.workloads import NEW_WEB, SURGE, WEB, ApiWatch, PodWatcher, deployment

Obj = dict[str, Any]
NAME = "roll"


def rolled_out(deploy: Obj, image: str) -> bool:
    """The Deployment runs ``image`` everywhere: what `kubectl rollout status` waits for (pure)."""
    spec, state = deploy.get("spec") or {}, deploy.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    want = int(spec.get("replicas", 1))
    return (
        containers[0].get("image") == image
        and int(state.get("observedGeneration") or 0) >= int(deploy["metadata"].get("generation") or 0)
        and int(state.get("updatedReplicas") or 0) == want
        and int(state.get("availableReplicas") or 0) == want
        and int(state.get("replicas") or 0) == want  # no old replica left
    )


class Done:
    """The first time the Deployment was seen rolled out to ``image``."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.at: float | None = None
        self.lock = threading.Lock()

    def seen(self, when: float, objects: dict[str, Obj]) -> None:
        with self.lock:
            if self.at is None and any(
                d["metadata"]["name"] == NAME and rolled_out(d, self.image) for d in objects.values()
            ):
                self.at = when

    def finished(self) -> bool:
        with self.lock:
            return self.at is not None


def one_run(lab: LiveLab, api: LabApi, namespace: str, image: str) -> tuple[float, int]:
    """Seconds from `kubectl set image` to rolled out, and the lowest Ready count meanwhile."""
    done = Done(image)
    watch = ApiWatch(api, f"/apis/apps/v1/namespaces/{namespace}/deployments", done.seen)
    with PodWatcher(api, namespace, f"app={NAME}") as ready:
        watch.start()
        try:
            began = time.monotonic()
            kubectl(lab, "set", "image", f"deployment/{NAME}", f"web={image}", "-n", namespace)
            wait_for(done.finished, f"rolled out to {image}", timeout=POD_TIMEOUT_S)
        finally:
            watch.stop()
    return (done.at or began) - began, ready.lowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lab = attach(args.name)
    api = LabApi(lab)
    wait_lab_healthy(lab)
    namespace = f"bench-ru-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    durations: list[float] = []
    try:
        apply(lab, deployment(NAME, namespace, strategy=SURGE))
        wait = f"--timeout={POD_TIMEOUT_S:.0f}s"
        kubectl(lab, "rollout", "status", f"deployment/{NAME}", "-n", namespace, wait)
        for run in range(args.runs):
            image = NEW_WEB if run % 2 == 0 else WEB
            seconds, lowest = one_run(lab, api, namespace, image)
            durations.append(seconds)
            print(
                f"run {run + 1}/{args.runs}: -> {image}: {seconds:6.1f} s, lowest Ready {lowest}", flush=True
            )
    finally:
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    median, low, high = statistics.median(durations), min(durations), max(durations)
    print(f"3-replica rolling update (maxSurge 1, maxUnavailable 0), {len(durations)} runs:")
    print(f"  duration p50 {median:6.1f} s  min {low:6.1f}  max {high:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
