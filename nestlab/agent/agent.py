"""The node agent (the Spherelet): pods bound to this node become microVMs, and their status flows back.

One asyncio task watches the pods whose ``spec.nodeName`` is this node; one task per pod
(:meth:`Agent._run_pod`) walks it through admission, image pull, network, launch and pod-init's
events, and reports every change as Pod status (and the noteworthy ones as Events). Deleting a
pod stops its VM gracefully (pod-init: SIGTERM, grace period, SIGKILL), frees its disks, tap and
address, and confirms the deletion (``gracePeriodSeconds=0``); a pod without a VM is confirmed at
once. Blocking work (pulls, QEMU, the control channel) runs in threads.

A pod is Running only while its VM lives. A VM that ends without pod-init saying the pod is done
(QEMU killed, crashed) gets a new VM when the restartPolicy asks, after the kubelet's back-off
(10 s doubling to 5 min); otherwise the pod fails. Everything the agent knows about a pod is in its
state directory, and :meth:`Agent.adopt` (:mod:`nestlab.agent.recovery`) reconciles from what it
observes when the agent (or its host) starts: live VMs are followed again, gone ones restarted or
given their terminal state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nestlab.agent import (
    kernelgate,
    poddns,
    podenv,
    podprobes,
    podsources,
    podspec,
    podstate,
    podvolumes,
    pvsources,
    recovery,
    security,
    vms,
)
from nestlab.agent.images import Image, ImageStore, pull_policy
from nestlab.agent.network import PodAddress, PodNetwork
from nestlab.agent.node import NodeReporter
from nestlab.agent.registry import RegistryError
from nestlab.api import status as api_status
from nestlab.api.client import ApiClient
from nestlab.api.resources import PODS
from nestlab.errors import NestlabError, UsageError
from nestlab.runtime import control, poddesc, qemu
from nestlab.runtime.poddesc import ContainerName, DiskSerial, PodDescription

Obj = dict[str, Any]
log = logging.getLogger("nestlab.agent")
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the NUL
EVENT_POLL_S = 1.0  # how often a pod task looks up from the control channel to check for a stop
STOP_POLL_S = 0.2  # while a VM stops: how often its task checks whether a shorter delete came in
PULL_BACKOFF_S = (2.0, 5.0, 10.0, 20.0)  # ImagePullBackOff delays, the last one repeating
CONFIG_RETRY_S = (2.0, 5.0, 10.0)  # a missing ConfigMap/Secret is looked for again after these
CONFIG_EVENT_EVERY = 30  # while it stays missing, its Event is posted again every 30 attempts (~5 min)
Launcher = Callable[
    [PodDescription, Mapping[DiskSerial, Path], Path, PodAddress | None, list[qemu.ContainerResources]],
    vms.PodHandle,
]
EndVm = Callable[[int, Path], None]
"""(QEMU pid, the pod's VM work dir): end that VM now (SIGKILL), if it still is that pod's QEMU."""
Gate = Callable[[str, Path, tuple[str, ...]], object]
"""(``namespace/name``, the pod's VM work dir, extra kernel parameters): verify and measure the pod's
boot files into the work dir, or raise PodRejected (see nestlab.agent.kernelgate.LaunchGate)."""


def end_qemu(pid: int, workdir: Path) -> None:
    """SIGKILL the pod's QEMU, checking first that ``pid`` still is it (a pid can be reused)."""
    if vms.pid_runs_in(pid, workdir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent keeps things and what it may hand out."""

    node: str
    state_dir: Path
    registry: str
    """Default registry for image names without a host (the depot's ``host:5000``)."""
    cpu_m: int
    memory_mib: int
    max_pods: int = 32
    resync_s: float = 10.0
    cluster_dns: poddns.ClusterDns | None = None
    """The kubelet's --cluster-dns and --cluster-domain; None: pods keep their images' /etc files."""
    resolv_conf: Path | None = Path("/etc/resolv.conf")
    """The node's resolver configuration (dnsPolicy Default); None: 127.0.0.1, as the kubelet's ``""``."""


class Agent:
    """Reconciles the pods bound to ``config.node``."""

    def __init__(
        self,
        config: AgentConfig,
        client: ApiClient,
        reporter: NodeReporter,
        images: ImageStore,
        *,
        launcher: Launcher,
        network: PodNetwork | None = None,
        gate: Gate | None = None,
        vm_backoff: podstate.Backoff = podstate.KUBELET_BACKOFF,
        end_vm: EndVm = end_qemu,
    ) -> None:
        self.config = config
        self.client = client
        self.reporter = reporter
        self.images = images
        self.launcher = launcher
        self.network = network
        self.gate = gate
        self.vm_backoff = vm_backoff
        self.end_vm = end_vm
        self.handles: dict[str, vms.PodHandle] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.records: dict[str, podstate.PodRecord] = {}
        self.unreported: dict[str, Obj] = {}
        """Pods (by uid) whose last status report failed: :meth:`report_again` retries them."""
        self.stopping: dict[str, asyncio.Event] = {}
        self.deadlines: dict[str, float] = {}
        """Pods being deleted (by uid) -> when their containers must be dead (monotonic), from the
        shortest deletionGracePeriodSeconds seen (see :func:`podstate.stop_deadline`)."""
        self.refreshers: dict[str, podsources.VolumeRefresher] = {}
        """Running pods' file volumes as last sent to pod-init (live ConfigMap/Secret updates)."""
        self.pods_dir = config.state_dir / "pods"
        longest = self.pods_dir / ("u" * 36) / "vm" / "control.sock"
        if len(str(longest)) > SOCKET_PATH_MAX:
            raise UsageError(
                f"state dir {config.state_dir} is too long for the pods' unix sockets "
                f"({len(str(longest))} > {SOCKET_PATH_MAX} bytes): choose a shorter --state-dir"
            )
        self.pods_dir.mkdir(parents=True, exist_ok=True)

    # --- pods from the API --------------------------------------------------------------------

    async def sync(self, kind: str, pod: Obj) -> None:
        """React to one pod event from the watch (or from a list)."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if not uid:
            return
        deleting = kind == "DELETED" or bool(meta.get("deletionTimestamp"))
        if uid in self.tasks:
            if deleting:
                grace = meta.get("deletionGracePeriodSeconds")
                if isinstance(grace, int):
                    self.deadlines[uid] = podstate.stop_deadline(
                        self.deadlines.get(uid), time.monotonic(), grace
                    )
                self.stopping[uid].set()
            elif uid in self.refreshers:  # new labels/annotations reach downwardAPI volumes
                self.refreshers[uid].pod = pod
            return
        if deleting:  # no task: no VM to stop, so the deletion completes now
            await self._discard(uid)
            if kind != "DELETED":
                await self._confirm_delete(pod)
            return
        if uid in self.records:
            return  # finished here already: its record stays (for logs) until the pod is deleted
        if (pod.get("status") or {}).get("phase") in podstate.TERMINAL:
            return  # finished before this agent knew it: nothing to run, nothing to report
        self._start(uid, pod)

    def _start(
        self,
        uid: str,
        pod: Obj,
        record: podstate.PodRecord | None = None,
        handle: vms.PodHandle | None = None,
    ) -> None:
        self.stopping[uid] = asyncio.Event()
        self.tasks[uid] = asyncio.create_task(self._guard(uid, pod, record, handle), name=f"pod-{uid}")

    async def _guard(
        self, uid: str, pod: Obj, record: podstate.PodRecord | None, handle: vms.PodHandle | None
    ) -> None:
        try:
            await self._run_pod(uid, pod, record, handle)
        except Exception:
            log.exception("pod %s: the agent's pod task failed", uid)
        finally:
            self.tasks.pop(uid, None)
            self.handles.pop(uid, None)

    # --- one pod ------------------------------------------------------------------------------

    def _save(self, record: podstate.PodRecord) -> None:
        """Keep ``record`` in its pod's state directory (what a restarted agent reconciles from)."""
        record.save(self.pods_dir / record.uid / "record.json")

    async def _report(self, pod: Obj, record: podstate.PodRecord) -> None:
        self._save(record)
        handle = self.handles.get(record.uid)
        body = {"status": podstate.status(record, vm_alive=handle is not None and handle.alive())}
        meta = pod.get("metadata") or {}
        try:
            await self.client.patch(PODS, str(meta.get("namespace")), str(meta.get("name")), body, "status")
        except api_status.ApiError as exc:
            if exc.code == 404:  # the pod is gone: nothing left to tell
                self.unreported.pop(record.uid, None)
                return
            self.unreported[record.uid] = pod
            log.warning(
                "pod %s/%s: status not reported (retrying): %s", meta.get("namespace"), meta.get("name"), exc
            )
        else:
            self.unreported.pop(record.uid, None)

    async def report_again(self) -> None:
        """Report the current status of every pod whose last report failed (an API failover, a moved
        VIP): as the kubelet's status manager resyncs, a lost report must not leave a pod showing an
        old phase until its next change."""
        for uid, pod in list(self.unreported.items()):
            record = self.records.get(uid)
            if record is None:
                self.unreported.pop(uid, None)
                continue
            await self._report(pod, record)

    def _free(self) -> tuple[int, int]:
        cpu, mem = self.config.cpu_m, self.config.memory_mib
        for uid, record in self.records.items():
            # upstream admission counts a terminal pod whose containers are still being killed
            active = record.phase not in podstate.TERMINAL or uid in self.handles
            if active and uid in self.tasks:
                plan_file = self.pods_dir / uid / "requests"
                if plan_file.exists():
                    used_cpu, used_mem = (int(x) for x in plan_file.read_text().split())
                    cpu, mem = cpu - used_cpu, mem - used_mem
        return cpu, mem

    async def _run_pod(
        self, uid: str, pod: Obj, record: podstate.PodRecord | None, handle: vms.PodHandle | None
    ) -> None:
        """Launch (or follow ``handle``), and start a new VM whenever one ends that should not have."""
        workdir = self.pods_dir / uid
        workdir.mkdir(parents=True, exist_ok=True)
        record = record or self._new_record(uid, pod)
        self.records[uid] = record
        stop, failures, ran_s = self.stopping[uid], 0, 0.0
        while True:
            if handle is None and record.phase not in podstate.TERMINAL and not stop.is_set():
                handle = await self._launch(uid, pod, record, workdir)
            ended = False
            if handle is not None:
                since, self.handles[uid] = time.monotonic(), handle
                ended = await self._follow(pod, record, handle)
                ran_s, handle = time.monotonic() - since, None
                self.handles.pop(uid, None)
            await self._release(uid, record)
            if stop.is_set():
                await self._confirm_delete(pod)
                self._forget(uid)
                return
            if not ended:
                await self._report(pod, record)
                return
            failures = 1 if self.vm_backoff.resets_after(ran_s) else failures + 1
            if not await self._vm_ended(pod, record, failures):
                return

    async def _launch(
        self, uid: str, pod: Obj, record: podstate.PodRecord, workdir: Path
    ) -> vms.PodHandle | None:
        """A new VM for the pod, or None (stopping, still pulling, or failed: then reported)."""
        try:
            return await self._prepare_and_launch(uid, pod, record, workdir)
        except podspec.PodRejected as exc:
            podstate.refuse(record, exc.reason, str(exc))
            await self.reporter.event(pod, "Warning", exc.reason, str(exc))
        except (NestlabError, OSError) as exc:
            podstate.refuse(record, "StartError", str(exc))
            await self.reporter.event(pod, "Warning", "Failed", str(exc))
        await self._report(pod, record)
        return None

    async def _vm_ended(self, pod: Obj, record: podstate.PodRecord, failures: int) -> bool:
        """The VM ended without pod-init saying the pod is done: back off then True (start a new VM),
        or False when the restartPolicy does not ask for one (the pod's terminal state is reported)."""
        if not podstate.restarts_vm(record):
            message = "the pod VM ended without pod-init reporting the pod done"
            message += f" (restartPolicy {record.restart_policy})"
            podstate.vm_ended(record, restart=False, lost="Error", message=message)
            await self.reporter.event(pod, "Warning", "VmExited", message)
            await self._report(pod, record)
            return False
        delay = self.vm_backoff.delay(failures)
        message = f"back-off {delay:g}s restarting the pod VM, which ended unexpectedly"
        log.warning("pod %s/%s: %s", record.namespace, record.name, message)
        podstate.vm_ended(record, restart=True, lost="Error", message=message, waiting="CrashLoopBackOff")
        await self._report(pod, record)
        await self.reporter.event(pod, "Warning", "BackOff", message[0].upper() + message[1:])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping[record.uid].wait(), delay)
        return True

    def _new_record(self, uid: str, pod: Obj) -> podstate.PodRecord:
        return podstate.new_record(uid, pod, self.reporter.info.address, self.pods_dir / uid)

    async def _prepare_and_launch(
        self, uid: str, pod: Obj, record: podstate.PodRecord, workdir: Path
    ) -> vms.PodHandle | None:
        plan = podspec.plan(pod, self.config.registry)
        podspec.admit(plan, *self._free())
        (workdir / "requests").write_text(f"{plan.cpu_m} {max(plan.memory_mib, podspec.vm_memory_mib(plan))}")
        await self._report(pod, record)
        pulled = await self._pull_all(pod, plan, record)
        if pulled is None:
            return None
        disks = {podspec.serial_of(image): image.disk for image in pulled.values()}
        address = None
        if self.network is not None:
            address = await asyncio.to_thread(self.network.allocate, uid)
            record.pod_ip = address.ip
        description = await self._describe(pod, plan, pulled, record)
        if description is None:
            return None
        if self.config.cluster_dns is not None:
            host_dns = await asyncio.to_thread(poddns.read_host_config, self.config.resolv_conf)
            description, warnings = podspec.with_names(
                description, plan, self.config.cluster_dns, host_dns, address.ip if address else None
            )
            for warning in warnings:
                await self.reporter.event(pod, "Warning", warning.reason, warning.message)
        poddesc.validate(description)
        if self.stopping[uid].is_set():
            return None
        resources = podspec.vm_resources(plan)
        if self.gate is not None:  # no QEMU unless the kernel verifies; measured right before launch
            extra = address.cmdline() if address is not None else ()
            await asyncio.to_thread(self.gate, f"{record.namespace}/{record.name}", workdir / "vm", extra)
        console = workdir / "vm" / "console.log"
        if console.exists():  # an earlier VM of this pod: its output stays readable beside the new one
            console.replace(console.with_name("console.previous.log"))
        handle = await asyncio.to_thread(
            self.launcher, description, disks, workdir / "vm", address, resources
        )
        self.handles[uid], record.vm_pid = handle, handle.pid
        record.tap = "" if address is None else address.tap.ifname
        await self.reporter.event(pod, "Normal", "Started", f"pod VM started (QEMU pid {handle.pid})")
        await self._report(pod, record)
        return handle

    async def _describe(
        self,
        pod: Obj,
        plan: podspec.PodPlan,
        pulled: Mapping[ContainerName, Image],
        record: podstate.PodRecord,
    ) -> PodDescription | None:
        """The description, once the ConfigMaps/Secrets it needs exist (None: the pod is stopping).
        Meanwhile the pod is Pending as the kubelet shows it: a FailedMount Event for a volume, a
        container waiting with CreateContainerConfigError for its env."""
        attempt, said = 0, ""
        while True:
            retry_s: float | None = None  # a claim waiting for its attachment is looked at sooner
            try:
                found = await pvsources.fetch(self.client, pod)  # claims first: the kubelet mounts first
                claimed = podspec.claim_volumes(pod, self.config.node, found)
                sources = await self._sources(pod, record)
                security.enforce_non_root(pod, {n: image.config.user for n, image in pulled.items()})
                description = podspec.description(plan, pulled, sources, claimed)
            except podspec.WaitingForMount as exc:
                if str(exc) != said or attempt % CONFIG_EVENT_EVERY == 0:
                    await self.reporter.event(pod, "Warning", exc.reason, str(exc))
                said, retry_s = str(exc), exc.retry_s
            except podspec.WaitingForConfig as exc:
                with contextlib.suppress(KeyError):
                    state = record.container(exc.container)
                    state.reason, state.message = exc.reason, str(exc)
                if str(exc) != said or attempt % CONFIG_EVENT_EVERY == 0:
                    await self.reporter.event(pod, "Warning", "Failed", f"Error: {exc}")
                    await self._report(pod, record)
                said = str(exc)
            except api_status.ApiError as exc:
                log.warning("pod %s/%s: reading its sources and claims: %s", plan.namespace, plan.name, exc)
            else:
                for message in podspec.env_warnings(plan, sources):
                    await self.reporter.event(pod, "Warning", "InvalidEnvironmentVariableNames", message)
                for c in record.containers:
                    if c.reason == "CreateContainerConfigError":
                        c.reason, c.message = "ContainerCreating", ""
                self.refreshers[plan.uid] = podsources.VolumeRefresher(pod, description)
                return description
            delay = retry_s or CONFIG_RETRY_S[min(attempt, len(CONFIG_RETRY_S) - 1)]
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: it can swallow a cancellation
                    await self.stopping[plan.uid].wait()
            if self.stopping[plan.uid].is_set():
                return None

    async def _sources(
        self, pod: Obj, record: podstate.PodRecord, *, services: bool = True
    ) -> podenv.Sources:
        config = self.config
        return await podsources.fetch(
            self.client, pod, pod_ip=record.pod_ip, host_ip=record.host_ip, node_cpu_m=config.cpu_m,
            node_memory_mib=config.memory_mib, services=services,
        )  # fmt: skip

    async def _refresh_volumes(self, pod: Obj, record: podstate.PodRecord, handle: vms.PodHandle) -> None:
        """Send the pod's file volumes that changed in the API (live ConfigMap/Secret updates)."""
        refresher = self.refreshers.setdefault(record.uid, podsources.VolumeRefresher(pod))
        if not podvolumes.file_volumes(pod):
            return

        async def send(name: str, files: tuple[poddesc.VolumeFile, ...]) -> None:
            await asyncio.to_thread(handle.send_update, name, files)

        try:
            sources = await self._sources(pod, record, services=False)
            for name in await refresher.refresh(sources, send):
                log.info("pod %s/%s: volume %s updated", record.namespace, record.name, name)
        except (api_status.ApiError, OSError, control.ControlProtocolError) as exc:
            log.warning("pod %s/%s: volume refresh: %s", record.namespace, record.name, exc)

    async def _pull_all(
        self, pod: Obj, plan: podspec.PodPlan, record: podstate.PodRecord
    ) -> dict[ContainerName, Image] | None:
        pulled: dict[ContainerName, Image] = {}
        for c in (*plan.init_containers, *plan.containers):
            attempt = 0
            while c.name not in pulled:
                policy, shown = pull_policy(pod, c.name)
                try:
                    pulled[c.name] = await asyncio.to_thread(
                        self.images.pull,
                        c.image,
                        policy=policy,
                        shown=shown,
                        pod=f"{record.namespace}/{record.name}",
                    )
                except RegistryError as exc:
                    state = record.container(c.name)
                    state.reason = exc.reason if attempt == 0 or not exc.backs_off else "ImagePullBackOff"
                    state.message = str(exc)
                    reason, message = "Failed", f"Failed to pull image {c.image}: {exc}"
                    if not exc.backs_off:  # ErrImageNeverPull: the kubelet's event has that reason
                        reason, message = exc.reason, str(exc)
                    await self.reporter.event(pod, "Warning", reason, message)
                    await self._report(pod, record)
                    delay = PULL_BACKOFF_S[min(attempt, len(PULL_BACKOFF_S) - 1)]
                    attempt += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping[plan.uid].wait(), delay)
                    if self.stopping[plan.uid].is_set():
                        return None
            state = record.container(c.name)
            state.image_id, state.reason, state.message = pulled[c.name].digest, "ContainerCreating", ""
            await self.reporter.event(
                pod,
                "Normal",
                "Pulled",
                f"Image {c.image} is at {pulled[c.name].disk.name} ({pulled[c.name].digest})",
            )
        record.image_digests = sorted({i.digest for i in pulled.values()})
        return pulled

    async def _follow(self, pod: Obj, record: podstate.PodRecord, handle: vms.PodHandle) -> bool:
        """Fold pod-init's events into the status until the pod is done or must stop (False), or
        its VM ends without pod-init reporting the pod done (True)."""
        uid = record.uid
        refresh_at = time.monotonic() + podsources.REFRESH_S
        while True:
            if time.monotonic() >= refresh_at:
                refresh_at = time.monotonic() + podsources.REFRESH_S
                await self._refresh_volumes(pod, record, handle)
            if self.stopping[uid].is_set():
                await self.reporter.event(
                    pod, "Normal", "Killing", "Stopping the pod VM (grace period, then kill)"
                )
                await self._stop_in_time(pod, record, handle)
                return False
            try:
                event = await asyncio.to_thread(handle.next_event, EVENT_POLL_S)
            except control.ControlProtocolError:
                if handle.alive():
                    continue
                event = None
            if event is None:
                await self._stop_vm(record, handle)
                return record.phase not in podstate.TERMINAL
            if isinstance(event, control.VolumeUpdated):
                if not event.ok and uid in self.refreshers:  # pod-init kept the old files: send again
                    self.refreshers[uid].sent.pop(event.volume, None)
                    log.warning(
                        "pod %s/%s: volume %s not updated", record.namespace, record.name, event.volume
                    )
                continue
            if await self._fold(pod, record, handle, event):
                return False

    async def _fold(
        self, pod: Obj, record: podstate.PodRecord, handle: vms.PodHandle, event: control.Event
    ) -> bool:
        """One pod-init event into the status, its Events and the report; True once the pod is done."""
        was_terminal = record.phase in podstate.TERMINAL  # a deadline: Failed before PodDone
        podstate.apply(record, event)
        for kind, reason, message in podprobes.events(event, was_terminal=was_terminal):
            await self.reporter.event(pod, kind, reason, message)
        container = record.container(event.container) if isinstance(event, control.Exited) else None
        if container is not None and container.reason == "CrashLoopBackOff":
            await self.reporter.event(pod, "Warning", "BackOff", container.message)
        done = isinstance(event, control.PodDone)
        if done:  # the VM ends first: a terminal pod's PersistentVolumes are detached at once, so
            await self._stop_vm(record, handle)  # pod-init's sync must be done
        elif not podstate.reportable_while_vm_runs(record):  # the same after a deadline: this status
            self._save(record)  # the report waits for PodDone and the VM's end
            return False
        await self._report(pod, record)
        return done

    async def _stop_in_time(self, pod: Obj, record: podstate.PodRecord, handle: vms.PodHandle) -> None:
        """Stop the VM through pod-init, ending it at the deadline of a delete whose grace period is
        shorter than the one pod-init booted with (also when that delete arrives mid-stop)."""
        spec_grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        own_grace = podspec.DEFAULT_GRACE_S if spec_grace is None else int(spec_grace)
        started = time.monotonic()
        stopping = asyncio.create_task(self._stop_vm(record, handle))
        ended = False
        while not stopping.done():
            end_at = podstate.forced_end(self.deadlines.get(record.uid), started, own_grace)
            if not ended and end_at is not None and time.monotonic() >= end_at and handle.alive():
                ended = True
                message = "The delete's shorter grace period is over: ending the pod VM (SIGKILL)"
                log.info("pod %s/%s: %s", record.namespace, record.name, message)
                await asyncio.to_thread(self.end_vm, handle.pid, self.pods_dir / record.uid / "vm")
                await self.reporter.event(pod, "Normal", "Killing", message)
            await asyncio.wait({stopping}, timeout=STOP_POLL_S)
        await stopping

    async def _stop_vm(self, record: podstate.PodRecord, handle: vms.PodHandle) -> None:
        try:
            await asyncio.to_thread(handle.stop)
        except (NestlabError, OSError) as exc:
            log.warning("pod %s/%s: stopping its VM: %s", record.namespace, record.name, exc)

    async def _release(self, uid: str, record: podstate.PodRecord) -> None:
        """Free what a finished or stopped pod held: tap, address, ephemeral disk (logs stay)."""
        await self._release_network(uid)
        # the gate's verified copies (tens of MB) go too: QEMU read them at start
        for name in ("ephemeral.ext4", "pod.desc", *kernelgate.WORK_COPIES):
            (self.pods_dir / uid / "vm" / name).unlink(missing_ok=True)
        (self.pods_dir / uid / "requests").unlink(missing_ok=True)
        record.vm_pid = 0
        if (self.pods_dir / uid).exists():
            self._save(record)

    async def _release_network(self, uid: str) -> None:
        if self.network is None:
            return
        try:
            await asyncio.to_thread(self.network.release, uid)
        except (NestlabError, OSError) as exc:
            log.warning("pod %s: its tap or address was not freed: %s", uid, exc)

    async def _discard(self, uid: str) -> None:
        """Forget a pod that has no task (and so no VM): its tap, address and state dir go."""
        await self._release_network(uid)
        self._forget(uid)

    async def _confirm_delete(self, pod: Obj) -> None:
        """The final delete (grace 0) of the pod this agent ran, with its uid as a precondition, as
        the kubelet sends it: a new pod of the same name made meanwhile is not removed (409)."""
        meta = pod.get("metadata") or {}
        with contextlib.suppress(api_status.ApiError):
            await self.client.delete(
                PODS, str(meta.get("namespace")), str(meta.get("name")), grace=0, uid=str(meta.get("uid"))
            )

    def _forget(self, uid: str) -> None:
        shutil.rmtree(self.pods_dir / uid, ignore_errors=True)
        self.records.pop(uid, None)
        self.stopping.pop(uid, None)
        self.deadlines.pop(uid, None)
        self.refreshers.pop(uid, None)

    # --- restart ------------------------------------------------------------------------------

    async def adopt(self, pods: Mapping[str, Obj]) -> None:
        """When the agent (or its host) starts: reconcile the pods bound here from what is observed
        (see :func:`nestlab.agent.recovery.adopt`)."""
        await recovery.adopt(self, pods)

    def in_use(self) -> set[str]:
        """Image digests the pods on this node still use (for image garbage collection)."""
        return {d for r in self.records.values() for d in r.image_digests}
