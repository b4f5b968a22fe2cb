"""Measure attestation on a running lab: one host at a time and the whole lab, through `nestlab attest`.

Run as root on a lab that `nestlab up` built:  .venv/bin/python bench/attest_lab.py --name LAB --runs 5
Each run asks the verifier on the control plane (over SSH) to attest one host, then every host; the
figures include SSH and the verifier's start-up, so they are what an admin waits for. The verifier's
own per-host time (nonce -> quote -> checks, without SSH and start-up) is the `seconds` it reports
per verdict when it reports one. Prints medians and min/max per case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from nestlab.paths import LabFiles
from nestlab.runtime import proc


def nestlab(*args: str) -> tuple[float, proc.Result]:
    command = [str(Path(sys.executable).parent / "nestlab"), *args]
    started = time.monotonic()
    result = proc.run(command, timeout=600, check=False)
    return time.monotonic() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    plan = json.loads(LabFiles.named(args.name).plan.read_text())
    hosts = [n["name"] for n in plan["nodes"] if n["role"] == "host"]
    cases: dict[str, list[float]] = {host: [] for host in hosts}
    cases["whole lab"] = []
    failures = 0
    for _ in range(args.runs):
        for case, values in cases.items():
            target = [] if case == "whole lab" else [case]
            seconds, result = nestlab("attest", "--name", args.name, "--json", *target)
            failures += result.returncode != 0
            values.append(seconds)
    print(f"attestation through `nestlab attest`, {args.runs} runs each ({failures} failed runs)")
    for case, values in cases.items():
        print(
            f"  {case:10s} median {statistics.median(values):6.2f} s"
            f"  min {min(values):6.2f}  max {max(values):6.2f}"
        )
    per_host = statistics.median(statistics.median(cases[h]) for h in hosts)
    print(f"  whole lab / one host (medians): {statistics.median(cases['whole lab']) / per_host:.2f}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
