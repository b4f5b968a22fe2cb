"""Pod start latency through the whole node agent, against a bare launch of the same pod VM.

Stands up, on loopback and a bench-owned pod bridge (root): a one-member etcd, the real
nestlab-apiserver, Debian's docker-registry with the demo images, and a real nestlab-agent. Then,
one pod at a time (so every pod gets the same CPU), creates an httpd pod bound to the node and
times create -> ``Running`` and create -> the first HTTP answer from the pod's address, and deletes
it. The baseline launches the same kernel, initramfs, image disk and description directly with
``nestlab.runtime.pod.launch`` on a tap of its own and times launch -> first HTTP answer. Then it
starts idle 64 MiB pods side by side, samples QEMU's RSS minus guest RAM and CPU use when idle, and
estimates how many such pods the host holds. Prints p50/p90 and ratios.

    sudo .venv/bin/python bench/pod_start.py --pods 20 --idle 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback import one_member_etcd, pki
from nestlab.agent import images, podspec, vms
from nestlab.agent.network import PodNetwork
from nestlab.agent.registry import parse_ref
from nestlab.images import demo
from nestlab.runtime import accel, initramfs, kernel, pod, proc, qemu
from nestlab.runtime.poddesc import ContainerName
from tests.integration.agent.conftest import NODE, qemu_pids, start_agent, start_registry, stop_agent
from tests.integration.api.conftest import ApiServer, start_apiserver, wait_until

NS = "bench"
TIMEOUT_S = 300.0
PAGE = "/index.html"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def http_ok(ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}{PAGE}", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def web_pod(name: str, image: str) -> dict[str, Any]:
    container = {"name": "web", "image": image, "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": [container]},
    }


def through_agent(api: ApiServer, image: str, count: int) -> tuple[list[float], list[float]]:
    running, answering = [], []
    for i in range(count):
        name = f"web-{i}"
        start = time.monotonic()
        code, body = api.request("POST", f"/api/v1/namespaces/{NS}/pods", web_pod(name, image))
        if code != 201:
            raise SystemExit(f"creating {name} failed: {body}")
        t_running = ip = None
        while time.monotonic() - start < TIMEOUT_S:
            status = api.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")[1].get("status") or {}
            if status.get("phase") == "Running" and t_running is None:
                t_running, ip = time.monotonic() - start, status.get("podIP")
            if status.get("phase") == "Failed":
                raise SystemExit(f"pod {name} failed: {status}")
            if ip and http_ok(ip):
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"pod {name} did not answer within {TIMEOUT_S}s")
        running.append(t_running or 0.0)
        answering.append(time.monotonic() - start)
        api.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}")
        wait_until(
            lambda n=name: api.request("GET", f"/api/v1/namespaces/{NS}/pods/{n}")[0] == 404, "delete", 60
        )
        print(f"  agent {i + 1}/{count}: Running {running[-1]:.2f}s, HTTP {answering[-1]:.2f}s", flush=True)
    return running, answering


def bare(boot: pod.BootFiles, image: images.Image, work: Path, count: int) -> list[float]:
    net = PodNetwork(f"nlbb{os.getpid() % 100000}", "198.18.248.0/28", work / "net")
    net.setup()
    plan = podspec.plan(web_pod("bare", "nestlab/web:1"), "unused")
    description = podspec.description(plan, {ContainerName("web"): image})
    times = []
    try:
        for i in range(count):
            address = net.allocate(f"bare-{i}")
            start = time.monotonic()
            vm = pod.launch(
                description, {podspec.serial_of(image): image.disk}, work / f"bare-{i}", boot,
                accel.Accel("tcg", "bench"), resources=[c.resources for c in plan.containers],
                cmdline=address.cmdline(), tap=address.tap,
            )  # fmt: skip
            try:
                while not http_ok(address.ip):
                    if time.monotonic() - start > TIMEOUT_S:
                        raise SystemExit("bare pod did not answer")
                    time.sleep(0.05)
                times.append(time.monotonic() - start)
            finally:
                vms.LaunchedVm(vm).stop()
                net.release(f"bare-{i}")
            print(f"  bare {i + 1}/{count}: HTTP {times[-1]:.2f}s", flush=True)
    finally:
        proc.run(["ip", "link", "del", net.bridge], timeout=10, check=False)
    return times


def idle(api: ApiServer, image: str, state: Path, count: int) -> None:
    for i in range(count):
        api.request("POST", f"/api/v1/namespaces/{NS}/pods", web_pod(f"idle-{i}", image))
    for i in range(count):
        wait_until(
            lambda n=f"idle-{i}": (
                (api.request("GET", f"/api/v1/namespaces/{NS}/pods/{n}")[1].get("status") or {}).get("phase")
                == "Running"
            ),
            "idle pod",
            TIMEOUT_S,
        )
    time.sleep(10)  # let boots settle
    pids = qemu_pids(state)
    guest_mib = qemu.size([qemu.ContainerResources(memory_limit_mib=64, cpu_limit_m=500)])[1]
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    before = {p: cpu(p) for p in pids}
    time.sleep(10)
    cpu_pct = [100 * (cpu(p) - before[p]) / 10 for p in pids]
    rss = []
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss.append(int(line.split()[1]) / 1024)
    available = next(
        int(line.split()[1]) / 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    mean_rss = statistics.mean(rss)
    print(f"idle pods: {len(pids)} (guest {guest_mib} MiB each)")
    overhead = statistics.median(rss) - guest_mib
    print(
        f"  QEMU RSS median {statistics.median(rss):.0f} MiB; RSS minus guest RAM median {overhead:.0f} MiB"
    )
    print(f"  idle CPU per pod median {statistics.median(cpu_pct):.1f}% of a core")
    print(
        f"  memory: {available:.0f} MiB available -> about {int(available / mean_rss)} more such pods by RSS"
    )
    for i in range(count):
        api.request("DELETE", f"/api/v1/namespaces/{NS}/pods/idle-{i}")
    for i in range(count):  # the agent removes VMs and taps before it confirms
        wait_until(
            lambda n=f"idle-{i}": api.request("GET", f"/api/v1/namespaces/{NS}/pods/{n}")[0] == 404,
            "delete",
            120,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--idle", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nlb-"))
    started: list[Any] = []
    try:
        certs = pki(work)
        etcd_url, etcd = one_member_etcd(work)
        started.append(etcd)
        url, api_proc, log = start_apiserver(certs, [etcd_url], work)
        started.append(api_proc)
        api = ApiServer(url, certs, log, api_proc)
        registry = start_registry(work / "registry")
        started.append(registry.process)
        demo.publish(registry.address)
        boot_paths = (kernel.build().vmlinux, initramfs.build().initramfs)
        agent = start_agent(
            api,
            registry,
            boot_paths,
            work,
            "--pod-subnet",
            "198.18.249.0/26",
            "--pod-bridge",
            f"nlba{os.getpid() % 100000}",
        )
        api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        print(f"{args.pods} pods through the agent, one at a time (TCG):", flush=True)
        running, answering = through_agent(api, "nestlab/web:1", args.pods)
        image = images.ImageStore(work / "bare-images").pull(parse_ref("nestlab/web:1", registry.address))
        print(f"{args.pods} bare launches of the same VM:", flush=True)
        baseline = bare(pod.BootFiles(*boot_paths), image, work, args.pods)
        idle(api, "nestlab/web:1", agent.state, args.idle)
        print()
        for label, values in (
            ("create -> Running", running),
            ("create -> HTTP", answering),
            ("bare launch -> HTTP", baseline),
        ):
            print(f"{label:22s} p50 {percentile(values, 0.5):6.2f}s  p90 {percentile(values, 0.9):6.2f}s")
        print(f"ratio agent/bare (HTTP)  p50 {percentile(answering, 0.5) / percentile(baseline, 0.5):.2f}  "
              f"p90 {percentile(answering, 0.9) / percentile(baseline, 0.9):.2f}")  # fmt: skip
        stop_agent(agent)
        proc.run(["ip", "link", "del", f"nlba{os.getpid() % 100000}"], timeout=10, check=False)
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
