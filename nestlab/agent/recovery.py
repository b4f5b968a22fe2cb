"""What the node agent does when it (or its host) starts and finds pods bound to its node.

A restarted agent, or one on a host that rebooted, knows nothing for certain: its memory is gone,
QEMU processes may or may not have survived, and the API's pod status was written by an earlier
run. So it reconciles from what it *observes*: each pod's state directory (``record.json``), whether
the QEMU recorded there is still alive (``vms.adopt``), and the status the API holds. Live VMs are
followed again; a VM found gone has its status corrected at once (never a stale Running), then gets
a new VM or its terminal state per its restartPolicy; state dirs of pods no longer bound here go.

This is part of :class:`nestlab.agent.agent.Agent`, kept in its own module so the steady-state pod
loop and the start-time reconciliation each read on their own: the functions take the agent and
use its pod steps (report, release, start).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nestlab.agent import podspec, podstate, vms

if TYPE_CHECKING:
    from nestlab.agent.agent import Agent

Obj = dict[str, Any]
Start = tuple[str, Obj, podstate.PodRecord, vms.PodHandle | None]
"""(uid, pod, record, live VM handle or None): one pod task to start once every status is corrected."""
log = logging.getLogger("nestlab.agent")


async def adopt(agent: Agent, pods: Mapping[str, Obj]) -> None:
    """When the agent (or its host) starts: reconcile the pods bound here from what is observed.

    A state dir of no pod bound here: its VM (if alive) stopped, its tap and address freed. A pod
    with a live VM: followed again. One without: its status corrected at once (never a stale
    Running), then every such pod gets a new VM when its restartPolicy asks, else its terminal
    state. A deleting pod without a VM is left to :meth:`Agent.sync`, which confirms it at once.
    """
    for directory in sorted(agent.pods_dir.iterdir()):
        if directory.name not in pods:
            record = load(directory)
            orphan = vms.adopt(record.vm_pid, directory / "vm", 0) if record else None
            if record is not None and orphan is not None:
                await agent._stop_vm(record, orphan)
            await agent._discard(directory.name)
    starts = []
    for uid, pod in pods.items():
        if (start := await observe(agent, uid, pod)) is not None:
            starts.append(start)
    for uid, pod, record, handle in starts:
        agent._start(uid, pod, record, handle)


def load(directory: Path) -> podstate.PodRecord | None:
    """The pod's record in its state dir, or None when there is none or it cannot be read."""
    if not (directory / "record.json").exists():
        return None
    try:
        return podstate.PodRecord.load(directory / "record.json")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("pod %s: its record is unreadable (%s); going by the API's status", directory.name, exc)
        return None


async def observe(agent: Agent, uid: str, pod: Obj) -> Start | None:
    """What to start for one pod bound here, its status corrected first when its VM is gone."""
    directory, reported = agent.pods_dir / uid, pod.get("status") or {}
    record = load(directory)
    grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds") or podspec.DEFAULT_GRACE_S)
    handle = vms.adopt(record.vm_pid, directory / "vm", grace) if record and record.vm_pid else None
    if record is not None and handle is not None:
        log.info("pod %s/%s: adopted QEMU pid %d", record.namespace, record.name, record.vm_pid)
        return uid, pod, record, handle
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    had_vm = record is not None and record.vm_pid != 0
    if record is None:
        if reported.get("phase") in podstate.TERMINAL:
            return None
        record = agent._new_record(uid, pod)
        directory.mkdir(parents=True, exist_ok=True)
        had_vm = podstate.recover(record, reported)
    if had_vm and record.phase not in podstate.TERMINAL:
        restart, text = podstate.ended_while_away(record, agent.config.node)
        log.warning("pod %s/%s: %s", record.namespace, record.name, text)
        await agent.reporter.event(pod, "Normal" if restart else "Warning", "HostRestarted", text)
    await agent._release(uid, record)
    await agent._report(pod, record)  # before any task runs: the API never keeps a stale Running
    if record.phase in podstate.TERMINAL:
        agent.records[uid] = record
        return None
    return uid, pod, record, None
