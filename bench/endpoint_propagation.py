"""How long an endpoint (or NetworkPolicy) change takes to reach the nftables rules on every host.

Run as root on a lab that `nestlab up` built:
    .venv/bin/python bench/endpoint_propagation.py --name LAB --changes 30
    .venv/bin/python bench/endpoint_propagation.py --name LAB --changes 30 --policy

A Service without selector gets hand-written Endpoints; each change writes a new address into them
(through the VIP) and times the path Endpoints -> EndpointSlice (the mirroring controller) ->
nestlab-proxy on every host -> nftables. Each host streams `nft monitor` over SSH into a file the
bench polls every 10 ms, so a host's time is when its rule carrying the new address was committed
(plus the SSH stream's delay). With ``--policy`` each change creates a NetworkPolicy instead and
times API -> nestlab-proxy's firewall on every host -> its rule (carrying the policy's name as a
comment) in table ``ip nestlab-policy``. Prints p50/p99 of the slowest host per change and of each host;
asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nestlab.runtime import proc
from tests.e2e.labtools import LabApi, attach, kubectl, nodes, wait_lab_healthy

POLL_S = 0.01
CHANGE_TIMEOUT_S = 60.0


def endpoints(name: str, address: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name},
        "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "http", "port": 80}]}],
    }


def policy(name: str) -> dict[str, object]:
    selector = {"matchLabels": {"bench": name}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name},
            "spec": {"podSelector": selector}}  # fmt: skip


def change_request(namespace: str, change: int, *, policies: bool) -> tuple[str, str, object, str]:
    """(method, path, body, the text the new rule shows in `nft monitor`) of change number ``change``."""
    if policies:
        path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
        return "POST", path, policy(f"p{change}"), f'comment "{namespace}/p{change}'
    address = f"198.19.250.{change % 250 + 1}"
    path = f"/api/v1/namespaces/{namespace}/endpoints"
    method, target = ("POST", path) if change == 0 else ("PUT", f"{path}/prop")
    return method, target, endpoints("prop", address), f"dnat to {address}:80"


def wait_seen(work: Path, hosts: list[str], marker: str, began: float) -> dict[str, float]:
    """Seconds from ``began`` until each host's monitor log shows ``marker``."""
    seen: dict[str, float] = {}
    while len(seen) < len(hosts) and time.monotonic() - began < CHANGE_TIMEOUT_S:
        for host in hosts:
            if host not in seen and marker in (work / f"{host}.log").read_text(errors="replace"):
                seen[host] = time.monotonic() - began
        time.sleep(POLL_S)
    if len(seen) < len(hosts):
        raise SystemExit(f"{sorted(set(hosts) - set(seen))} never showed {marker}")
    for host in hosts:  # the next change searches only new output
        (work / f"{host}.log").write_text("")
    return seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def figures(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:6.0f} ms  p99 {percentile(values, 0.99) * 1000:6.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--policy", action="store_true", help="time NetworkPolicy changes instead")
    args = parser.parse_args()
    lab = attach(args.name)
    wait_lab_healthy(lab)
    api = LabApi(lab)
    hosts = nodes(lab, "host")
    namespace = f"bench-ep-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    work = Path(tempfile.mkdtemp(prefix="bench-ep-"))
    monitors = {
        host: proc.spawn(
            [
                str(Path(sys.executable).parent / "nestlab"),
                "ssh",
                "--name",
                lab.name,
                host,
                "--",
                "nft",
                "monitor",
                "rules",
            ],
            log=work / f"{host}.log",
        )
        for host in hosts
    }
    per_host: dict[str, list[float]] = {host: [] for host in hosts}
    slowest: list[float] = []
    try:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "prop"},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }
        code, created = api.request("POST", f"/api/v1/namespaces/{namespace}/services", service)
        if code != 201:
            raise SystemExit(f"creating the Service answered {code}: {created.get('message')}")
        time.sleep(2)  # let the monitors connect (they only see changes made after they start)
        for change in range(args.changes):
            method, target, body, marker = change_request(namespace, change, policies=args.policy)
            began = time.monotonic()
            code, answer = api.request(method, target, body)
            if code not in (200, 201):
                raise SystemExit(f"{method} {target} answered {code}: {answer.get('message')}")
            seen = wait_seen(work, hosts, marker, began)
            for host, delay in seen.items():
                per_host[host].append(delay)
            slowest.append(max(seen.values()))
    finally:
        for monitor in monitors.values():
            monitor.stop()
        shutil.rmtree(work, ignore_errors=True)
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    what = "NetworkPolicies created" if args.policy else "endpoint changes, Endpoints written"
    print(f"{args.changes} {what} through the VIP -> rule committed on every host:")
    print(f"  slowest host: {figures(slowest)}")
    for host, delays in per_host.items():
        print(f"  {host:12s}  {figures(delays)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
