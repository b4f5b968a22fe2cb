"""``nestlab-agent``: the node agent process (flags, wiring, the watch loop, heartbeats, shutdown).

Everything here is wiring: the reconciliation is :mod:`nestlab.agent.agent`. The loop lists the
pods bound to the node, adopts VMs a previous agent left running, then watches from the list's
resourceVersion; a watch that ends, breaks or goes silent (a half-open path through a moved VIP)
is followed by a new list (pods that vanished meanwhile are then treated as deleted) and a watch
from its version. Pod VMs are started with ``nice`` so the control plane
keeps CPU priority on a shared host (the systemd unit also sets a low CPUWeight).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nestlab.agent import kernelgate, logs, logstore, poddns, streams, vms
from nestlab.agent.agent import Agent, AgentConfig
from nestlab.agent.attestation import Attestation
from nestlab.agent.images import ImageStore
from nestlab.agent.network import PodAddress, PodNetwork
from nestlab.agent.node import LEASE_DURATION_S, NodeInfo, NodeReporter
from nestlab.agent.registry import RegistryClient
from nestlab.agent.registryauth import TokenAuth
from nestlab.api import status as api_status
from nestlab.api.client import WATCH_IDLE_S, ApiClient, Credentials, watch_timeout
from nestlab.api.resources import PODS
from nestlab.errors import UsageError
from nestlab.runtime import accel, pod, poddesc, proc, qemu
from nestlab.runtime.poddesc import DiskSerial, PodDescription
from nestlab.runtime.streams import PodStreams
from nestlab.trust.measure import Measurer
from nestlab.trust.tpm import Tpm

log = logging.getLogger("nestlab.agent")
NICE = "10"  # pod VMs yield the CPU to etcd and the API server on a shared host
WATCH_TIMEOUT_S = 150  # shortest timeoutSeconds of the pod watch; each asks for 1-2x this (spread)
RESUME_DELAY_S = 0.5  # first wait after a broken watch or a failed list (the VIP may be moving)
RESUME_DELAY_MAX_S = 5.0  # doubling up to this while the API stays away; reset by any event
STATUS_EVERY_S = 30.0  # Node status refresh; the Lease is the fast heartbeat
PACKAGE_DIR = "/usr/lib/nestlab/pod-kernel"  # where the nestlab-pod-kernel package installs
DEFAULT_TCTI = "swtpm:host=127.0.0.1,port=2321"  # the node's own swtpm (nestlab-swtpm.service)
DEFAULT_LOG = Path("/run/nestlab/measurements.json")  # tmpfs: empty at every host boot, like the PCRs
GC_EVERY_S = 600.0  # image garbage collection; images used in the last GC_EVERY_S are kept
REPORT_RETRY_S = 2.0  # a status report the API refused (failover) is sent again this often


def nice_spawn(argv: Sequence[str], **kwargs: Any) -> proc.Process:
    """proc.spawn with the pod VM's CPU priority lowered."""
    return proc.spawn(["nice", "-n", NICE, *argv], **kwargs)


def make_launcher(
    boot: pod.BootFiles | None, chosen: accel.Accel, log_pods_dir: Path = logstore.LOG_PODS_DIR
) -> Any:
    """The real launcher: :func:`nestlab.runtime.pod.launch` under ``nice``.

    ``boot`` None: the launch gate is on, and the pod boots the verified copies it left in its work dir.
    """

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
            boot or kernelgate.work_boot(workdir),
            chosen,
            resources=resources,
            cmdline=address.cmdline() if address else (),
            tap=address.tap if address else None,
            vmm=qemu.QemuVmm(spawn=nice_spawn),
            host_dirs={poddesc.LOG_PODS: log_pods_dir},  # hostPath /var/log/pods: this node's directory
        )
        return vms.LaunchedVm(vm)

    return launch


def choose_accel(
    name: str, boot: pod.BootFiles | None, signed: kernelgate.SignedKernel | None, probe_dir: Path
) -> accel.Accel:
    """``--accel``, or a probe boot of the pod kernel (the verified copy when the gate is on)."""
    if name in ("kvm", "tcg"):
        return accel.Accel("kvm" if name == "kvm" else "tcg", "chosen by --accel")
    if boot is not None:
        return accel.probe(pod_kernel=(boot.kernel, boot.initrd))
    if signed is None:
        raise UsageError("no pod kernel to probe the accelerator with: give --kernel or --kernel-cert")
    try:
        verified = kernelgate.verify_into(signed, probe_dir)
    except kernelgate.KernelVerificationFailed as exc:
        # never boot it, not even to probe: TCG works everywhere, and every pod fails the gate anyway
        log.error("%s; accelerator probe skipped", exc)  # noqa: TRY400 - the admin reads the message
        return accel.Accel("tcg", "the pod kernel failed verification, so KVM was not probed with it")
    try:
        return accel.probe(pod_kernel=(verified.boot.kernel, verified.boot.initrd))
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


async def _relist(agent: Agent, client: ApiClient, selector: str, *, first: bool) -> str:
    """List the node's pods, make the agent match them (adopt on the first list); the list's version."""
    listing = await client.list(PODS, fields=selector)
    items = {str(p["metadata"]["uid"]): p for p in listing.get("items", [])}
    if first:
        await agent.adopt(items)
    for uid in [u for u in list(agent.records) + list(agent.tasks) if u not in items]:
        await agent.sync("DELETED", {"metadata": {"uid": uid}})
    for item in items.values():
        await agent.sync("ADDED", item)
    return _version(listing)


async def watch_loop(agent: Agent, client: ApiClient, node: str) -> None:
    """List and adopt, then watch the node's pods; list again whenever a watch ends.

    A watch that ends (its timeoutSeconds), breaks, or goes silent for WATCH_IDLE_S (a half-open
    path through a moved VIP; the server bookmarks a quiet watch) is followed by a new list of the
    node's pods and a watch from that list's version (pods that vanished meanwhile are treated as
    deleted). Informers resume from their last version instead; the agent cannot yet: its watch
    filters on spec.nodeName, and the server's bookmarks carry the last version *sent* on the
    stream, not how far the server has read etcd (upstream's watch cache sends its progress). A
    host whose pods did not change for a while therefore resumed from an old version, and the
    server replayed every pod change since then, longer than the watch lasted: in a CI run a host
    saw no pod for half an hour. A list of one host's pods is cheap and starts the watch at now.
    """
    selector = f"spec.nodeName={node}"
    first, failures = True, 0
    while True:
        try:
            since = await _relist(agent, client, selector, first=first)
            first = False
            events = client.watch(
                PODS,
                fields=selector,
                since=since,
                timeout=watch_timeout(WATCH_TIMEOUT_S),
                bookmarks=True,
                idle=WATCH_IDLE_S,
            )
            async for kind, obj in events:
                failures = 0
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    await agent.sync(kind, obj)
        except api_status.ApiError as exc:
            delay = (
                0.0 if exc.code == 410 else min(RESUME_DELAY_MAX_S, RESUME_DELAY_S * 2 ** min(failures, 10))
            )
            failures += 1
            log.info("pod watch ended (%s); listing again in %.1fs", exc, delay)
            await asyncio.sleep(delay)


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


async def retry_reports(agent: Agent) -> None:
    """Every REPORT_RETRY_S, report again the pod statuses the API did not take."""
    while True:
        await asyncio.sleep(REPORT_RETRY_S)
        await agent.report_again()


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
    add(
        "--log-pods-dir",
        type=Path,
        default=logstore.LOG_PODS_DIR,
        help="container logs in the kubelet's layout; exported read-only to pods with hostPath /var/log/pods",
    )
    add("--registry", required=True, help="host:port of the lab registry for names without a host")
    add("--cpu", type=int, default=2000, help="millicores pods may request")
    add("--memory", type=int, default=2048, help="MiB pods may request")
    add("--max-pods", type=int, default=32)
    add("--pod-subnet", default="", help="this host's pod subnet; empty: pods without network")
    add("--pod-bridge", default="nlpods")
    add("--peer", action="append", default=[], help="SUBNET=VIA: route a peer host's pod subnet")
    add(
        "--cluster-dns",
        action="append",
        default=[],
        help="cluster DNS Service address for ClusterFirst pods (repeatable, or comma-separated)",
    )
    add("--cluster-domain", default=poddns.DEFAULT_DOMAIN, help="cluster DNS domain pods search")
    add("--resolv-conf", default="/etc/resolv.conf", help="resolver config of dnsPolicy Default pods")
    add("--kernel", type=Path, help="pod kernel (vmlinux) booted without the trust gate (tests, dev)")
    add("--initrd", type=Path, required=True, help="pod initramfs with pod-init")
    add(
        "--kernel-image",
        type=Path,
        default=Path(PACKAGE_DIR, kernelgate.SIGNED_NAME),
        help="signed pod kernel",
    )
    add("--kernel-cert", type=Path, help="lab kernel-signing certificate: turns the trust gate on")
    add("--tpm", default=DEFAULT_TCTI, help="TCTI of the host's TPM (measurements, attestation)")
    add("--measure-log", type=Path, default=DEFAULT_LOG, help="measurement event log")
    add("--attestation-dir", type=Path, help="registration.json and ak.crt: enables POST /attestation")
    add("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    add("--log-host", default="0.0.0.0")  # noqa: S104 - the API servers reach it over the lab network
    add("--log-port", type=int, default=10250)
    add("--tls-cert", type=Path, help="node serving certificate for the log port (plain HTTP without)")
    add("--tls-key", type=Path)
    args = parser.parse_args(argv)
    if args.kernel is None and args.kernel_cert is None:
        parser.error("give --kernel-cert (signed pod kernel, trust gate on) or --kernel (no gate)")
    args.cluster_dns = [a.strip() for value in args.cluster_dns for a in value.split(",") if a.strip()]
    for address in args.cluster_dns:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            parser.error(f"--cluster-dns {address!r} is not an IP address")
    return args


def cluster_dns(args: argparse.Namespace) -> tuple[poddns.ClusterDns, Path | None]:
    """The kubelet-style DNS flags as the agent's configuration (``--resolv-conf=""``: none)."""
    dns = poddns.ClusterDns(tuple(args.cluster_dns), args.cluster_domain.strip("."))
    return dns, Path(args.resolv_conf) if args.resolv_conf else None


async def run(args: argparse.Namespace) -> None:
    token = args.token_file.read_text().strip() if args.token_file else None
    client = ApiClient(Credentials(args.api_server, args.ca, token, args.cert, args.key))
    registry_auth = TokenAuth.for_node(args.ca, args.cert, args.key, token)
    info = NodeInfo(
        args.node_name, args.node_ip, args.cpu, args.memory, args.max_pods, args.log_port, args.pod_subnet
    )
    reporter = NodeReporter(client, info)
    host_tpm = Tpm(args.tpm)
    measurer = Measurer(host_tpm, args.measure_log)
    signed = None
    boot: pod.BootFiles | None = pod.BootFiles(args.kernel, args.initrd)
    if args.kernel_cert is not None:
        signed = kernelgate.SignedKernel(args.kernel_image, args.initrd, args.kernel_cert)
        boot = None
    chosen = await asyncio.to_thread(choose_accel, args.accel, boot, signed, args.state_dir / "accel-probe")
    network = None
    if args.pod_subnet:
        network = PodNetwork(args.pod_bridge, args.pod_subnet, args.state_dir / "network")
        peers = dict(p.split("=", 1) for p in args.peer)
        await asyncio.to_thread(network.setup, peers)
    dns, resolv_conf = cluster_dns(args)
    config = AgentConfig(
        args.node_name,
        args.state_dir,
        args.registry,
        args.cpu,
        args.memory,
        args.max_pods,
        cluster_dns=dns,
        resolv_conf=resolv_conf,
    )
    agent = Agent(
        config,
        client,
        reporter,
        ImageStore(args.state_dir / "images", lambda registry: RegistryClient(registry, auth=registry_auth)),
        launcher=make_launcher(boot, chosen, args.log_pods_dir),
        network=network,
        gate=None if signed is None else kernelgate.LaunchGate(signed, measurer, chosen),
    )

    def lookup(namespace: str, name: str) -> logstore.PodLogs | None:
        for record in agent.records.values():
            if (record.namespace, record.name) == (namespace, name):
                return logstore.pod_logs(record)
        return None

    def streams_of(uid: str) -> PodStreams | None:
        handle = agent.handles.get(uid)
        return handle.streams if handle is not None and handle.alive() else None

    def sessions(namespace: str, name: str) -> streams.StreamTarget | None:
        return streams.find_target(agent.records, streams_of, namespace, name)

    mirror = logstore.Mirror(logstore.ensure_log_pods_dir(args.log_pods_dir), args.state_dir / "pods")
    collector = logstore.Collector(
        lambda: [logstore.pod_logs(r) for r in agent.records.values()], mirror=mirror
    )

    context = logs.tls_context(args.tls_cert, args.tls_key, args.ca) if args.tls_cert else None
    attestation = None
    if args.attestation_dir is not None:
        attestation = Attestation(host_tpm, measurer, args.attestation_dir)
    runner = await logs.serve(
        lookup,
        args.log_host,
        args.log_port,
        context,
        attestation,
        refresh=collector.ingest,
        sessions=sessions,
    )
    await reporter.register()
    log.info(
        "node %s registered (accel %s, trust gate %s); watching its pods",
        args.node_name,
        chosen.name,
        "on" if signed else "off",
    )
    tasks = [
        asyncio.create_task(heartbeat(reporter)),
        asyncio.create_task(watch_loop(agent, client, args.node_name)),
        asyncio.create_task(collect_images(agent)),
        asyncio.create_task(retry_reports(agent)),
        asyncio.create_task(collector.run()),
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
