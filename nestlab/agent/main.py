"""``nestlab-agent``: the node agent process (flags, wiring, the watch loop, heartbeats, shutdown).

Everything here is wiring: the reconciliation is :mod:`nestlab.agent.agent`. The loop lists the
pods bound to the node, adopts VMs a previous agent left running, then watches from the list's
resourceVersion; when the watch breaks (API server restart, 410 Gone) it lists again and treats
pods that vanished meanwhile as deleted. Pod VMs are started with ``nice`` so the control plane
keeps CPU priority on a shared host (the systemd unit also sets a low CPUWeight).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nestlab.agent import logs, vms
from nestlab.agent.agent import Agent, AgentConfig
from nestlab.agent.images import ImageStore
from nestlab.agent.network import PodAddress, PodNetwork
from nestlab.agent.node import LEASE_DURATION_S, NodeInfo, NodeReporter
from nestlab.api import status as api_status
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import PODS
from nestlab.runtime import accel, pod, proc, qemu
from nestlab.runtime.poddesc import DiskSerial, PodDescription

log = logging.getLogger("nestlab.agent")
NICE = "10"  # pod VMs yield the CPU to etcd and the API server on a shared host
WATCH_TIMEOUT_S = 300
RELIST_DELAY_S = 2.0
STATUS_EVERY_S = 30.0  # Node status refresh; the Lease is the fast heartbeat
GC_EVERY_S = 600.0  # image garbage collection; images used in the last GC_EVERY_S are kept


def nice_spawn(argv: Sequence[str], **kwargs: Any) -> proc.Process:
    """proc.spawn with the pod VM's CPU priority lowered."""
    return proc.spawn(["nice", "-n", NICE, *argv], **kwargs)


def make_launcher(boot: pod.BootFiles, chosen: accel.Accel) -> Any:
    """The real launcher: :func:`nestlab.runtime.pod.launch` under ``nice``."""

    def launch(
        description: PodDescription,
        disks: Mapping[DiskSerial, Path],
        workdir: Path,
        address: PodAddress | None,
        resources: list[qemu.ContainerResources],
    ) -> vms.PodHandle:
        vm = pod.launch(
            description,
            disks,
            workdir,
            boot,
            chosen,
            resources=resources,
            cmdline=address.cmdline() if address else (),
            tap=address.tap if address else None,
            vmm=qemu.QemuVmm(spawn=nice_spawn),
        )
        return vms.LaunchedVm(vm)

    return launch


async def watch_loop(agent: Agent, client: ApiClient, node: str) -> None:
    """List, adopt, then watch the node's pods forever (relisting whenever the watch ends)."""
    selector = f"spec.nodeName={node}"
    first = True
    while True:
        try:
            listing = await client.list(PODS, fields=selector)
        except api_status.ApiError as exc:
            log.warning("listing pods failed: %s", exc)
            await asyncio.sleep(RELIST_DELAY_S)
            continue
        items = {str(p["metadata"]["uid"]): p for p in listing.get("items", [])}
        if first:
            await agent.adopt(items)
            first = False
        for uid in [u for u in list(agent.records) + list(agent.tasks) if u not in items]:
            await agent.sync("DELETED", {"metadata": {"uid": uid}})
        for item in items.values():
            await agent.sync("ADDED", item)
        since = str((listing.get("metadata") or {}).get("resourceVersion", ""))
        try:
            async for kind, obj in client.watch(PODS, fields=selector, since=since, timeout=WATCH_TIMEOUT_S):
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    await agent.sync(kind, obj)
        except api_status.ApiError as exc:
            log.info("pod watch ended (%s); listing again", exc)
            await asyncio.sleep(RELIST_DELAY_S)


async def heartbeat(reporter: NodeReporter) -> None:
    """Renew the Lease every quarter of its duration; refresh the Node status now and then."""
    since_status = 0.0
    while True:
        try:
            await reporter.renew()
            since_status += LEASE_DURATION_S / 4
            if since_status >= STATUS_EVERY_S:
                await reporter.post_status()
                since_status = 0.0
        except api_status.ApiError as exc:
            log.warning("heartbeat failed: %s", exc)
        await asyncio.sleep(LEASE_DURATION_S / 4)


async def collect_images(agent: Agent) -> None:
    """Remove image disks no pod on this node uses, every GC_EVERY_S."""
    while True:
        await asyncio.sleep(GC_EVERY_S)
        removed = await asyncio.to_thread(agent.images.collect, agent.in_use(), GC_EVERY_S)
        if removed:
            log.info("image GC removed %s", ", ".join(removed))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nestlab-agent", description="nestlab node agent (Spherelet)")
    add = parser.add_argument
    add("--api-server", required=True, help="https://VIP:6443")
    add("--ca", type=Path, help="CA of the API server's certificate (and of clients of the log port)")
    add("--token-file", type=Path, help="bearer token of system:node:<node>")
    add("--cert", type=Path, help="node client certificate (instead of a token)")
    add("--key", type=Path)
    add("--node-name", required=True)
    add("--node-ip", required=True, help="management address: hostIP of pods, target of peer routes")
    add("--state-dir", type=Path, default=Path("/var/lib/nestlab-agent"))
    add("--registry", required=True, help="host:port of the lab registry for names without a host")
    add("--cpu", type=int, default=2000, help="millicores pods may request")
    add("--memory", type=int, default=2048, help="MiB pods may request")
    add("--max-pods", type=int, default=32)
    add("--pod-subnet", default="", help="this host's pod subnet; empty: pods without network")
    add("--pod-bridge", default="nlpods")
    add("--peer", action="append", default=[], help="SUBNET=VIA: route a peer host's pod subnet")
    add("--kernel", type=Path, required=True, help="pod kernel (vmlinux)")
    add("--initrd", type=Path, required=True, help="pod initramfs with pod-init")
    add("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    add("--log-host", default="0.0.0.0")  # noqa: S104 - the API servers reach it over the lab network
    add("--log-port", type=int, default=10250)
    add("--tls-cert", type=Path, help="node serving certificate for the log port (plain HTTP without)")
    add("--tls-key", type=Path)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    token = args.token_file.read_text().strip() if args.token_file else None
    client = ApiClient(Credentials(args.api_server, args.ca, token, args.cert, args.key))
    info = NodeInfo(
        args.node_name, args.node_ip, args.cpu, args.memory, args.max_pods, args.log_port, args.pod_subnet
    )
    reporter = NodeReporter(client, info)
    boot = pod.BootFiles(args.kernel, args.initrd)
    chosen = (
        accel.probe(pod_kernel=(boot.kernel, boot.initrd))
        if args.accel == "auto"
        else accel.Accel(args.accel, "chosen by --accel")
    )
    network = None
    if args.pod_subnet:
        network = PodNetwork(args.pod_bridge, args.pod_subnet, args.state_dir / "network")
        peers = dict(p.split("=", 1) for p in args.peer)
        await asyncio.to_thread(network.setup, peers)
    config = AgentConfig(args.node_name, args.state_dir, args.registry, args.cpu, args.memory, args.max_pods)
    agent = Agent(
        config,
        client,
        reporter,
        ImageStore(args.state_dir / "images"),
        launcher=make_launcher(boot, chosen),
        network=network,
    )

    def lookup(namespace: str, name: str) -> Path | None:
        for record in agent.records.values():
            if (record.namespace, record.name) == (namespace, name):
                return Path(record.workdir) / "vm" / "console.log"
        return None

    context = logs.tls_context(args.tls_cert, args.tls_key, args.ca) if args.tls_cert else None
    runner = await logs.serve(lookup, args.log_host, args.log_port, context)
    await reporter.register()
    log.info("node %s registered (accel %s); watching its pods", args.node_name, chosen.name)
    tasks = [
        asyncio.create_task(heartbeat(reporter)),
        asyncio.create_task(watch_loop(agent, client, args.node_name)),
        asyncio.create_task(collect_images(agent)),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in [*tasks, *agent.tasks.values()]:
        task.cancel()  # pod VMs keep running: the next agent adopts them
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runner.cleanup()
    await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # the message is for the admin reading journalctl
        log.error("nestlab-agent: %s", exc)  # noqa: TRY400
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
