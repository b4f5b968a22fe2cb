"""Measure the local substrate: cold node-image build, warm `up`, idle memory, host restart, `down`.

Run as root:  .venv/bin/python bench/local_lab.py [--spec FILE] [--runs N] [--cold]
Prints medians. ``--cold`` also builds the node image from nothing (an empty image and .deb cache
in a temporary directory), which downloads every package from the mirror.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from nestlab.spec import Role, load_spec, make_plan
from nestlab.substrate.local import lifecycle as lc
from nestlab.substrate.local.image import ensure_image
from nestlab.substrate.local.pids import node_pids

SMALL = Path(__file__).resolve().parents[1] / "tests" / "integration" / "substrate" / "small.lab.yaml"
SETTLE_S = 20.0  # let boot-time jobs finish before reading the idle footprint


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab_pss_mib(nodes_dir: Path) -> float:
    """Proportional set size of every process of the lab's nodes (nspawn and all below it)."""
    tree = _children()
    total = 0
    for root in node_pids(nodes_dir).values():
        stack = [root]
        while stack:
            pid = stack.pop()
            total += _pss_kib(pid)
            stack.extend(tree.get(pid, []))
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", type=Path, default=SMALL)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a node image build from nothing")
    args = parser.parse_args()

    if args.cold:
        with tempfile.TemporaryDirectory(prefix="nestlab-bench-cache-") as cache:
            started = time.monotonic()
            ensure_image(cache=Path(cache))
            print(f"cold image build (empty .deb cache): {time.monotonic() - started:.1f} s")
    ensure_image()

    plan = make_plan(load_spec(args.spec))
    host = plan.by_role(Role.HOST)[0].name
    ups, downs, restarts, memory = [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="nestlab-bench-") as tmp:
            root = Path(tmp) / plan.lab.name
            started = time.monotonic()
            lc.up(plan, lab_root=root)
            ups.append(time.monotonic() - started)
            time.sleep(SETTLE_S)
            memory.append(lab_pss_mib(root / "nodes"))
            started = time.monotonic()
            lc.stop_node(plan, host, lab_root=root)
            lc.start_node(plan, host, lab_root=root)
            restarts.append(time.monotonic() - started)
            started = time.monotonic()
            lc.down(plan.lab.name, lab_root=root)
            downs.append(time.monotonic() - started)
    nodes = len(plan.nodes)
    print(f"lab {plan.lab.name}: {nodes} nodes, {args.runs} runs, {os.cpu_count()} CPUs")
    print(f"warm up (image cached, to SSH on every node): median {statistics.median(ups):.1f} s")
    print(f"stop + start of {host} and its failure domain: median {statistics.median(restarts):.1f} s")
    print(f"down: median {statistics.median(downs):.1f} s")
    mib = statistics.median(memory)
    print(f"idle memory (PSS of all node processes): median {mib:.0f} MiB, {mib / nodes:.0f} MiB per node")


if __name__ == "__main__":
    main()
