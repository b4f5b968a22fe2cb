"""From inside a pod: a ClusterIP against the pod's own address, and cluster DNS lookups.

Run as root on a lab that `nestlab up` built:
    .venv/bin/python bench/service_latency.py --name LAB --requests 100

One web replica on one host and a client pod on another host, so both paths cross hosts and end
at the same pod: "direct" fetches http://<pod IP>/host, "clusterip" fetches the Service's
ClusterIP (DNAT by the distributed load balancer on the client's host), in alternating order,
side by side in one run. "dns" times `nslookup web.<ns>.svc.cluster.local` against the cluster DNS.
Each sample is timed inside the pod with busybox `adjtimex` (microseconds); "overhead" is an
empty sample (the two clock reads alone), reported so the reader can subtract it. Requests per
second come from the whole loop of each kind. Prints p50/p90 and the ClusterIP/direct ratio;
asserts nothing. Figures are from pods under TCG on a shared 2-core machine: compare the ratio, not
the absolute values, with other machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.labtools import apply, attach, get_json, kubectl, nodes, wait_lab_healthy
from tests.e2e.services import client_pod, run_probes, tagged, wait_endpoints, web_deployment

NOW = "adjtimex | awk '/tv_sec/ {s=$2} /tv_usec/ {u=$2} END {print s*1000000+u}'"


def timed(tag: str, command: str, count: int) -> str:
    """Shell lines printing ``TAG <microseconds>`` per run of ``command``, then ``TAG-TOTAL <us>``."""
    return (
        f"T0=$({NOW}); for i in $(seq {count}); do a=$({NOW}); {command} >/dev/null 2>&1; b=$({NOW}); "
        f'echo "{tag} $((b-a))"; done; T1=$({NOW}); echo "{tag}-TOTAL $((T1-T0))"'
    )


def summary(values: list[int]) -> str:
    ms = sorted(v / 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"p50 {statistics.median(ms):7.2f} ms  p90 {p90:7.2f} ms  (n={len(ms)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    lab = attach(args.name)
    wait_lab_healthy(lab)
    namespace = f"bench-svc-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    try:
        apply(lab, web_deployment("web", namespace, replicas=1))
        kubectl(lab, "expose", "deployment", "web", "-n", namespace, "--port=80")
        (pod_ip,) = wait_endpoints(lab, namespace, "web", 1)
        web_host = get_json(lab, "pods", "-n", namespace, "-l", "app=web")["items"][0]["spec"]["nodeName"]
        client_host = next(h for h in nodes(lab, "host") if h != web_host)
        cluster_ip = get_json(lab, "service", "web", "-n", namespace)["spec"]["clusterIP"]
        fetch = "wget -q -O- http://{}/host"
        script = "; ".join(
            [
                timed("overhead", "true", args.requests),
                timed("direct", fetch.format(pod_ip), args.requests),
                timed("clusterip", fetch.format(cluster_ip), args.requests),
                timed("direct2", fetch.format(pod_ip), args.requests),
                timed("clusterip2", fetch.format(cluster_ip), args.requests),
                timed("dns", f"nslookup web.{namespace}.svc.cluster.local", args.requests),
            ]
        )
        log = run_probes(lab, namespace, [client_pod("bench", namespace, client_host, script)])["bench"]
    finally:
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    samples = {tag: [int(v) for v in tagged(log, tag)] for tag in ("overhead", "direct", "clusterip", "dns")}
    samples["direct"] += [int(v) for v in tagged(log, "direct2")]
    samples["clusterip"] += [int(v) for v in tagged(log, "clusterip2")]
    if not all(samples.values()):
        raise SystemExit(f"the probe printed no samples for some kind:\n{log}")
    totals = {
        tag: sum(int(v) for v in tagged(log, f"{tag}-TOTAL") + tagged(log, f"{tag}2-TOTAL"))
        for tag in ("direct", "clusterip")
    }
    print(f"web pod on {web_host} ({pod_ip}), client on {client_host}, ClusterIP {cluster_ip}")
    for tag, values in samples.items():
        print(f"  {tag:10s} {summary(values)}")
    for tag in ("direct", "clusterip"):
        rate = len(samples[tag]) / (totals[tag] / 1e6)
        print(f"  {tag:10s} {rate:6.1f} requests/s (sequential wget processes, clock reads included)")
    overhead = statistics.median(samples["overhead"])
    ratio = (statistics.median(samples["clusterip"]) - overhead) / (
        statistics.median(samples["direct"]) - overhead
    )
    print(f"  ClusterIP / direct, p50 minus the clock overhead: {ratio:.2f}")
    print(json.dumps({tag: statistics.median(v) for tag, v in samples.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
