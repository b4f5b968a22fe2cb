"""What the agent knows about one pod, and the Pod status it reports: pure, persisted as JSON.

pod-init's events (started, exited, failed, pod done) move each container through the kubelet's
states: ``waiting`` (ContainerCreating, ErrImagePull, CrashLoopBackOff), ``running`` and
``terminated`` (Completed, Error, StartError), with restart counts and the last termination. The
record is saved in the pod's state directory after every change, so a restarted agent reports the
same status and restart counts instead of starting over.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nestlab.runtime import control

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


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

    def container(self, name: str) -> ContainerState:
        for c in self.containers:
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
        return cls(**data)


def _will_restart(policy: str, code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and code != 0)


def apply(record: PodRecord, event: control.Event, when: str | None = None) -> None:
    """Fold one pod-init event into ``record``."""
    stamp = when or now()
    if isinstance(event, control.Started):
        c = record.container(event.container)
        c.state, c.reason, c.message, c.exit_code = "running", "", "", None
        c.started_at, c.restarts = stamp, event.restarts
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
        if _will_restart(record.restart_policy, event.code):
            c.state, c.reason, c.last = "waiting", "CrashLoopBackOff", terminated
            c.message = f"back-off restarting failed container {c.name} (exit code {event.code})"
            c.restarts = event.restarts + 1
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


def fail(record: PodRecord, reason: str, message: str) -> None:
    """The pod cannot run (admission, image, VM): phase Failed with ``reason``."""
    record.phase, record.reason, record.message = "Failed", reason, message
    for c in record.containers:
        if c.state != "terminated":
            c.state, c.reason, c.message = "waiting", reason, message


def _container_status(c: ContainerState) -> Obj:
    state: Obj
    if c.state == "running":
        state = {"running": {"startedAt": c.started_at}}
    elif c.state == "terminated":
        state = {
            "terminated": {
                "exitCode": c.exit_code if c.exit_code is not None else 137,
                "signal": c.signal,
                "reason": c.reason,
                "message": c.message,
                "startedAt": c.started_at or None,
                "finishedAt": c.finished_at or None,
            }
        }
    else:
        state = {"waiting": {"reason": c.reason, "message": c.message}}
    out: Obj = {
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "ready": c.state == "running",
        "started": c.state == "running",
        "restartCount": c.restarts,
        "state": state,
        "lastState": {"terminated": c.last} if c.last else {},
    }
    return out


def status(record: PodRecord) -> Obj:
    """The Pod ``status`` for ``record``."""
    ready = record.phase == "Running" and all(c.state == "running" for c in record.containers)
    flag = "True" if ready else "False"
    stamp = now()
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": record.start_time},
        {"type": "Initialized", "status": "True", "lastTransitionTime": record.start_time},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
        {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
    ]
    out: Obj = {
        "phase": record.phase,
        "conditions": conditions,
        "hostIP": record.host_ip,
        "startTime": record.start_time,
        "containerStatuses": [_container_status(c) for c in record.containers],
    }
    if record.pod_ip:
        out["podIP"] = record.pod_ip
        out["podIPs"] = [{"ip": record.pod_ip}]
    if record.reason:
        out["reason"] = record.reason
    if record.message:
        out["message"] = record.message
    return out
