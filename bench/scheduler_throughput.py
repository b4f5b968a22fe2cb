"""Scheduler throughput: pods bound per second with 100 pending pods, and how they spread.

Stands up on loopback a one-member etcd and the real nestlab-apiserver, registers ``--nodes`` (3)
Ready Node objects (no agents: nothing boots, only placement and binding are measured), then per run creates
``--pods`` pending pods of one label set, runs :class:`nestlab.controller.scheduler.Scheduler`
passes until every pod is bound, and times that. Each run is repeated with the scheduler limited
to one request in flight (one pod after the other, as the scheduler bound before) to show what
concurrent binding buys; the ``Scheduled`` Events are written after the bindings, so both the
time to bind every pod and the time until the Events are written are shown. Also times the pure
placement decisions for the same pods without any API call, so the split between deciding and
binding is visible. Prints per-run figures, the median of the runs and the spread of pods over the nodes.

    .venv/bin/python bench/scheduler_throughput.py --pods 100 --runs 5
    .venv/bin/python bench/scheduler_throughput.py --pods 2000 --nodes 50 --runs 3   # the 50 x 40 shape
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback import one_member_etcd, pki
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import PODS
from nestlab.controller import placement
from nestlab.controller.scheduler import MAX_IN_FLIGHT, Scheduler
from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, start_apiserver

NS = "bench-sched"
NODES = 3  # hosts registered unless --nodes says otherwise
CREATE_IN_FLIGHT = 16  # concurrent pod creations while preparing a run (not measured)
MAX_PASSES = 20  # one pass should bind them all; more means something is wrong: stop, do not spin


def node_names(count: int) -> list[str]:
    return [f"esx-{i:02d}" for i in range(1, count + 1)]


def register_nodes(api: ApiServer, names: list[str]) -> None:
    """Ready hosts of 4 cpu / 8Gi / 110 pods, as an agent would register them."""
    for name in names:
        code, created = api.request(
            "POST", "/api/v1/nodes", {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}
        )
        if code != 201:
            raise SystemExit(f"registering node {name} answered {code}: {created}")
        created["status"] = {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        }
        code, answer = api.request("PUT", f"/api/v1/nodes/{name}/status", created)
        if code != 200:
            raise SystemExit(f"node {name} status answered {code}: {answer}")


def bench_pod(index: int) -> dict[str, Any]:
    """One replica of a web tier: same labels for all, small requests (so resources never run out)."""
    return {
        "metadata": {"name": f"web-{index:03d}", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "web", "image": "busybox:1.36", "resources": {"requests": {"cpu": "10m"}}}
            ]
        },
    }


async def create_pods(client: ApiClient, count: int) -> None:
    limit = asyncio.Semaphore(CREATE_IN_FLIGHT)

    async def one(index: int) -> None:
        async with limit:
            await client.create(PODS, NS, bench_pod(index))

    await asyncio.gather(*(one(i) for i in range(count)))


async def delete_pods(client: ApiClient) -> None:
    limit = asyncio.Semaphore(CREATE_IN_FLIGHT)
    items = (await client.list(PODS, NS))["items"]

    async def one(name: str) -> None:
        async with limit:
            await client.delete(PODS, NS, name, grace=0)

    await asyncio.gather(*(one(p["metadata"]["name"]) for p in items))


async def one_run(client: ApiClient, count: int, in_flight: int) -> tuple[float, float, Counter[str], int]:
    """(seconds from the first pass to all bound, to all Scheduled Events written, pods per node,
    passes used)."""
    await create_pods(client, count)
    scheduler = Scheduler(client, max_in_flight=in_flight)
    passes, bound = 0, 0
    start = time.perf_counter()
    while bound < count:
        passes += 1
        if passes > MAX_PASSES:
            raise SystemExit(f"{count - bound} pods still unbound after {MAX_PASSES} passes")
        bound += sum(1 for placed in await scheduler.pass_once() if placed.node)
    elapsed = time.perf_counter() - start
    await scheduler.flush()
    with_events = time.perf_counter() - start
    hosts = Counter(p["spec"].get("nodeName", "") for p in (await client.list(PODS, NS))["items"])
    await delete_pods(client)
    return elapsed, with_events, hosts, passes


def decisions_only(count: int, names: list[str]) -> float:
    """Seconds to decide ``count`` placements in one snapshot of ``names``, no API involved."""
    nodes = [
        {
            "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            },
        }
        for n in names
    ]
    pods = [{**bench_pod(i), "status": {"phase": "Pending"}} for i in range(count)]
    for pod in pods:
        pod["metadata"]["namespace"] = NS
    start = time.perf_counter()
    snapshot = placement.Snapshot(nodes, [])
    for pod in pods:
        decision = snapshot.choose(pod)
        if decision.node is not None:
            snapshot.assume(pod, decision.node)
    return time.perf_counter() - start


async def measure(api: ApiServer, count: int, runs: int, names: list[str]) -> None:
    client = ApiClient(Credentials(api.url, ca=api.pki.ca, token=ADMIN_TOKEN))
    try:
        for in_flight in (1, MAX_IN_FLIGHT):
            rates, totals = [], []
            for run in range(runs):
                elapsed, with_events, hosts, passes = await one_run(client, count, in_flight)
                rates.append(count / elapsed)
                totals.append(with_events)
                shown = " ".join(f"{h}={n}" for h, n in sorted(hosts.items()))
                print(
                    f"  in-flight {in_flight:2d} run {run + 1}: {count} pods bound in {elapsed:5.2f}s "
                    f"= {count / elapsed:6.1f} pods/s ({passes} pass(es); events written by "
                    f"{with_events:5.2f}s); {shown}",
                    flush=True,
                )
            print(
                f"in-flight {in_flight:2d}: median {statistics.median(rates):.1f} pods bound/s over "
                f"{runs} runs (all Scheduled events written after {statistics.median(totals):.2f}s)",
                flush=True,
            )
    finally:
        await client.close()
    pure = statistics.median(decisions_only(count, names) for _ in range(runs))
    print(f"placement decisions alone: {count} pods in {pure * 1000:.1f} ms (median of {runs})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=NODES, help="Ready hosts of 110 pods each")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nlsched-"))
    started: list[proc.Process] = []
    try:
        certs = pki(work)
        etcd_url, etcd = one_member_etcd(work)
        started.append(etcd)
        url, api_proc, log = start_apiserver(certs, [etcd_url], work)
        started.append(api_proc)
        api = ApiServer(url, certs, log, api_proc)
        names = node_names(args.nodes)
        register_nodes(api, names)
        api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        print(f"{args.pods} pending pods, {len(names)} nodes, {args.runs} runs per setting:", flush=True)
        asyncio.run(measure(api, args.pods, args.runs, names))
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
