"""What explains a failed e2e test, kept per test: the API's view, pod consoles and the journals.

An e2e failure on a shared lab is gone once the next test (or ``nestlab down``) runs, so the hook in
conftest.py calls :func:`collect` right after a test fails, before its fixtures are torn down (the
test's namespace still exists). It writes into ``<nestlab home>/e2e-artifacts/<test id>/``
(``NESTLAB_E2E_ARTIFACTS`` moves it), one file per source:

- ``kubectl get all,events -A -o wide``, pods and nodes wide, ``describe nodes``;
- in the test's namespace: ``describe`` and ``-o yaml`` of each workload kind;
- per host: every pod's console (``<agent state dir>/pods/<uid>/vm/console.log``, with the pod's
  record naming it), the QEMU processes, and ``journalctl -u nestlab-agent`` since the test began;
- per control-plane node: the journals of nestlab-controller and nestlab-apiserver since then;
- per load balancer: the journals of nestlab-edge, keepalived and HAProxy since then, its addresses
  (who holds the VIP) and its ``ip nestlab-edge`` table (what LoadBalancer traffic meets there);
- on the outer machine: its neighbour entries and routes on the lab bridge (where the VIP and the
  ingress range are sent).

The ``artifacts_dir`` fixture (autouse) clears a previous run's directory when the test starts.
Collection is best effort and bounded: each command has a timeout, the whole collection a budget,
hosts are read in parallel, and an error becomes a line in ``errors.txt``, never a second failure
(a stopped host cannot be read; that is no reason to lose the rest).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path

from nestlab import paths
from nestlab.runtime import proc
from tests.e2e.conftest import LiveLab

AGENT_STATE_DIR = "/var/lib/nestlab-agent"  # roles/esx_host/defaults/main.yml: esx_host_state_dir
COMMAND_S = 45.0  # one kubectl or SSH command; an unreachable host fails well within it
BUDGET_S = 240.0  # the whole collection: a failing CI run must still end
JOURNAL_LINES = 3000  # per unit; enough for the minutes of one test, bounded for a chatty agent
CONSOLE_LINES = 200  # per pod console: the boot and the last container output
NAMESPACED_KINDS = (
    "pods",
    "deployments",
    "replicasets",
    "statefulsets",
    "jobs",
    "cronjobs",
    "poddisruptionbudgets",
    "events",
)
CONSOLES = (
    f'for d in {AGENT_STATE_DIR}/pods/*/; do echo "=== $d"; head -c 2000 "$d/record.json" 2>/dev/null;'
    f' echo; tail -n {CONSOLE_LINES} "$d/vm/console.log" 2>/dev/null; done;'
    " echo '=== QEMU processes'; pgrep -af '[q]emu-system' || true"
)

LB_NETWORK = "ip -o addr show; ip route show; nft list table ip nestlab-edge"


def root() -> Path:
    """Where the per-test directories go."""
    configured = os.environ.get("NESTLAB_E2E_ARTIFACTS")
    return Path(configured) if configured else paths.home() / "e2e-artifacts"


def directory_for(nodeid: str) -> Path:
    """The test's own directory: its node id made a file name."""
    return root() / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:180]


def _nestlab() -> str:
    return str(Path(sys.executable).parent / "nestlab")


def _jobs(lab: LiveLab, namespace: str | None, since: datetime) -> dict[str, list[str]]:
    """file name -> argv of every command whose output is kept."""
    kubectl = ["kubectl", "--kubeconfig", str(lab.files.kubeconfig), "--request-timeout=20s"]
    jobs = {
        "get-all.txt": [*kubectl, "get", "all,events", "-A", "-o", "wide"],
        "get-pods.txt": [*kubectl, "get", "pods", "-A", "-o", "wide"],
        "get-nodes.txt": [*kubectl, "get", "nodes", "-o", "wide"],
        "describe-nodes.txt": [*kubectl, "describe", "nodes"],
    }
    if namespace:
        for kind in NAMESPACED_KINDS:
            jobs[f"describe-{kind}.txt"] = [*kubectl, "describe", kind, "-n", namespace]
            jobs[f"{kind}.yaml"] = [*kubectl, "get", kind, "-n", namespace, "-o", "yaml"]
    document = json.loads(lab.files.plan.read_text())
    epoch = f"@{int(since.timestamp())}"
    for node in document["nodes"]:
        name, role = str(node["name"]), node["role"]
        ssh = [_nestlab(), "ssh", "--name", lab.name, name, "--"]
        journal = f"journalctl --no-pager -o short-precise --since {epoch} -n {JOURNAL_LINES}"
        if role == "host":
            jobs[f"{name}-consoles.txt"] = [*ssh, CONSOLES]
            jobs[f"{name}-agent.log"] = [*ssh, f"{journal} -u nestlab-agent"]
        elif role == "control-plane":
            for unit in ("nestlab-controller", "nestlab-apiserver"):
                jobs[f"{name}-{unit}.log"] = [*ssh, f"{journal} -u {unit}"]
        elif role == "load-balancer":
            for unit in ("nestlab-edge", "keepalived", "haproxy"):
                jobs[f"{name}-{unit}.log"] = [*ssh, f"{journal} -u {unit}"]
            jobs[f"{name}-network.txt"] = [*ssh, LB_NETWORK]
    jobs["outer-network.txt"] = ["sh", "-c", f"ip neigh show; ip route show; ip route get {document['vip']}"]
    return jobs


def _keep(target: Path, argv: list[str], errors: Callable[[str], None]) -> None:
    try:
        result = proc.run(argv, timeout=COMMAND_S, check=False)
    except proc.ProcessError as exc:  # timed out, or not installed
        errors(f"{target.name}: {exc}")
        return
    header = f"$ {' '.join(argv)}\n# exit {result.returncode}\n"
    target.write_text(header + result.stdout + (f"\n# stderr\n{result.stderr}" if result.stderr else ""))
    if result.returncode != 0:
        errors(f"{target.name}: exit {result.returncode}: {result.stderr.strip()[-300:]}")


def collect(lab: LiveLab, nodeid: str, namespace: str | None, since: datetime) -> Path:
    """Keep what explains the failure of test ``nodeid``; the directory it went to."""
    target = directory_for(nodeid)
    target.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    try:
        jobs = _jobs(lab, namespace, since)
    except (OSError, ValueError, KeyError) as exc:
        problems.append(f"cannot read the lab's plan: {exc}")
        jobs = {}
    pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="e2e-artifacts")
    futures = [pool.submit(_keep, target / name, argv, problems.append) for name, argv in jobs.items()]
    _, late = wait(futures, timeout=BUDGET_S)
    pool.shutdown(wait=False, cancel_futures=True)  # the stragglers end by their own timeouts
    if late:
        problems.append(f"{len(late)} command(s) not finished within the {BUDGET_S:g}s budget")
    (target / "errors.txt").write_text("".join(f"{p}\n" for p in problems))
    return target
