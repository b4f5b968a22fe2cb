"""Measure the Supervisor API on a running lab: latency through the VIP vs direct, pod creation rate,
and how long the API is unavailable when a backend dies or the VIP holder stops.

Run as root on a lab that `nestlab up` built:  .venv/bin/python bench/api_latency.py --name LAB
Prints p50/p99 latencies (ms), their ratio, pods created per second, and the longest gap between
successful requests (s) during each failure. The failures are `nestlab drill`'s (nestlab.drills:
the etcd leader's node stops cleanly or loses its power, the VIP holder stops); they restore what
they break. ``--runs N`` repeats each drill and prints the median gap (issue 16: p50 of 5 runs).

``--elections SECONDS`` only counts etcd leader changes (``etcd_server_leader_changes_seen_total``
on every member) over that many seconds: run it while the lab is loaded (e2e tests, an exercise)
to show elections do not churn.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import sys
import time
import uuid

from nestlab.api.status import ApiError
from nestlab.drills import catalog, control
from nestlab.drills.base import Drill, run
from nestlab.drills.lab import DrillLab
from nestlab.drills.report import DrillReport
from nestlab.errors import UsageError
from nestlab.paths import LabFiles
from nestlab.spec.model import Role

# The API-availability drills of `nestlab drill` (the hard leader loss too, registered or not).
DRILLS = ("control-plane-leader-loss", "control-plane-leader-kill", "vip-holder-loss")
LEADER_CHANGES = "etcd_server_leader_changes_seen_total"
METRICS = (  # etcd's metrics on a cp node, with the node's certificate (etcd wants lab-CA clients)
    "curl -sS -m 3 --cacert /etc/nestlab/pki/ca.crt --cert /etc/nestlab/pki/node.crt"
    " --key /etc/nestlab/pki/node.key https://127.0.0.1:2379/metrics"
)


class Api:
    """One keep-alive HTTPS connection to an API server, authenticated with the lab's admin cert."""

    def __init__(self, host: str, files: LabFiles, timeout: float = 10.0) -> None:
        self.context = ssl.create_default_context(cafile=str(files.pki / "ca.crt"))
        self.context.check_hostname = False  # the VIP and node addresses are SANs; names vary
        self.context.load_cert_chain(str(files.pki / "admin.crt"), str(files.pki / "admin.key"))
        self.host, self.timeout = host, timeout
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, 6443, context=self.context, timeout=self.timeout)

    def request(self, method: str, path: str, body: object = None) -> int:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = self._connect()
            raise
        return response.status


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latencies(apis: list[Api], count: int) -> list[list[float]]:
    """GET latencies (ms) per API, the requests interleaved so that load changes hit all alike."""
    out: list[list[float]] = [[] for _ in apis]
    for _ in range(count):
        for api, values in zip(apis, out, strict=True):
            start = time.perf_counter()
            status = api.request("GET", "/api/v1/namespaces/default")
            values.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise SystemExit(f"GET namespace default on {api.host} answered {status}")
    return out


def pods_per_second(api: Api, count: int) -> float:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    api.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    pod = {"spec": {"containers": [{"name": "c", "image": "depot:5000/busybox:latest"}]}}
    start = time.perf_counter()
    for i in range(count):
        status = api.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods", {"metadata": {"name": f"p{i}"}, **pod}
        )
        if status != 201:
            raise SystemExit(f"creating pod {i} answered {status}")
    rate = count / (time.perf_counter() - start)
    api.request("DELETE", f"/api/v1/namespaces/{namespace}")
    return rate


def _drill(name: str) -> Drill:
    return control.LEADER_HARD if name == control.LEADER_HARD.name else catalog.find(name)


def _run_when_healthy(drill: Drill, lab: DrillLab, tries: int = 10) -> DrillReport:
    """Run ``drill`` once the lab is whole: on a shared lab others' drills come and go, so a refused
    precheck (exit 2: nothing was broken yet) waits and tries again."""

    def progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr)

    for _ in range(tries - 1):
        lab.wait_healthy(progress)
        try:
            return run(drill, lab, progress)
        except (UsageError, ApiError) as exc:  # the precheck or the markers, before any break
            progress(f"not started ({exc}); waiting for the lab again")
    return run(drill, lab, progress)


def drills(name: str, chosen: list[str], runs: int) -> None:
    """The failure drills of `nestlab drill` (nestlab.drills): each restores the lab before the next."""
    lab = DrillLab(name)
    for drill_name in chosen:
        gaps = []
        for number in range(1, runs + 1):
            report = _run_when_healthy(_drill(drill_name), lab)
            gap = float(str(report.value("api_longest_gap_s")))
            gaps.append(gap)
            print(
                f"longest gap, {drill_name} run {number}: {gap:.2f} s"
                f" ({report.value('requests_failed')}/{report.value('requests_total')} reads failed;"
                f" new leader after {report.value('new_leader_after_s')} s; passed {report.passed})",
                flush=True,
            )
            for check in report.checks:
                if not check.ok:
                    print(f"  check failed: {check.what}: {check.detail}", flush=True)
        print(f"longest gap, {drill_name}: median {statistics.median(gaps):.2f} s of {runs} ({gaps})")


def leader_changes(lab: DrillLab) -> dict[str, int]:
    """Each control-plane node's etcd_server_leader_changes_seen_total (-1: no answer)."""
    counts = {}
    for cp in lab.nodes(Role.CONTROL_PLANE):
        out = lab.sh(cp, METRICS, check=False)
        found = [line.split()[-1] for line in out.stdout.splitlines() if line.startswith(LEADER_CHANGES)]
        counts[cp] = int(float(found[0])) if found else -1
    return counts


def elections(name: str, seconds: float) -> None:
    """Leader changes seen by each member over ``seconds`` (run it while the lab is loaded)."""
    lab = DrillLab(name)
    before = leader_changes(lab)
    print(f"leader changes seen so far: {before}", flush=True)
    time.sleep(seconds)
    after = leader_changes(lab)
    delta = {cp: after[cp] - before[cp] for cp in after}
    print(f"leader changes during {seconds:g} s: {delta} (totals now {after})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--no-drills", action="store_true")
    parser.add_argument("--drill", action="append", choices=DRILLS, help="Only these drills (repeatable).")
    parser.add_argument("--runs", type=int, default=1, help="Runs of each drill; the median gap is printed.")
    parser.add_argument("--elections", type=float, metavar="SECONDS", help="Only count etcd leader changes.")
    args = parser.parse_args()
    if args.elections is not None:
        elections(args.name, args.elections)
        return
    if args.drill:
        drills(args.name, args.drill, args.runs)
        return
    files = LabFiles.named(args.name)
    plan = json.loads(files.plan.read_text())
    vip = plan["vip"]
    cps = [n for n in plan["nodes"] if n["role"] == "control-plane"]
    DrillLab(args.name).wait_healthy(lambda line: print(line, file=sys.stderr))
    via_vip, direct = latencies([Api(vip, files), Api(cps[0]["address"], files)], args.requests)
    for label, values in (("through the VIP", via_vip), (f"direct to {cps[0]['name']}", direct)):
        print(
            f"GET latency {label:22} p50 {statistics.median(values):7.2f} ms"
            f"  p99 {percentile(values, 0.99):7.2f} ms"
        )
    print(f"VIP/direct ratio            p50 {statistics.median(via_vip) / statistics.median(direct):7.2f}")
    print(f"pods created per second through the VIP: {pods_per_second(Api(vip, files), args.pods):.1f}")
    if not args.no_drills:
        drills(args.name, list(DRILLS), args.runs)


if __name__ == "__main__":
    main()
