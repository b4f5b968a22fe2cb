"""Pod throughput: creates/s through the API, binds/s by the scheduler, Running/s on simulated hosts.

Targets a lab through its VIP (``--lab NAME``, the lab's admin certificate) or a throwaway
loopback control plane (``--loopback``: a one-member etcd and the real nestlab-apiserver, run from
the current directory's ``nestlab`` package, so the same script measures two trees side by side).
Each run, in a fresh namespace of its own:

1. ``--clients`` concurrent API clients (each its own connections) create ``--pods`` pods;
2. a :class:`~nestlab.controller.scheduler.Scheduler` of its own (``schedulerName``
   ``nestlab-bench``, so the lab's scheduler leaves these pods alone) binds them all;
3. the simulated hosts (:mod:`nestlab.sim`, ``--hosts`` of them, tainted so that nothing but these
   pods lands there) report them Running; then every pod is deleted (grace 0) and the namespace.

With ``--watchers N`` every run is made twice, side by side: without watchers, then with ``N``
clients (each its own connection) watching every pod of the bench cluster-wide for the whole run,
each ready (it has seen a marker pod appear) before the first create; the medians of both and
their ratio show what the watchers cost the writes, and the events each watcher received (counted
once every watch has taken the whole run) show that they were served. The watching clients run
in a process of their own (bench/watch_clients.py) at ``--watchers-nice`` 19: they stand for
clients on other machines, so they take only the cores the control plane and the writers leave
idle, and their CPU is reported apart (``watchers``); ``--watchers-nice 0`` makes them compete.

With ``--hold-hosts`` the simulated hosts report nothing Running until every pod is bound: binds/s
is then the scheduler's alone, as upstream's scheduler_perf measures it (its Nodes have no kubelet).
Without it each host reports a pod Running as soon as it is bound, so the binds share the API with
as many status writes.

Prints per-run figures and the medians: creates/s with the create latency p50/p99, binds/s,
Running/s, deletes/s, and the CPU time per pod of each part: the API servers, etcd and HAProxy (a
lab's from its nodes' cgroup2 ``cpu.stat``; loopback's from its two processes) and the bench
process itself (its clients, scheduler and simulated hosts, which on a lab machine share
the cores with the control plane). CPU per pod moves less with the machine's other load than rates
do, but on a nested virtual machine it still moves: compare trees side by side. ``--loopback``
also prints etcd's database size and the RSS of etcd and the API server after the last run. The
simulated hosts' Nodes and Leases are removed at the end.

    .venv/bin/python bench/pod_throughput.py --lab e2e --clients 32 --pods 500 --hosts 5 --runs 3
    .venv/bin/python bench/pod_throughput.py --loopback --hosts 50 --pods 2000 --runs 1   # 50 x 40
    .venv/bin/python bench/pod_throughput.py --lab e2e --pods 300 --runs 3 --watchers 100
    .venv/bin/python bench/pod_throughput.py --lab e2e --pods 500 --runs 3 --hold-hosts
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback import one_member_etcd, pki
from nestlab.api import status
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import NAMESPACES, PODS
from nestlab.controller.scheduler import Scheduler
from nestlab.paths import LabFiles
from nestlab.runtime import proc
from nestlab.sim import hollow
from nestlab.sim.hosts import Fleet
from nestlab.substrate.local import cgroups
from tests.integration.api.conftest import ADMIN_TOKEN, start_apiserver

SCHEDULER = "nestlab-bench"
WATCHERS_NICE = 19  # the watching clients' CPU priority (see Watchers)
WATCHERS_READY_S = 120.0  # the watching process started and every watch serving
WATCHERS_CATCH_UP_S = 900.0  # every watch has taken the run's events (at low priority: after the run)
BIND_IN_FLIGHT = 16  # the scheduler's own default (upstream's parallelism)
MAX_PASSES = 50  # one pass should bind them all; more means something is wrong: stop, do not spin
RUNNING_WAIT_S = 300.0  # deadline for the simulated hosts to report every pod Running
RETRIES, RETRY_S = 10, 1.0  # a request answered 5xx is retried (the shared lab's API may fail over)
RETRIED = [0]  # requests retried so far (printed: a run with retries measured a failover too)


@dataclass
class Run:
    creates_s: float
    create_p50_ms: float
    create_p99_ms: float
    binds_s: float
    running_s: float
    deletes_s: float
    watchers: int = 0
    events_min: int = 0  # the fewest events one watcher received during the run
    cpu_ms: dict[str, float] | None = None  # CPU per pod of each measured part (see Meter)


Meter = Callable[[], dict[str, float]]
"""CPU seconds each part has used so far (API servers, etcd, ...; ``bench``: this process, which
holds the clients, the scheduler and the simulated hosts): a run's difference per pod
is what the run cost each part (it moves less with the machine's other load than rates do)."""

SERVICES = {"API servers": "nestlab-apiserver", "etcd": "etcd", "HAProxy": "haproxy"}


def own_cpu() -> dict[str, float]:
    return {"bench": time.process_time()}


def lab_meter(name: str) -> Meter:
    """CPU of the lab's services, from each node's cgroup2 ``cpu.stat`` (a local lab: its nodes'
    cgroups are on this machine, see :mod:`nestlab.substrate.local.cgroups`), and of this process."""
    key = cgroups.lab_key(name, LabFiles.named(name).root)
    bases = [
        base / cgroups.ROOT / key for base in cgroups.mounted() if (base / "cgroup.controllers").exists()
    ]
    if not any(base.is_dir() for base in bases):
        print(
            f"lab {name}: no cgroup2 directory of its nodes on this machine (not a local lab, or no "
            "cgroup2 mounted): only the bench process's own CPU is measured",
            flush=True,
        )

    def sample() -> dict[str, float]:
        used = own_cpu()
        for part, unit in SERVICES.items():
            stats = [
                f for base in bases for f in base.glob(f"*/payload/system.slice/{unit}.service/cpu.stat")
            ]
            used[part] = sum(_usage_s(f) for f in stats)
        return {part: value for part, value in used.items() if value}

    return sample


def _usage_s(stat: Path) -> float:
    for line in stat.read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    return 0.0


class Watchers:
    """``count`` clients, each with one watch on every bench pod (label ``app=tput``) cluster-wide,
    in a child process (bench/watch_clients.py) at CPU priority ``nice``: clients that stand for
    ones on other machines, taking the cores the control plane and the writers leave idle.

    Entering returns once every watch is serving (each has seen a marker pod); :meth:`finish`, after
    the run, waits until every watch has taken every event of the run and returns the fewest events
    one received and the CPU seconds the watching process used meanwhile."""

    def __init__(self, credentials: Credentials, count: int, nice: int) -> None:
        self.credentials, self.count, self.nice = credentials, count, nice
        self._child: asyncio.subprocess.Process | None = None
        self._cpu_ready = 0.0

    async def _answer(self, word: str, timeout: float) -> list[str]:
        if self._child is None or self._child.stdout is None:
            raise SystemExit("the watching clients' process is not running")
        line = (await asyncio.wait_for(self._child.stdout.readline(), timeout)).decode().split()
        if not line or line[0] != word:
            raise SystemExit(f"the watching clients answered {line!r} instead of {word!r} (see above)")
        return line[1:]

    async def __aenter__(self) -> Watchers:
        if not self.count:
            return self
        creds = self.credentials
        argv = [
            "nice",
            "-n",
            str(self.nice),
            sys.executable,
            str(Path(__file__).with_name("watch_clients.py")),
        ]
        argv += ["--server", creds.server, "--count", str(self.count)]
        for flag, value in (
            ("--ca", creds.ca),
            ("--cert", creds.cert),
            ("--key", creds.key),
            ("--token", creds.token),
        ):
            if value is not None:
                argv += [flag, str(value)]
        self._child = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self._cpu_ready = float((await self._answer("ready", WATCHERS_READY_S))[0])
        return self

    async def finish(self) -> tuple[int, float]:
        """(fewest events one watch received, CPU seconds of the watching process) since ready."""
        if self._child is None or self._child.stdin is None:
            return 0, 0.0
        self._child.stdin.write(b"end\n")
        await self._child.stdin.drain()
        events, cpu = await self._answer("events", WATCHERS_CATCH_UP_S)
        return int(events), float(cpu) - self._cpu_ready

    async def __aexit__(self, *exc: object) -> None:
        if self._child is not None and self._child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._child.terminate()
            await self._child.wait()


def bench_pod(index: int) -> dict[str, Any]:
    """A small pod for the bench's own scheduler, tolerating the simulated hosts' taints."""
    return {
        "metadata": {"name": f"tp-{index:05d}", "labels": {"app": "tput"}},
        "spec": {
            "schedulerName": SCHEDULER,
            "tolerations": [dict(t) for t in hollow.TOLERATIONS],
            "nodeSelector": {hollow.LABEL: "true"},
            "containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "10m"}}}],
        },
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def spread(clients: list[ApiClient], count: int, work: Callable[[ApiClient, int], Any]) -> list[float]:
    """Run ``work(client, i)`` for i < count over the clients (one worker each); latencies (ms).

    A 5xx (a control-plane node failing over: others run drills on the shared lab) is retried after
    a pause and counted, and so is a delete that lost a race with a status write on a server that
    does not retry it itself; a 409/404 on a retry means the first attempt went through."""
    cursor = iter(range(count))
    latencies: list[float] = []

    async def worker(client: ApiClient) -> None:
        for index in cursor:
            start = time.perf_counter()
            for attempt in range(RETRIES + 1):
                try:
                    await work(client, index)
                    break
                except status.ApiError as exc:
                    if attempt and exc.code in (404, 409) and "has been modified" not in exc.message:
                        break
                    raced = exc.code == 409 and "has been modified" in exc.message  # an older server's delete
                    if (exc.code < 500 and not raced) or attempt == RETRIES:
                        raise
                    RETRIED[0] += 1
                    await asyncio.sleep(RETRY_S)
            latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(worker(c) for c in clients))
    return latencies


async def unbound(client: ApiClient, namespace: str) -> list[Any]:
    """The pods of ``namespace`` not bound yet; a 5xx is retried as :func:`spread` does (the API
    that just failed a pass may fail the next request too, and the run should not end there)."""
    for attempt in range(RETRIES + 1):
        try:
            return list((await client.list(PODS, namespace, fields="spec.nodeName="))["items"])
        except status.ApiError as exc:
            if exc.code < 500 or attempt == RETRIES:
                raise
            RETRIED[0] += 1
            await asyncio.sleep(RETRY_S)
    raise AssertionError("unreachable")


async def one_run(
    clients: list[ApiClient],
    fleet: Fleet,
    count: int,
    in_flight: int,
    *,
    hold: bool = False,
    meter: Meter = own_cpu,
) -> Run:
    namespace = f"bench-tput-{uuid.uuid4().hex[:6]}"
    admin = clients[0]
    await admin.create(NAMESPACES, "", {"metadata": {"name": namespace}})
    used = meter()
    try:
        started = fleet.tally.running
        start = time.perf_counter()
        latencies = await spread(clients, count, lambda c, i: c.create(PODS, namespace, bench_pod(i)))
        created = time.perf_counter() - start
        scheduler = Scheduler(admin, max_in_flight=in_flight, name=SCHEDULER)
        if hold:
            fleet.hold()
        bound, passes, start = 0, 0, time.perf_counter()
        bind_start_mono = time.monotonic()
        while bound < count:
            passes += 1
            if passes > MAX_PASSES:
                raise SystemExit(f"{count - bound} pods still unbound after {MAX_PASSES} passes")
            try:
                bound += sum(1 for placed in await scheduler.pass_once() if placed.node)
            except status.ApiError as exc:  # a failing-over API: the next pass picks up what is left
                if exc.code < 500:
                    raise
                RETRIED[0] += 1
                await asyncio.sleep(RETRY_S)
                bound = count - len(await unbound(admin, namespace))
        binding = time.perf_counter() - start
        print(f"    created {count / created:6.1f}/s, bound {count / binding:6.1f}/s", flush=True)
        if hold:
            fleet.release()
            bind_start_mono = time.monotonic()  # Running/s: from the hosts' release on
        await scheduler.flush()
        deadline = time.monotonic() + RUNNING_WAIT_S
        while fleet.tally.running - started < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {fleet.tally.running - started}/{count} pods Running")
            await asyncio.sleep(0.05)
        running = fleet.tally.last_running_at - bind_start_mono
        names = [p["metadata"]["name"] for p in (await admin.list(PODS, namespace))["items"]]
        start = time.perf_counter()
        await spread(clients, len(names), lambda c, i: c.delete(PODS, namespace, names[i], grace=0))
        deleting = time.perf_counter() - start
        now = meter()
    finally:
        await admin.delete(NAMESPACES, "", namespace)
    return Run(
        count / created,
        statistics.median(latencies),
        percentile(latencies, 0.99),
        count / binding,
        count / running,
        len(names) / deleting,
        cpu_ms={part: (now[part] - used.get(part, 0.0)) / count * 1000 for part in now},
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` used so far: the cost of the work, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def etcd_db_mib(etcd_url: str) -> float:
    with urllib.request.urlopen(f"{etcd_url}/metrics", timeout=5) as answer:  # noqa: S310 - loopback URL
        for line in answer.read().decode().splitlines():
            if line.startswith("etcd_mvcc_db_total_size_in_bytes "):
                return float(line.split()[1]) / 2**20
    return 0.0


async def measure(credentials: Credentials, args: argparse.Namespace, meter: Meter = own_cpu) -> list[Run]:
    def connect() -> ApiClient:
        return ApiClient(credentials)

    clients = [connect() for _ in range(args.clients)]
    runs: list[Run] = []
    names = hollow.names(args.hosts, args.prefix)
    try:
        async with Fleet(connect, names, args.max_pods or -(-args.pods // args.hosts)) as fleet:
            print(f"{len(names)} simulated hosts registered ({names[0]}..{names[-1]})", flush=True)
            for number in range(args.runs):
                for count in (0, args.watchers) if args.watchers else (0,):
                    async with Watchers(credentials, count, args.watchers_nice) as watchers:
                        run = await one_run(
                            clients, fleet, args.pods, args.bind_in_flight, hold=args.hold_hosts, meter=meter
                        )
                        run.watchers = count
                        run.events_min, watching_s = await watchers.finish()
                    if count and run.cpu_ms is not None:
                        run.cpu_ms["watchers"] = watching_s / args.pods * 1000
                    runs.append(run)
                    print(
                        f"  run {number + 1}: {run.creates_s:6.1f} creates/s"
                        f" (p50 {run.create_p50_ms:5.1f} ms, p99 {run.create_p99_ms:6.1f} ms)"
                        f"  {run.binds_s:6.1f} binds/s"
                        f"  {run.running_s:6.1f} Running/s  {run.deletes_s:6.1f} deletes/s"
                        + (f"  {count} watchers, each got >= {run.events_min} events" if count else "")
                        + f"\n    CPU per pod: {cpu_text(run.cpu_ms or {})}"
                        + (f"  ({RETRIED[0]} requests retried so far)" if RETRIED[0] else ""),
                        flush=True,
                    )
            if fleet.tally.failures:
                print(f"simulated hosts: {fleet.tally.failures} status writes refused", flush=True)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return runs


def cpu_text(cpu_ms: dict[str, float]) -> str:
    return ", ".join(f"{part} {ms:.1f} ms" for part, ms in sorted(cpu_ms.items()))


def report(all_runs: list[Run], args: argparse.Namespace) -> None:
    medians: dict[int, float] = {}
    cpu_medians: dict[int, dict[str, float]] = {}
    for count in sorted({r.watchers for r in all_runs}):
        runs = [r for r in all_runs if r.watchers == count]

        def med(pick: Callable[[Run], float], runs: list[Run] = runs) -> float:
            return statistics.median(pick(r) for r in runs)

        medians[count] = med(lambda r: r.creates_s)
        parts = sorted({part for r in runs for part in r.cpu_ms or {}})
        cpu = {part: statistics.median((r.cpu_ms or {}).get(part, 0.0) for r in runs) for part in parts}
        cpu_medians[count] = cpu
        print(
            f"median of {len(runs)} runs, {args.pods} pods, {args.clients} clients, {args.hosts} hosts"
            + (f", {count} watchers" if count else "")
            + f": {med(lambda r: r.creates_s):.1f} creates/s (p50 {med(lambda r: r.create_p50_ms):.1f} ms, "
            f"p99 {med(lambda r: r.create_p99_ms):.1f} ms), {med(lambda r: r.binds_s):.1f} binds/s, "
            f"{med(lambda r: r.running_s):.1f} Running/s, {med(lambda r: r.deletes_s):.1f} deletes/s"
            f"; CPU per pod: {cpu_text(cpu)}",
            flush=True,
        )
    if args.watchers and medians.get(0):
        print(
            f"creates/s with {args.watchers} watchers / without: {medians[args.watchers] / medians[0]:.2f}",
            flush=True,
        )
        with_, without = cpu_medians[args.watchers], cpu_medians[0]
        print(
            f"CPU per pod with {args.watchers} watchers / without: "
            + ", ".join(
                f"{part} {with_[part] / without[part]:.2f}" for part in sorted(with_) if without.get(part)
            ),
            flush=True,
        )


def lab_credentials(name: str) -> Credentials:
    files = LabFiles.named(name)
    if not files.plan.is_file():
        raise SystemExit(f"no lab named {name!r} here ({files.plan} is missing): stand it up with nestlab up")
    vip = json.loads(files.plan.read_text())["vip"]
    return Credentials(
        f"https://{vip}:6443",
        ca=files.pki / "ca.crt",
        cert=files.pki / "admin.crt",
        key=files.pki / "admin.key",
    )


def loopback(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="nltput-"))
    started: list[proc.Process] = []
    try:
        etcd_url, etcd = one_member_etcd(work)
        started.append(etcd)
        url, api_proc, _log = start_apiserver(pki(work), [etcd_url], work)
        started.append(api_proc)
        credentials = Credentials(url, ca=work / "ca.crt", token=ADMIN_TOKEN)
        print(f"loopback control plane: etcd {etcd_url}, API server {url} (pid {api_proc.pid})", flush=True)

        def meter() -> dict[str, float]:
            return {"API servers": cpu_s(api_proc.pid), "etcd": cpu_s(etcd.pid), **own_cpu()}

        report(asyncio.run(measure(credentials, args, meter)), args)
        print(
            f"etcd database {etcd_db_mib(etcd_url):.1f} MiB; RSS etcd {rss_mib(etcd.pid):.0f} MiB, "
            f"API server {rss_mib(api_proc.pid):.0f} MiB",
            flush=True,
        )
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--lab", help="a running lab's name: measure through its VIP")
    target.add_argument("--loopback", action="store_true", help="a throwaway etcd + API server")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--hosts", type=int, default=5, help="simulated hosts the pods are bound to")
    parser.add_argument("--prefix", default="sim", help="simulated hosts' name prefix")
    parser.add_argument(
        "--max-pods",
        type=int,
        default=0,
        help="pods a simulated host takes (default: --pods / --hosts, rounded up)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bind-in-flight", type=int, default=BIND_IN_FLIGHT)
    parser.add_argument(
        "--hold-hosts",
        action="store_true",
        help="the simulated hosts report nothing Running until every pod is bound: binds/s of the "
        "scheduler alone, as upstream's scheduler_perf measures it (Nodes without kubelets)",
    )
    parser.add_argument(
        "--watchers",
        type=int,
        default=0,
        help="also make every run with this many clients watching the bench's pods (side by side)",
    )
    parser.add_argument(
        "--watchers-nice",
        type=int,
        default=WATCHERS_NICE,
        help="the watching clients' process's nice value: 19 (default) stands for clients on other "
        "machines, 0 for clients competing with the control plane for these cores",
    )
    args = parser.parse_args()
    if args.loopback:
        loopback(args)
    else:
        try:
            report(asyncio.run(measure(lab_credentials(args.lab), args, lab_meter(args.lab))), args)
        except status.ApiError as exc:
            raise SystemExit(f"the lab's API answered {exc.code} {exc.reason}: {exc.message}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
