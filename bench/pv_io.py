"""Persistent volume I/O and attach time on the lab: fio on a PV, on the ephemeral disk, on the host disk.

Run as root on a lab that `nestlab up` built:
    .venv/bin/python bench/pv_io.py --name LAB

- PVC create -> attached and mounted: a claim of the default class (WaitForFirstConsumer) and a
  pod using it are created together; timed until the pod's first line (its container started on
  the mounted volume), with the provisioning, attach and boot split out from the objects' times;
- fio (Debian's, packed into a throwaway image ``nestlab/fio:1`` pushed to the lab registry with
  the libraries it links) runs the same jobs inside one pod VM on the PV (NBD from the depot's
  datastore over the lab network) and on the pod's ephemeral disk (a file on its host), and on
  this machine's disk (the host's disk every lab node's files live on), in the same run:
  sequential write and read MB/s (1 MiB blocks, O_DIRECT) and 4k random read IOPS; each ratio
  against the host's disk.
Asserts nothing; prints figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nestlab.agent.registry import RegistryClient
from nestlab.images import oci
from nestlab.runtime import disks
from tests.e2e.labtools import address_of, attach, get_json, kubectl, wait_for

Obj = dict[str, Any]
FIO = Path("/usr/bin/fio")
SIZE = "48M"  # per job file: small enough for TCG pods on two shared cores, past every cache we skip
JOBS = (
    ("seq-write", ["--rw=write", "--bs=1M", f"--size={SIZE}"]),
    ("seq-read", ["--rw=read", "--bs=1M", f"--size={SIZE}"]),
    ("rand-read-4k", ["--rw=randread", "--bs=4k", f"--size={SIZE}", "--runtime=15", "--time_based"]),
)
COMMON = ["--ioengine=psync", "--direct=1", "--output-format=json"]


def fio_root(directory: Path) -> Path:
    """A busybox root with Debian's fio and every library ``ldd`` says it loads."""
    if not FIO.exists():
        raise SystemExit("fio is missing: apt-get install fio (scripts/apt-packages.txt lists it)")
    root = disks.busybox_root(directory, applets=("sh", "echo", "cat", "mkdir", "rm", "true"))
    out = subprocess.run(["ldd", str(FIO)], capture_output=True, text=True, check=True).stdout  # noqa: S603,S607
    libraries = [Path(part) for line in out.splitlines() for part in line.split() if part.startswith("/")]
    for source in [FIO, *libraries]:
        target = root / source.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.resolve(), target)
    return root


def script(directory: str, where: str) -> str:
    """The jobs against ``directory``; each one's (pretty, multi-line) JSON between ``FIO-BEGIN where
    name`` and ``FIO-END`` lines (pod-init splits console lines past 1 KiB: one-line JSON would break)."""
    lines = [f"mkdir -p {directory}/fio"]
    for name, args in JOBS:
        argv = " ".join(["fio", f"--name={name}", f"--filename={directory}/fio/{name}", *args, *COMMON])
        lines.append(f'echo "FIO-BEGIN {where} {name}"; {argv}; echo FIO-END')
    lines.append(f"rm -rf {directory}/fio")
    return "; ".join(lines)


def figures(log: str) -> dict[tuple[str, str], float]:
    """(where, job) -> MB/s (sequential) or IOPS (random) from the fio sections of ``log``."""
    found: dict[tuple[str, str], float] = {}
    section: list[str] | None = None
    where = name = ""
    for line in log.splitlines():
        if line.startswith("FIO-BEGIN "):
            _, where, name = line.split()
            section = []
        elif line == "FIO-END" and section is not None:
            job = json.loads("\n".join(section))["jobs"][0]
            side = job["write"] if "write" in name else job["read"]
            found[(where, name)] = side["iops"] if "rand" in name else side["bw_bytes"] / 1e6
            section = None
        elif section is not None:
            section.append(line)
    return found


def pod(namespace: str, image: str) -> Obj:
    command = f"echo started; {script('/pv', 'pv')}; {script('/eph', 'eph')}; echo done"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fio", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "fio",
                    "image": image,
                    "command": ["sh", "-c", command],
                    "resources": {"limits": {"memory": "256Mi"}},
                    "volumeMounts": [
                        {"name": "pv", "mountPath": "/pv"},
                        {"name": "eph", "mountPath": "/eph"},
                    ],
                }
            ],
            "volumes": [
                {"name": "pv", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "eph", "emptyDir": {}},
            ],
        },
    }


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    args = parser.parse_args()
    lab = attach(args.name)
    registry = f"{address_of(lab, 'depot')}:5000"
    with tempfile.TemporaryDirectory(prefix="nestlab-fio-image-") as tmp:
        root = fio_root(Path(tmp) / "root")
        oci.push(RegistryClient(registry), "nestlab/fio", ["1"], root, oci.Recipe(cmd=("sh",)))
    namespace = f"bench-pv-{uuid.uuid4().hex[:6]}"
    kubectl(lab, "create", "namespace", namespace)
    try:
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "256Mi"}}},
        }
        began = time.time()
        for obj in (claim, pod(namespace, "depot:5000/nestlab/fio:1")):
            kubectl(lab, "apply", "-f", "-", stdin=json.dumps(obj))

        def log() -> str:
            return kubectl(lab, "logs", "fio", "-n", namespace, check=False).stdout

        wait_for(lambda: "started" in log(), "the fio pod started on its volume")
        mounted = time.time() - began
        pv = get_json(lab, "pvc", "data", "-n", namespace)
        attachment = next(
            a
            for a in get_json(lab, "volumeattachments")["items"]
            if a["spec"]["source"].get("persistentVolumeName") == pv["spec"]["volumeName"]
        )
        created = stamp(get_json(lab, "pv", pv["spec"]["volumeName"])["metadata"]["creationTimestamp"])
        attached = stamp(attachment["metadata"]["creationTimestamp"])
        print(
            f"PVC create -> attached and mounted (container started): {mounted:.1f} s "
            f"(PV created after {created - began:.1f} s, VolumeAttachment after {attached - began:.1f} s)"
        )
        wait_for(lambda: "done" in log(), "fio in the pod finished", timeout=1800)
        found = figures(log())
        with tempfile.TemporaryDirectory(prefix="nestlab-fio-host-", dir="/var/lib/nestlab") as host_dir:
            host = subprocess.run(  # noqa: S603
                ["/bin/sh", "-c", script(host_dir, "host")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        found.update(figures(host))
        print(f"{'job':<20}{'PV':>10}{'ephemeral':>11}{'host disk':>11}{'PV/host':>9}{'PV/eph':>8}")
        for name, _ in JOBS:
            unit = "IOPS" if "rand" in name else "MB/s"
            pv_io, eph, disk = (found.get((where, name), 0.0) for where in ("pv", "eph", "host"))
            print(
                f"{name + ' ' + unit:<20}{pv_io:>10.1f}{eph:>11.1f}{disk:>11.1f}"
                f"{pv_io / disk if disk else 0:>9.3f}{pv_io / eph if eph else 0:>8.3f}"
            )
    finally:
        kubectl(lab, "delete", "namespace", namespace, "--wait=false", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
