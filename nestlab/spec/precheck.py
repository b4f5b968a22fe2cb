"""Resource pre-check: does the lab fit this machine? The comparison only; probing is elsewhere.

Like the confirmation screen of nested-lab scripts, it sums what the spec asks for and sets it
beside what the machine has, so an over-large lab is refused (or knowingly accepted) up front.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nestlab.spec.model import SubstrateType
from nestlab.spec.plan import Plan


class Verdict(enum.StrEnum):
    """How one resource compares."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Capacity:
    """What the machine offers, as probed by :mod:`nestlab.runtime.machine`."""

    cpus: int
    memory_mib: int
    """Total memory."""
    disk_free_mib: int
    """Free space where the lab's state and images go."""
    accelerator: str
    """``kvm`` or ``tcg``: how pod microVMs will run."""
    accelerator_reason: str
    """Why the probe chose it."""


@dataclass(frozen=True)
class Line:
    """One row of the pre-check."""

    resource: str
    wanted: int
    available: int
    unit: str
    verdict: Verdict
    note: str


def precheck(plan: Plan, capacity: Capacity) -> list[Line]:
    """Compare the plan's total CPU, memory and disk with the machine's."""
    sizes = [node.size for node in plan.nodes]
    cpu = sum(size.cpu for size in sizes)
    memory = sum(size.memory_mib for size in sizes)
    disk = sum(size.disk_mib for size in sizes)
    local = plan.lab.substrate.type is SubstrateType.LOCAL
    lines = [
        Line(
            "cpu",
            cpu,
            capacity.cpus,
            "vCPU",
            Verdict.OK if cpu <= capacity.cpus else Verdict.WARN,
            "shared: control-plane services get CPU priority over pod VMs" if cpu > capacity.cpus else "fits",
        ),
    ]
    if memory <= capacity.memory_mib * 0.8:
        lines.append(Line("memory", memory, capacity.memory_mib, "MiB", Verdict.OK, "fits"))
    elif local and memory <= capacity.memory_mib:
        lines.append(
            Line(
                "memory",
                memory,
                capacity.memory_mib,
                "MiB",
                Verdict.WARN,
                "limits, not reservations, on the local substrate: tight but possible",
            )
        )
    else:
        lines.append(
            Line(
                "memory",
                memory,
                capacity.memory_mib,
                "MiB",
                Verdict.FAIL,
                "more than this machine has: lower node memory or the host count",
            )
        )
    if disk <= capacity.disk_free_mib:
        lines.append(Line("disk", disk, capacity.disk_free_mib, "MiB", Verdict.OK, "fits"))
    else:
        verdict = Verdict.WARN if local else Verdict.FAIL
        note = "overlays grow only as written; watch free space" if local else "not enough free disk"
        lines.append(Line("disk", disk, capacity.disk_free_mib, "MiB", verdict, note))
    return lines
