"""The node agent (the Spherelet): pods bound to this node become microVMs, and their status flows back.

One asyncio task watches the pods whose ``spec.nodeName`` is this node; one task per pod
(:meth:`Agent._run_pod`) walks it through admission, image pull, network, launch and pod-init's
events, and reports every change as Pod status (and the noteworthy ones as Events). Deleting a
pod stops its VM gracefully (pod-init: SIGTERM, grace period, SIGKILL), frees its disks, tap and
address, and confirms the deletion (``gracePeriodSeconds=0``). Blocking work (pulls, QEMU, the
control channel) runs in threads. Everything the agent knows about a pod is in its state
directory, so :meth:`Agent.adopt` picks running VMs up again after the agent restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nestlab.agent import kernelgate, podspec, podstate, vms
from nestlab.agent.images import Image, ImageStore
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
PULL_BACKOFF_S = (2.0, 5.0, 10.0, 20.0)  # ImagePullBackOff delays, the last one repeating
Launcher = Callable[
    [PodDescription, Mapping[DiskSerial, Path], Path, PodAddress | None, list[qemu.ContainerResources]],
    vms.PodHandle,
]
Gate = Callable[[str, Path, tuple[str, ...]], object]
"""(``namespace/name``, the pod's VM work dir, extra kernel parameters): verify and measure the pod's
boot files into the work dir, or raise PodRejected (see nestlab.agent.kernelgate.LaunchGate)."""


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
    ) -> None:
        self.config = config
        self.client = client
        self.reporter = reporter
        self.images = images
        self.launcher = launcher
        self.network = network
        self.gate = gate
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.records: dict[str, podstate.PodRecord] = {}
        self.stopping: dict[str, asyncio.Event] = {}
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
                self.stopping[uid].set()
            return
        if deleting:
            self._forget(uid)
            if kind != "DELETED":
                await self._confirm_delete(pod)
            return
        if uid in self.records:
            return  # finished here already: its record stays (for logs) until the pod is deleted
        if (pod.get("status") or {}).get("phase") in podstate.TERMINAL:
            return  # finished before this agent knew it: nothing to run, nothing to report
        self._start(uid, pod, None)

    def _start(self, uid: str, pod: Obj, adopted: tuple[podstate.PodRecord, vms.PodHandle] | None) -> None:
        self.stopping[uid] = asyncio.Event()
        self.tasks[uid] = asyncio.create_task(self._guard(uid, pod, adopted), name=f"pod-{uid}")

    async def _guard(
        self, uid: str, pod: Obj, adopted: tuple[podstate.PodRecord, vms.PodHandle] | None
    ) -> None:
        try:
            await self._run_pod(uid, pod, adopted)
        except Exception:
            log.exception("pod %s: the agent's pod task failed", uid)
        finally:
            self.tasks.pop(uid, None)

    # --- one pod ------------------------------------------------------------------------------

    async def _report(self, pod: Obj, record: podstate.PodRecord) -> None:
        record.save(self.pods_dir / record.uid / "record.json")
        body = {"status": podstate.status(record)}
        meta = pod.get("metadata") or {}
        try:
            await self.client.patch(PODS, str(meta.get("namespace")), str(meta.get("name")), body, "status")
        except api_status.ApiError as exc:
            log.warning("pod %s/%s: status not reported: %s", meta.get("namespace"), meta.get("name"), exc)

    def _free(self) -> tuple[int, int]:
        cpu, mem = self.config.cpu_m, self.config.memory_mib
        for uid, record in self.records.items():
            if record.phase not in podstate.TERMINAL and uid in self.tasks:
                plan_file = self.pods_dir / uid / "requests"
                if plan_file.exists():
                    used_cpu, used_mem = (int(x) for x in plan_file.read_text().split())
                    cpu, mem = cpu - used_cpu, mem - used_mem
        return cpu, mem

    async def _run_pod(
        self, uid: str, pod: Obj, adopted: tuple[podstate.PodRecord, vms.PodHandle] | None
    ) -> None:
        workdir = self.pods_dir / uid
        handle: vms.PodHandle | None = None
        if adopted is not None:
            record, handle = adopted
            self.records[uid] = record
        else:
            record = self._new_record(uid, pod)
            workdir.mkdir(parents=True, exist_ok=True)
            self.records[uid] = record
            try:
                handle = await self._prepare_and_launch(uid, pod, record, workdir)
            except podspec.PodRejected as exc:
                podstate.fail(record, exc.reason, str(exc))
                await self.reporter.event(pod, "Warning", exc.reason, str(exc))
            except (NestlabError, OSError) as exc:
                podstate.fail(record, "StartError", str(exc))
                await self.reporter.event(pod, "Warning", "Failed", str(exc))
            await self._report(pod, record)
        if handle is not None:
            await self._follow(pod, record, handle)
        await self._release(uid, record)
        if self.stopping[uid].is_set():
            await self._confirm_delete(pod)
            self._forget(uid)
        else:
            await self._report(pod, record)

    def _new_record(self, uid: str, pod: Obj) -> podstate.PodRecord:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        containers = [
            podstate.ContainerState(name=str(c.get("name", "")), image=str(c.get("image", "")))
            for c in spec.get("containers") or []
        ]
        return podstate.PodRecord(
            uid=uid,
            namespace=str(meta.get("namespace", "default")),
            name=str(meta.get("name", "")),
            restart_policy=str(spec.get("restartPolicy") or "Always"),
            containers=containers,
            host_ip=self.reporter.info.address,
            workdir=str(self.pods_dir / uid),
        )

    async def _prepare_and_launch(
        self, uid: str, pod: Obj, record: podstate.PodRecord, workdir: Path
    ) -> vms.PodHandle | None:
        plan = podspec.plan(pod, self.config.registry)
        podspec.admit(plan, *self._free())
        (workdir / "requests").write_text(
            f"{plan.cpu_m} {max(plan.memory_mib, qemu.size([c.resources for c in plan.containers])[1])}"
        )
        await self._report(pod, record)
        pulled = await self._pull_all(pod, plan, record)
        if pulled is None:
            return None
        description = podspec.description(plan, pulled)
        poddesc.validate(description)
        disks = {podspec.serial_of(image): image.disk for image in pulled.values()}
        address = None
        if self.network is not None:
            address = await asyncio.to_thread(self.network.allocate, uid)
            record.pod_ip = address.ip
        if self.stopping[uid].is_set():
            return None
        resources = [c.resources for c in plan.containers]
        if self.gate is not None:  # no QEMU unless the kernel verifies; measured right before launch
            extra = address.cmdline() if address is not None else ()
            await asyncio.to_thread(self.gate, f"{record.namespace}/{record.name}", workdir / "vm", extra)
        handle = await asyncio.to_thread(
            self.launcher, description, disks, workdir / "vm", address, resources
        )
        record.vm_pid = handle.pid
        record.tap = "" if address is None else address.tap.ifname
        await self.reporter.event(pod, "Normal", "Started", f"pod VM started (QEMU pid {handle.pid})")
        await self._report(pod, record)
        return handle

    async def _pull_all(
        self, pod: Obj, plan: podspec.PodPlan, record: podstate.PodRecord
    ) -> dict[ContainerName, Image] | None:
        pulled: dict[ContainerName, Image] = {}
        for c in plan.containers:
            attempt = 0
            while c.name not in pulled:
                try:
                    pulled[c.name] = await asyncio.to_thread(self.images.pull, c.image)
                except RegistryError as exc:
                    state = record.container(c.name)
                    state.reason = exc.reason if attempt == 0 else "ImagePullBackOff"
                    state.message = str(exc)
                    await self.reporter.event(
                        pod, "Warning", "Failed", f"Failed to pull image {c.image}: {exc}"
                    )
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

    async def _follow(self, pod: Obj, record: podstate.PodRecord, handle: vms.PodHandle) -> None:
        """Fold pod-init's events into the status until the pod is done or must stop."""
        uid = record.uid
        while True:
            if self.stopping[uid].is_set():
                await self.reporter.event(
                    pod, "Normal", "Killing", "Stopping the pod VM (grace period, then kill)"
                )
                await asyncio.to_thread(handle.stop)
                return
            try:
                event = await asyncio.to_thread(handle.next_event, EVENT_POLL_S)
            except control.ControlProtocolError:
                if handle.alive():
                    continue
                event = None
            if event is None:
                if record.phase not in podstate.TERMINAL:
                    podstate.fail(
                        record, "VmExited", "the pod VM ended without pod-init reporting the pod done"
                    )
                await asyncio.to_thread(handle.stop)
                return
            podstate.apply(record, event)
            if (
                isinstance(event, control.Exited)
                and record.container(event.container).reason == "CrashLoopBackOff"
            ):
                await self.reporter.event(
                    pod, "Warning", "BackOff", record.container(event.container).message
                )
            await self._report(pod, record)
            if isinstance(event, control.PodDone):
                await asyncio.to_thread(handle.stop)
                return

    async def _release(self, uid: str, record: podstate.PodRecord) -> None:
        """Free what a finished or stopped pod held: tap, address, ephemeral disk (logs stay)."""
        if self.network is not None:
            await asyncio.to_thread(self.network.release, uid)
        # the gate's verified copies (tens of MB) go too: QEMU read them at start
        for name in ("ephemeral.ext4", "pod.desc", *kernelgate.WORK_COPIES):
            (self.pods_dir / uid / "vm" / name).unlink(missing_ok=True)
        (self.pods_dir / uid / "requests").unlink(missing_ok=True)
        record.vm_pid = 0
        if (self.pods_dir / uid).exists():
            record.save(self.pods_dir / uid / "record.json")

    async def _confirm_delete(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        with contextlib.suppress(api_status.ApiError):
            await self.client.delete(PODS, str(meta.get("namespace")), str(meta.get("name")), grace=0)

    def _forget(self, uid: str) -> None:
        shutil.rmtree(self.pods_dir / uid, ignore_errors=True)
        self.records.pop(uid, None)
        self.stopping.pop(uid, None)

    # --- restart ------------------------------------------------------------------------------

    async def adopt(self, pods: Mapping[str, Obj]) -> None:
        """After a restart: resume following every live VM of a pod still bound here; clean the rest."""
        for directory in sorted(self.pods_dir.iterdir()):
            uid = directory.name
            record_file = directory / "record.json"
            pod = pods.get(uid)
            if pod is None or not record_file.exists():
                if pod is None and record_file.exists():
                    record = podstate.PodRecord.load(record_file)
                    if (
                        record.vm_pid
                        and (handle := vms.adopt(record.vm_pid, directory / "vm", 0)) is not None
                    ):
                        await asyncio.to_thread(handle.stop)
                if self.network is not None:
                    await asyncio.to_thread(self.network.release, uid)
                self._forget(uid)
                continue
            record = podstate.PodRecord.load(record_file)
            self.records[uid] = record
            grace = int(
                (pod.get("spec") or {}).get("terminationGracePeriodSeconds") or podspec.DEFAULT_GRACE_S
            )
            handle = vms.adopt(record.vm_pid, directory / "vm", grace) if record.vm_pid else None
            if handle is not None:
                log.info("pod %s/%s: adopted QEMU pid %d", record.namespace, record.name, record.vm_pid)
                self._start(uid, pod, (record, handle))
            elif record.phase not in podstate.TERMINAL and not record.vm_pid:
                # stopped before its VM was launched (pulling, preparing): start it over
                self._forget(uid)
                self._start(uid, pod, None)
            elif record.phase not in podstate.TERMINAL:
                podstate.fail(record, "VmExited", "the pod VM ended while the agent was down")
                self._start(uid, pod, (record, _Gone()))

    def in_use(self) -> set[str]:
        """Image digests the pods on this node still use (for image garbage collection)."""
        return {d for r in self.records.values() for d in r.image_digests}


class _Gone:
    """A VM that is already gone: the pod task reports and cleans up, nothing else."""

    pid = 0

    def next_event(self, timeout: float) -> control.Event | None:
        return None

    def alive(self) -> bool:
        return False

    def stop(self) -> None:
        return None
