"""Measure the Supervisor API on a running lab: latency through the VIP vs direct, pod creation rate,
and how long the API is unavailable when a backend dies or the VIP holder stops.

Run as root on a lab that `nestlab up` built:  .venv/bin/python bench/api_latency.py --name LAB
Prints p50/p99 latencies (ms), their ratio, pods created per second, and the longest gap between
successful requests (s) during each failure. The drills restore what they break.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

from nestlab.paths import LabFiles
from nestlab.runtime import proc

PROBE_TIMEOUT_S = 2.0  # a request slower than this counts as a failure in the availability probe
SETTLE_S = 5.0  # probe before and after each drill, so the gap includes the whole recovery


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


class Probe(threading.Thread):
    """Requests in a loop on fresh connections; remembers when each one succeeded."""

    def __init__(self, vip: str, files: LabFiles) -> None:
        super().__init__(daemon=True)
        self.vip, self.files = vip, files
        self.ok: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                api = Api(self.vip, self.files, timeout=PROBE_TIMEOUT_S)
                if api.request("GET", "/api/v1/namespaces/default") == 200:
                    self.ok.append(time.monotonic())
                api.conn.close()
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)

    def longest_gap(self) -> float:
        return max((b - a for a, b in zip(self.ok, self.ok[1:], strict=False)), default=float("nan"))


ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --cacert=/etc/nestlab/pki/ca.crt --cert=/etc/nestlab/pki/node.crt"
    " --key=/etc/nestlab/pki/node.key --endpoints=https://127.0.0.1:2379"
)
# systemctl kill cannot signal a cgroup inside nspawn: kill the units' main processes.
KILL = "for u in nestlab-apiserver etcd; do kill -KILL $(systemctl show -p MainPID --value $u); done"


def etcd_leader(lab: str, node: str) -> str:
    """The control-plane node whose etcd member leads."""
    members = json.loads(nestlab("ssh", "--name", lab, node, "--", f"{ETCDCTL} member list -w json"))[
        "members"
    ]
    status = json.loads(
        nestlab("ssh", "--name", lab, node, "--", f"{ETCDCTL} endpoint status --cluster -w json")
    )
    leader = status[0]["Status"]["leader"]
    return str(next(m["name"] for m in members if m["ID"] == leader))


def nestlab(*args: str, timeout: float = 600.0) -> str:
    command = Path(sys.executable).with_name("nestlab")
    return proc.run([str(command), *args], timeout=timeout).stdout


def wait_healthy(lab: str, lbs: list[str], backends: int, timeout: float = 300.0) -> None:
    """Until every load balancer sees every API server UP (the previous drill is over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = [nestlab("ssh", "--name", lab, lb, "--", "haproxy-cmd show stat") for lb in lbs]
        if all(sum(",UP," in row for row in out.splitlines() if ",cp-" in row) == backends for out in stats):
            return
        time.sleep(2)
    raise SystemExit(f"lab {lab}: the load balancers do not see {backends} API servers UP")


def drill(vip: str, files: LabFiles, action: list[list[str]], restore: list[list[str]]) -> float:
    """The longest gap between successful requests through the VIP while ``action`` runs."""
    probe = Probe(vip, files)
    probe.start()
    time.sleep(SETTLE_S)
    for args in action:
        nestlab(*args)
    time.sleep(SETTLE_S * 4)  # the time HAProxy / keepalived need, with margin
    probe.stop.set()
    probe.join()
    for args in restore:
        nestlab(*args)
    return probe.longest_gap()


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
    lbs = [n["name"] for n in plan["nodes"] if n["role"] == "load-balancer"]
    wait_healthy(args.name, lbs, len(cps))
    via_vip, direct = latencies([Api(vip, files), Api(cps[0]["address"], files)], args.requests)
    for label, values in (("through the VIP", via_vip), (f"direct to {cps[0]['name']}", direct)):
        print(
            f"GET latency {label:22} p50 {statistics.median(values):7.2f} ms"
            f"  p99 {percentile(values, 0.99):7.2f} ms"
        )
    print(f"VIP/direct ratio            p50 {statistics.median(via_vip) / statistics.median(direct):7.2f}")
    print(f"pods created per second through the VIP: {pods_per_second(Api(vip, files), args.pods):.1f}")
    if args.no_drills:
        return
    leader = etcd_leader(args.name, cps[0]["name"])
    follower = next(cp["name"] for cp in cps if cp["name"] != leader)
    for role, victim in (("follower", follower), ("leader", leader)):
        kill = ["ssh", "--name", args.name, victim, "--", KILL]
        wait_healthy(args.name, lbs, len(cps))
        gap = drill(vip, files, [kill], [])
        print(
            f"longest gap, {victim} (etcd {role}) API server + etcd SIGKILLed (systemd restarts): {gap:.2f} s"
        )
    holder = next(
        lb
        for lb in lbs
        if f" {vip}/" in nestlab("ssh", "--name", args.name, lb, "--", "ip", "-o", "-4", "addr")
    )
    wait_healthy(args.name, lbs, len(cps))
    gap = drill(
        vip,
        files,
        [["node", "stop", holder, "--name", args.name]],
        [["node", "start", holder, "--name", args.name]],
    )
    print(f"longest gap, VIP holder {holder} stopped: {gap:.2f} s")


if __name__ == "__main__":
    main()
