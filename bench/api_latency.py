"""Measure the Supervisor API on a running lab: latency through the VIP vs direct, pod creation rate,
and how long the API is unavailable when a backend dies or the VIP holder stops.

Run as root on a lab that `nestlab up` built:  .venv/bin/python bench/api_latency.py --name LAB
Prints p50/p99 latencies (ms), their ratio, pods created per second, and the longest gap between
successful requests (s) during each failure. The failures are `nestlab drill`'s (nestlab.drills:
the etcd leader's node stops, the VIP holder stops); they restore what they break.
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

from nestlab.drills import catalog
from nestlab.drills.base import run
from nestlab.drills.lab import DrillLab
from nestlab.paths import LabFiles

DRILLS = ("control-plane-leader-loss", "vip-holder-loss")  # the API-availability drills of `nestlab drill`


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


def drills(name: str) -> None:
    """The failure drills of `nestlab drill` (nestlab.drills): each restores the lab before the next."""
    lab = DrillLab(name)
    for drill_name in DRILLS:
        report = run(catalog.find(drill_name), lab, lambda line: print(f"  {line}", file=sys.stderr))
        print(
            f"longest gap, {drill_name}: {report.value('api_longest_gap_s')} s"
            f" ({report.value('requests_failed')}/{report.value('requests_total')} reads failed)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--no-drills", action="store_true")
    args = parser.parse_args()
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
        drills(args.name)


if __name__ == "__main__":
    main()
