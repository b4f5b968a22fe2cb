"""Cluster DNS lookup latency against a REAL unbound holding 200 Services (local, no lab needed).

Run:  .venv/bin/python bench/dns_lookup.py [--services 200] [--endpoints 10] [--lookups 2000]

Starts a private unbound on loopback with the control-plane configuration
(:func:`nestlab.dns.unbound.render_config`), loads ``--services`` Services through
``nestlab.dns.unbound`` exactly as nestlab-dns does (half ClusterIP with two named ports, half
headless with ``--endpoints`` ready endpoints each), then sends ``--lookups`` A queries over UDP
from one stdlib socket (names drawn round-robin, one query in flight) and prints p50/p99 in ms,
plus the record count, the bulk-load time and the time of one incremental change (an endpoint
leaving a headless Service). This is the server's own cost on this machine; the in-pod figure
(through the pod's resolver, the proxy's DNAT and the pod network) is measured on a lab.
unbound is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import sys
import time
from typing import Any

from nestlab.dns import local
from nestlab.dns.records import Record, diff, service_records
from nestlab.dns.unbound import UnboundConfig

TIMEOUT_S = 2.0  # a lookup slower than this is counted as lost, not as a latency


def query_packet(ident: int, name: str) -> bytes:
    """A recursion-desired A query for ``name``."""
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.rstrip(".").split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def lookup(sock: socket.socket, port: int, ident: int, name: str) -> tuple[int, int]:
    """(rcode, answer count) of one query."""
    sock.sendto(query_packet(ident, name), ("127.0.0.1", port))
    while True:
        data = sock.recv(4096)
        answer_id, flags, _qd, answers = struct.unpack("!HHHH", data[:8])
        if answer_id == ident:
            return flags & 0xF, answers


def services(count: int, endpoints: int) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Half ClusterIP (two named ports), half headless with ``endpoints`` ready pods each."""
    made: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for index in range(count):
        meta = {"name": f"svc-{index}", "namespace": f"ns-{index % 10}"}
        if index % 2 == 0:
            ports: list[dict[str, Any]] = [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "metrics", "port": 9100},
            ]
            spec = {"clusterIP": f"198.18.{32 + index // 250}.{1 + index % 250}", "ports": ports}
            made.append(({"metadata": meta, "spec": spec}, []))
        else:
            pods = [
                {"addresses": [f"198.19.{index % 250}.{1 + e}"], "conditions": {"ready": True}}
                for e in range(endpoints)
            ]
            slices = [{"addressType": "IPv4", "endpoints": pods, "ports": [{"name": "http", "port": 8080}]}]
            made.append(({"metadata": meta, "spec": {"clusterIP": "None"}}, slices))
    return made


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args(argv)

    server = local.start(UnboundConfig(listen=("127.0.0.1",), reverse=("198.18.32.0/20", "198.19.0.0/16")))
    try:
        made = services(args.services, args.endpoints)
        records: set[Record] = set()
        for service, slices in made:
            records |= service_records(service, slices)
        started = time.perf_counter()
        server.control.apply(diff(set(), records))
        load_ms = (time.perf_counter() - started) * 1000

        service, slices = next((s, sl) for s, sl in made if sl)  # the first headless Service
        fewer = [{**slices[0], "endpoints": slices[0]["endpoints"][1:]}]
        change = diff(set(service_records(service, slices)), set(service_records(service, fewer)))
        started = time.perf_counter()
        server.control.apply(change)
        change_ms = (time.perf_counter() - started) * 1000

        names = [f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.cluster.local." for s, _ in made]
        latencies, lost, wrong = [], 0, 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT_S)
            for ident in range(args.lookups):
                name = names[ident % len(names)]
                started = time.perf_counter()
                try:
                    rcode, answers = lookup(sock, server.port, ident & 0xFFFF, name)
                except TimeoutError:
                    lost += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                wrong += rcode != 0 or answers == 0
    finally:
        server.stop()
    if not latencies:
        print(f"no lookup answered within {TIMEOUT_S:g}s ({lost} lost)")
        return 1
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"unbound {args.services} services ({len(records)} records): bulk load {load_ms:.1f} ms, "
          f"one endpoint leaving {change_ms:.1f} ms ({len(change.remove)} names cleared, "
          f"{len(change.add)} records re-added)")  # fmt: skip
    print(f"{len(latencies)} lookups over UDP from loopback: p50 {statistics.median(latencies):.3f} ms, "
          f"p99 {p99:.3f} ms, lost {lost}, wrong answers {wrong}")  # fmt: skip
    return 1 if lost or wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
