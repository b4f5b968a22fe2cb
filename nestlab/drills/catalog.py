"""The drills by name, in the order ``nestlab drill --list`` and docs/drills.md show them."""

from __future__ import annotations

from nestlab.drills import control, hosts, trust
from nestlab.drills.base import Drill
from nestlab.errors import UsageError

DRILLS: tuple[Drill, ...] = (
    hosts.FAILURE,
    hosts.RESTART,
    control.LEADER,
    control.LEADER_HARD,
    control.VIP,
    control.QUORUM,
    trust.TAMPER,
    trust.ROGUE,
    hosts.MAINTENANCE,
)


def names() -> list[str]:
    return [d.name for d in DRILLS]


def find(name: str) -> Drill:
    """The drill called ``name``; UsageError (exit 2) naming the drills that exist."""
    for drill in DRILLS:
        if drill.name == name:
            return drill
    raise UsageError(f"no drill named {name!r}; drills: {', '.join(names())} (`nestlab drill --list`)")
