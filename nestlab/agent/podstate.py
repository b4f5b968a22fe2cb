"""What the agent knows about one pod, and the Pod status it reports: pure, persisted as JSON.

pod-init's events (started, exited, failed, pod done) move each container through the kubelet's
states: ``waiting`` (ContainerCreating, ErrImagePull, CrashLoopBackOff), ``running`` and
``terminated`` (Completed, Error, StartError), with restart counts and the last termination. The
record is saved in the pod's state directory after every change, so a restarted agent reports the
same status and restart counts instead of starting over.

A pod VM can also end without pod-init saying the pod is done: QEMU killed or crashed, or the host
restarted under it. :func:`vm_ended` is the kubelet's answer to a lost sandbox: a new VM when the
restartPolicy asks for one (each container's restartCount + 1, the lost run kept as
``lastState.terminated``, exit code 137 as upstream reports a container it could no longer find),
else the pod's real terminal state. :func:`status` never reports Running without a live VM.

Init containers have their own list (``initContainerStatuses``); the app containers wait with
reason ``PodInitializing`` until every init container has succeeded. pod-init's probe events set
each container's ``ready`` and ``started``, and :func:`status` derives the Initialized,
ContainersReady and Ready conditions from them as the kubelet's status generator does (a
container without a readiness probe is ready once started), which takes an unready pod out of
its Services' endpoints.

A terminal phase is final, as upstream: pod-init's ``deadline`` event makes the pod Failed
(DeadlineExceeded) at once, while its containers are still being stopped, and a container that
exits after that is terminated for good (never CrashLoopBackOff: a terminal pod restarts nothing).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nestlab.agent import podconditions
from nestlab.agent.podprobes import DEADLINE_EXCEEDED
from nestlab.runtime import control

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
LOST_EXIT_CODE = 137  # what upstream reports for a container it lost (ContainerStatusUnknown): 128 + SIGKILL


def now() -> str:
    """RFC 3339 UTC, second precision (what Kubernetes timestamps use)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """One container's state as the kubelet reports it."""

    name: str
    image: str
    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    signal: int = 0
    restarts: int = 0
    started_at: str = ""
    finished_at: str = ""
    last: Obj | None = None
    """The previous termination (``lastState.terminated``) after a restart."""
    image_id: str = ""
    base: int = 0
    """Restarts counted in this pod's earlier VMs: pod-init counts from 0 in each new VM."""
    init: bool = False
    has_readiness: bool = False
    has_startup: bool = False
    ready: bool = False
    """The readiness probe's state (pod-init reports changes)."""
    started_ok: bool = False
    """The startup probe succeeded, or the container has none and runs."""
    restart_pending: bool = False
    """pod-init is killing it for a failed probe or hook and will start it again."""


@dataclass
class PodRecord:
    """The agent's view of one pod; ``save``/``load`` keep it across agent restarts."""

    uid: str
    namespace: str
    name: str
    restart_policy: str
    containers: list[ContainerState]
    phase: str = "Pending"
    reason: str = ""
    message: str = ""
    pod_ip: str = ""
    host_ip: str = ""
    start_time: str = field(default_factory=now)
    vm_pid: int = 0
    tap: str = ""
    workdir: str = ""
    image_digests: list[str] = field(default_factory=list)
    init_containers: list[ContainerState] = field(default_factory=list)

    def all(self) -> list[ContainerState]:
        """Init containers, then app containers."""
        return [*self.init_containers, *self.containers]

    def initialized(self) -> bool:
        """Every init container has succeeded (True without init containers)."""
        return all(c.state == "terminated" and c.exit_code == 0 for c in self.init_containers)

    def container(self, name: str) -> ContainerState:
        for c in self.all():
            if c.name == name:
                return c
        raise KeyError(name)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> PodRecord:
        data = json.loads(path.read_text())
        data["containers"] = [ContainerState(**c) for c in data["containers"]]
        data["init_containers"] = [ContainerState(**c) for c in data.get("init_containers") or []]
        return cls(**data)


def new_record(uid: str, pod: Obj, host_ip: str, workdir: Path) -> PodRecord:
    """A fresh record for ``pod`` (a Pod object as the API returns it)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    init = spec.get("initContainers") or []
    waiting = "PodInitializing" if init else "ContainerCreating"  # the kubelet's default waiting reason

    def state(c: Obj, is_init: bool) -> ContainerState:
        return ContainerState(
            name=str(c.get("name", "")),
            image=str(c.get("image", "")),
            reason=waiting,
            init=is_init,
            has_readiness=bool(c.get("readinessProbe")),
            has_startup=bool(c.get("startupProbe")),
        )

    return PodRecord(
        uid=uid,
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        restart_policy=str(spec.get("restartPolicy") or "Always"),
        containers=[state(c, False) for c in spec.get("containers") or []],
        host_ip=host_ip,
        workdir=str(workdir),
        init_containers=[state(c, True) for c in init],
    )


def _will_restart(policy: str, c: ContainerState, code: int) -> bool:
    if c.init:  # init containers run to success: OnFailure under Always
        return policy != "Never" and code != 0
    if c.restart_pending:  # killed for a failed liveness/startup probe or postStart hook
        return policy != "Never"
    return policy == "Always" or (policy == "OnFailure" and code != 0)


def _settle_back_offs(record: PodRecord) -> None:
    """Containers waiting to restart in a pod that ended (deadline, host stop) never will: each
    one's last exit is its final state, and the restart it was waiting for is not counted."""
    for c in record.all():
        if c.state == "waiting" and c.reason == "CrashLoopBackOff" and c.last:
            last, c.last, c.restarts = c.last, None, max(c.restarts - 1, 0)
            c.state, c.reason, c.message = "terminated", str(last["reason"]), ""
            c.exit_code, c.signal = int(last["exitCode"]), int(last.get("signal") or 0)
            c.started_at, c.finished_at = (
                str(last.get("startedAt") or ""),
                str(last.get("finishedAt") or ""),
            )


def _lifecycle(record: PodRecord, event: control.Event) -> None:
    if isinstance(event, control.ProbeResult):
        c = record.container(event.container)
        if event.probe == "readiness":
            c.ready = event.state
        elif event.probe == "startup" and event.state:
            c.started_ok = True
    elif isinstance(event, control.Killing):
        record.container(event.container).restart_pending = event.restart
    elif isinstance(event, control.DeadlineExceeded):  # the kubelet: Failed at the deadline, kills after
        record.phase, record.reason, record.message = "Failed", "DeadlineExceeded", DEADLINE_EXCEEDED
        _settle_back_offs(record)
    elif isinstance(event, control.PodDone):
        _settle_back_offs(record)
        if event.reason == "DeadlineExceeded":
            record.message = DEADLINE_EXCEEDED


def apply(record: PodRecord, event: control.Event, when: str | None = None) -> None:
    """Fold one pod-init event into ``record``."""
    stamp = when or now()
    if isinstance(event, control.Started):
        c = record.container(event.container)
        c.state, c.reason, c.message, c.exit_code = "running", "", "", None
        c.started_at, c.restarts = stamp, c.base + event.restarts
        c.ready, c.started_ok, c.restart_pending = False, not c.has_startup, False
        app = all(i is not c for i in record.init_containers)  # upstream: Pending while initializing
        if app and record.phase not in TERMINAL:
            record.phase = "Running"
    elif isinstance(event, control.Exited):
        c = record.container(event.container)
        reason = "Completed" if event.code == 0 else "Error"
        terminated: Obj = {
            "exitCode": event.code,
            "signal": event.signal,
            "reason": reason,
            "startedAt": c.started_at or stamp,
            "finishedAt": stamp,
        }
        c.ready = c.started_ok = False
        # a terminal pod's containers are being killed, never restarted (the deadline passed)
        restart = record.phase not in TERMINAL and _will_restart(record.restart_policy, c, event.code)
        c.restart_pending = False
        if restart:
            c.state, c.reason, c.last = "waiting", "CrashLoopBackOff", terminated
            c.message = f"back-off restarting failed container {c.name} (exit code {event.code})"
            c.restarts = c.base + event.restarts + 1
        else:
            c.state, c.reason, c.exit_code, c.signal = "terminated", reason, event.code, event.signal
            c.finished_at = stamp
    elif isinstance(event, control.Failed):
        c = record.container(event.container)
        c.state, c.reason, c.exit_code, c.finished_at = "terminated", "StartError", 128, stamp
        c.message = f"pod-init could not start the container ({event.reason})"
    elif isinstance(event, control.PodDone):
        record.phase = event.phase
        record.reason = event.reason or ""
    _lifecycle(record, event)


def fail(record: PodRecord, reason: str, message: str) -> None:
    """The pod cannot run (admission, image, VM): phase Failed with ``reason``."""
    record.phase, record.reason, record.message = "Failed", reason, message
    for c in record.all():
        if c.state != "terminated":
            c.state, c.reason, c.message = "waiting", reason, message


MIN_GRACE_S = 2  # upstream kubelet's minimumGracePeriodInSeconds: even --grace-period=0 gets 2 s


def stop_deadline(current: float | None, received_at: float, grace_s: int) -> float:
    """When the pod's containers must be dead after a delete received at ``received_at`` (monotonic)
    asking ``grace_s``: the earliest of all deletes, as upstream's pod workers keep it (a second,
    shorter delete shortens a stop in progress; a longer one never extends it)."""
    wanted = received_at + max(grace_s, MIN_GRACE_S)
    return wanted if current is None else min(current, wanted)


def forced_end(deadline: float | None, stop_started: float, spec_grace_s: int) -> float | None:
    """When the agent must end the pod VM itself, or None.

    pod-init kills the containers ``spec_grace_s`` (the grace it booted with: the pod's
    terminationGracePeriodSeconds) after the stop began, then syncs and powers off. A delete whose
    ``deadline`` comes earlier can only be honoured by ending the VM at that deadline (the SIGKILL
    upstream's runtime sends when the grace is over).
    """
    if deadline is None or deadline >= stop_started + spec_grace_s:
        return None
    return deadline


def refuse(record: PodRecord, reason: str, message: str) -> None:
    """The pod failed before any VM of it started (kernel refused, admission, launch error): as
    :func:`fail`, and without a pod IP. The address was only reserved, never configured in a guest,
    and upstream reports no podIP for a pod whose sandbox never ran; a learner who sees one tries
    to reach it."""
    fail(record, reason, message)
    record.pod_ip = ""


@dataclass(frozen=True)
class Backoff:
    """Delays before a pod VM that ended unexpectedly is started again: the kubelet's CrashLoopBackOff."""

    initial_s: float = 10.0
    """The first delay; each further one doubles (kubelet: 10 s)."""
    cap_s: float = 300.0
    """The longest delay (kubelet: 5 min)."""

    def delay(self, failures: int) -> float:
        """The delay before the new VM after ``failures`` consecutive unexpected ends (1 for the first)."""
        return float(min(self.initial_s * 2 ** max(failures - 1, 0), self.cap_s))

    def resets_after(self, ran_s: float) -> bool:
        """A VM that ran this long starts the count over (kubelet: 10 min without problems, 2 x cap)."""
        return ran_s >= 2 * self.cap_s


KUBELET_BACKOFF = Backoff()


def succeeded(record: PodRecord) -> bool:
    """Every container ran to exit code 0 (what pod-init reports as the pod Succeeded)."""
    return bool(record.containers) and all(
        c.state == "terminated" and c.exit_code == 0 for c in record.containers
    )


def reportable_while_vm_runs(record: PodRecord) -> bool:
    """Whether ``record`` may be reported while its VM still runs.

    Not a terminal pod without a running container: the attacher keeps a terminal pod's
    PersistentVolumes only while a container of it is reported running (nestlab's nodes report no
    ``volumesInUse``), and pod-init syncs and unmounts them after its last container ended. Such a
    status (a deadline's last kill, or a deadline hit with nothing running) waits for the VM's end.
    """
    return record.phase not in TERMINAL or any(c.state == "running" for c in record.all())


def restarts_vm(record: PodRecord) -> bool:
    """Whether a pod whose VM ended unexpectedly gets a new one: Always, or OnFailure unless it succeeded."""
    if record.restart_policy == "Always":
        return True
    return record.restart_policy == "OnFailure" and not succeeded(record)


def vm_ended(
    record: PodRecord,
    *,
    restart: bool,
    lost: str,
    message: str,
    waiting: str = "ContainerCreating",
    when: str | None = None,
) -> None:
    """The pod's VM ended without pod-init reporting the pod done (killed, crashed, host restarted).

    ``restart``: back to Pending for a new VM. Each container that had started counts a restart and
    keeps that run as ``lastState.terminated`` (reason ``lost``, exit code 137 unless it had exited),
    then waits with reason ``waiting``; a container already in CrashLoopBackOff counted its restart
    when it exited. Otherwise the terminal state: Succeeded when every container had succeeded,
    else Failed (VmExited) with the running containers terminated as ``lost``.
    """
    stamp = when or now()
    if not restart:
        if succeeded(record):
            record.phase, record.reason, record.message = "Succeeded", "", ""
            return
        for c in record.all():
            if c.state == "running":
                c.state, c.reason, c.message = "terminated", lost, message
                c.exit_code, c.signal, c.finished_at = LOST_EXIT_CODE, 0, stamp
        fail(record, "VmExited", message)
        return
    for c in record.all():  # a new VM runs the init containers again, as a new sandbox does
        if c.state in ("running", "terminated"):
            known = c.state == "terminated" and c.exit_code is not None
            c.last = {
                "exitCode": c.exit_code if known else LOST_EXIT_CODE,
                "signal": c.signal if known else 0,
                "reason": c.reason if known else lost,
                "message": "" if known else message,
                "startedAt": c.started_at or None,
                "finishedAt": c.finished_at if known else stamp,
            }
            c.restarts += 1
        c.base = c.restarts
        c.state, c.reason, c.message, c.exit_code, c.signal = "waiting", waiting, message, None, 0
        c.ready = c.started_ok = c.restart_pending = False
    record.phase, record.reason, record.message = "Pending", "", ""


def ended_while_away(record: PodRecord, node: str) -> tuple[bool, str]:
    """The pod's VM ended while the agent was down (host restarted, QEMU killed): :func:`vm_ended`
    as its restartPolicy says; whether it gets a new VM, and the Event's message saying so."""
    restart = restarts_vm(record)
    if restart:
        tail = "starting a new pod VM"
    elif succeeded(record):
        tail = "its containers had all succeeded"
    else:
        tail = f"restartPolicy {record.restart_policy}: not started again"
    message = f"the pod VM ended while the agent was down (host restarted?); {tail}"
    vm_ended(record, restart=restart, lost="ContainerStatusUnknown", message=message)
    return restart, f"Host {node} restarted, or its agent was down when the pod VM ended: {tail}"


def recover(record: PodRecord, reported: Obj) -> bool:
    """Fold the last reported Pod ``status`` into a fresh ``record`` (the host lost the pod's own).

    Restart counts, last terminations and container states come back, so :func:`vm_ended` counts
    from where the pod was. Returns whether the pod had run (a container started or restarted).
    """
    listed = [*(reported.get("initContainerStatuses") or []), *(reported.get("containerStatuses") or [])]
    by_name = {str(c.get("name")): c for c in listed}
    ran = False
    for c in record.all():
        seen = by_name.get(c.name)
        if seen is None:
            continue
        c.restarts = int(seen.get("restartCount") or 0)
        c.image_id = str(seen.get("imageID") or "")
        last = (seen.get("lastState") or {}).get("terminated")
        c.last = dict(last) if isinstance(last, dict) else None
        state = seen.get("state") or {}
        if isinstance(state.get("running"), dict):
            c.state, c.reason, c.started_at = "running", "", str(state["running"].get("startedAt") or "")
        elif isinstance(done := state.get("terminated"), dict):
            c.state, c.reason = "terminated", str(done.get("reason") or "Error")
            c.exit_code, c.signal = int(done.get("exitCode", LOST_EXIT_CODE)), int(done.get("signal") or 0)
            c.started_at, c.finished_at = str(done.get("startedAt") or ""), str(done.get("finishedAt") or "")
        elif (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            c.state, c.reason = "waiting", "CrashLoopBackOff"
        ran = ran or c.state != "waiting" or c.restarts > 0
    if reported.get("startTime"):
        record.start_time = str(reported["startTime"])
    return ran


def status(record: PodRecord, vm_alive: bool = True) -> Obj:
    """The Pod ``status`` for ``record``; ``vm_alive`` False: nothing is reported running without a VM."""
    if not vm_alive and (record.phase == "Running" or any(c.state == "running" for c in record.all())):
        record = copy.deepcopy(record)
        record.phase = "Pending" if record.phase == "Running" else record.phase
        for c in record.all():
            if c.state == "running":
                c.state, c.reason, c.message = (
                    "terminated",
                    "ContainerStatusUnknown",
                    "the pod VM is not running",
                )
                c.exit_code, c.finished_at = LOST_EXIT_CODE, now()
    if record.init_containers:  # the kubelet's default waiting reason in a pod with init containers
        record = copy.deepcopy(record)
        for c in record.all():
            if c.state == "waiting" and c.reason == "ContainerCreating":
                c.reason = "PodInitializing"
    statuses = [podconditions.container_status(c) for c in record.containers]
    out: Obj = {
        "phase": record.phase,
        "conditions": podconditions.conditions(record, statuses, now()),
        "hostIP": record.host_ip,
        "startTime": record.start_time,
        "containerStatuses": statuses,
    }
    if record.init_containers:
        out["initContainerStatuses"] = [podconditions.container_status(c) for c in record.init_containers]
    if record.pod_ip:
        out["podIP"] = record.pod_ip
        out["podIPs"] = [{"ip": record.pod_ip}]
    if record.reason:
        out["reason"] = record.reason
    if record.message:
        out["message"] = record.message
    return out
