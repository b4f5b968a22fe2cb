"""Measure the lab lifecycle through the real `nestlab` command: cold and warm `up`, the no-op second
`up`, `verify`, idle memory, `up` after a simulated reboot of the outer machine, and `down`, for the
teaching lab (9 nodes) on this machine.

Run as root:  .venv/bin/python bench/lab_up.py [--runs N] [--cold] [--reboot]
``--cold`` first builds the node image into an empty cache (NESTLAB_IMAGE_CACHE in a temp dir), so
that run's `up` includes debootstrap and every package download. ``--reboot`` then plays an outer
machine's reboot (every node process killed, overlays unmounted, the lab bridge and its routes
gone; the lab directory kept), times the `up` that brings the lab back and checks it with `verify`.
Prints each run and the medians. The lab uses its own name and networks (bench: management
198.18.150.0/24, pods 198.19.150.0/24, Services 198.18.152.0/22, ingress 198.18.158.0/24) and is
removed after every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nestlab.paths import LabFiles, repo_root
from nestlab.runtime import proc
from nestlab.substrate.local import mounts
from nestlab.substrate.local.layout import bridge_name
from nestlab.substrate.local.pids import node_pids, stop_all

NAME = "bench"
SETTLE_S = 20.0  # let boot-time jobs finish before reading the idle footprint


def nestlab(*args: str, env: dict[str, str] | None = None) -> float:
    """Run `nestlab ARGS`; print and return its wall time in seconds."""
    started = time.monotonic()
    proc.run([str(Path(sys.executable).parent / "nestlab"), *args], timeout=3600, env=env)
    seconds = time.monotonic() - started
    print(f"  nestlab {args[0]}: {seconds:.1f}s", flush=True)
    return seconds


def lab_memory_mib(files: LabFiles) -> float:
    """PSS of every process of every node (nspawn and everything below it), in MiB."""
    total_kib = 0
    pids = list(node_pids(files.root / "nodes").values())
    seen: set[int] = set()
    while pids:
        pid = pids.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        total_kib += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        pids.extend(int(child) for child in children)
    return total_kib / 1024


def simulate_reboot(files: LabFiles) -> None:
    """What a reboot of the outer machine leaves: no node process, no mount, no bridge (its routes
    go with it); the lab directory as it was."""
    stop_all(node_pids(files.root / "nodes"), hard=True)
    mounts.unmount_all(proc.run, files.root)
    proc.run(["ip", "link", "del", bridge_name(NAME)], timeout=30, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cold", action="store_true", help="the first run builds the node image from nothing"
    )
    parser.add_argument(
        "--reboot", action="store_true", help="also time `up` after a simulated reboot of the outer machine"
    )
    args = parser.parse_args()
    text = (repo_root() / "stacks" / "default.lab.yaml").read_text()
    text = text.replace("198.18.0.0/24", "198.18.150.0/24").replace("198.18.0.5", "198.18.150.5")
    text = text.replace("198.18.32.0/20", "198.18.152.0/22").replace("198.18.8.0/24", "198.18.158.0/24")
    spec = Path(tempfile.mkdtemp(prefix="labup-spec-", dir="/var/tmp")) / "bench.lab.yaml"
    spec.write_text(
        text.replace("198.19.0.0/16", "198.19.150.0/24").replace("podPrefixLength: 24", "podPrefixLength: 26")
    )
    files = LabFiles.named(NAME)
    rows: dict[str, list[float]] = {}
    try:
        for run in range(args.runs):
            env = dict(os.environ)
            label = "warm up"
            if args.cold and run == 0:
                env["NESTLAB_IMAGE_CACHE"] = tempfile.mkdtemp(prefix="labup-cold-image-", dir="/var/tmp")
                label = "cold up (image build included)"
            figures: dict[str, float] = {}
            try:
                figures[label] = nestlab("up", str(spec), "--name", NAME, env=env)
                figures["second up (no-op)"] = nestlab("up", str(spec), "--name", NAME, env=env)
                figures["verify"] = nestlab("verify", "--name", NAME, env=env)
                time.sleep(SETTLE_S)
                figures["idle memory MiB"] = lab_memory_mib(files)
                if args.reboot:
                    simulate_reboot(files)
                    figures["up after reboot"] = nestlab("up", str(spec), "--name", NAME, env=env)
                    figures["verify after reboot"] = nestlab("verify", "--name", NAME, env=env)
            finally:
                figures["down"] = nestlab("down", "--name", NAME, env=env)
            print(f"run {run + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()), flush=True)
            for key, value in figures.items():
                rows.setdefault(key, []).append(value)
    finally:
        shutil.rmtree(spec.parent, ignore_errors=True)
    for key, values in rows.items():
        print(f"median {key}: {statistics.median(values):.1f} (n={len(values)})")


if __name__ == "__main__":
    main()
