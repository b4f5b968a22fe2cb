"""Service proxy rules at scale: table size, full-sync time and one-endpoint update time.

For each size (default 50, 100 and 200 Services, each with ``--endpoints`` ready endpoints and one
port) renders the table with :mod:`nestlab.proxy.rules` and loads it with the real ``nft`` into a
throw-away network namespace (deleted at the end, also on failure), then prints:

- the table's size as the kernel reports it (chains, rules, sets and maps, elements);
- the median time of a full sync (render + one ``nft -f`` transaction replacing the whole table);
- the median time of one incremental update (one endpoint of one Service removed, then put back:
  render + one transaction), and how many commands that transaction holds.

So the numbers show how a full rebuild grows with the number of Services while an endpoint change
stays the same size, which is why the proxy never reloads the whole table per event.

    .venv/bin/python bench/proxy_rules.py --services 200 --endpoints 10 --runs 9
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import ipaddress
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nestlab.proxy import rules
from nestlab.proxy.desired import Endpoint, ServicePort
from nestlab.proxy.nft import Nft
from nestlab.runtime import proc

NETWORK = rules.HostNetwork("nlpods", "198.19.0.0/16", "198.18.0.0/24", "198.19.1.0/24")
SERVICES_NET = ipaddress.IPv4Network("198.18.32.0/20")
PODS_NET = ipaddress.IPv4Network("198.19.0.0/16")


def service_ports(count: int, endpoints: int, affinity: bool) -> list[ServicePort]:
    """``count`` one-port Services, each over ``endpoints`` distinct pod addresses."""
    found = []
    for index in range(count):
        ips = [str(PODS_NET[2 + index * endpoints + n]) for n in range(endpoints)]
        found.append(
            ServicePort(
                "bench",
                f"svc-{index}",
                "http",
                "tcp",
                80,
                (str(SERVICES_NET[10 + index]),),
                tuple(Endpoint(ip, 8080) for ip in ips),
                60 if affinity else None,
            )
        )
    return found


def timed(nft: Nft, make: Callable[[], list[str]]) -> tuple[float, int]:
    """Seconds to render (``make()``) and commit one transaction; its number of commands."""
    started = time.perf_counter()
    commands = make()
    nft.apply(commands)
    return time.perf_counter() - started, len(commands)


def measure(nft: Nft, count: int, endpoints: int, runs: int, affinity: bool) -> None:
    ports = service_ports(count, endpoints, affinity)
    fulls = [timed(nft, lambda: rules.full(NETWORK, ports)) for _ in range(runs)]
    size = nft.counts()
    target = ports[count // 2]
    fewer = dataclasses.replace(target, endpoints=target.endpoints[1:])
    updates = []
    for run in range(runs):
        before, after = (target, fewer) if run % 2 == 0 else (fewer, target)
        updates.append(timed(nft, functools.partial(rules.update, [before], [after])))
    full_s = statistics.median(t for t, _ in fulls)
    update_s = statistics.median(t for t, _ in updates)
    print(
        f"{count:>5} services x {endpoints} endpoints{' (affinity)' if affinity else ''}: "
        f"{size.chains} chains, {size.rules} rules, {size.sets} sets/maps, {size.elements} elements | "
        f"full sync {full_s * 1000:.1f} ms ({fulls[0][1]} commands) | "
        f"one-endpoint update {update_s * 1000:.1f} ms ({max(n for _, n in updates)} commands) | "
        f"ratio {full_s / update_s:.0f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200, help="the largest size measured")
    parser.add_argument("--sizes", default="50,100", help="smaller sizes measured first (comma-separated)")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--runs", type=int, default=9, help="transactions per figure (the median is shown)")
    parser.add_argument("--affinity", action="store_true", help="sessionAffinity ClientIP on every Service")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None:
        print("needs root and nft (Debian package nftables)", file=sys.stderr)
        return 2
    sizes = sorted({*(int(s) for s in args.sizes.split(",") if s), args.services})
    namespace = f"nlpx-bench-{os.getpid()}"
    proc.run(["ip", "netns", "add", namespace], timeout=15)
    try:
        nft = Nft(prefix=["ip", "netns", "exec", namespace])
        for count in sizes:
            measure(nft, count, args.endpoints, args.runs, args.affinity)
    finally:
        proc.run(["ip", "netns", "del", namespace], timeout=15, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
