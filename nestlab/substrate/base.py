"""One interface for every substrate: what a lab command needs from whatever runs the lab's nodes.

``nestlab up/down/status/ssh/node`` talk to a :class:`Substrate`, never to the local or libvirt code
directly, so a lab built on either answers every command. Which substrate a lab lives on is recorded
in its state directory (``substrate.json``) when ``up`` starts; :mod:`nestlab.substrate.pick` reads
it back. The types here are the substrate-neutral results the CLI, dashboard and drills consume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal, Protocol

from nestlab.errors import UsageError
from nestlab.paths import LabFiles
from nestlab.spec import NodeName, Role
from nestlab.spec.model import SubstrateType

Progress = Callable[[str], None]
SUBSTRATE_FILE = "substrate.json"  # in the lab's state directory: {"type": "local" | "libvirt", ...}

NodeState = Literal["running", "stopping", "stopped", "orphaned", "absent"]
"""stopping: ``nestlab node stop`` is taking it down; orphaned (local only): the node's nspawn was
killed but its container still runs, ``up`` or ``down`` clears it."""


@dataclass(frozen=True)
class NodeStatus:
    """One node as ``status`` sees it."""

    name: NodeName
    role: Role
    placed_on: NodeName
    address: IPv4Address
    state: NodeState
    reachable: bool
    """A real SSH login succeeded (False when not checked or not running)."""


@dataclass(frozen=True)
class DownResult:
    """What ``down`` removed."""

    stopped: tuple[str, ...]
    """The node processes (local: machine names) or domains (libvirt) stopped and removed."""
    unmounted: tuple[Path, ...]
    bridge_removed: bool
    routes_removed: tuple[str, ...] = ()
    """The lab's routes deleted from the outer machine, as ``type destination``."""


@dataclass(frozen=True)
class UpResult:
    """What the substrate part of ``up`` did (provisioning comes after, the same on every substrate)."""

    started: tuple[str, ...]
    """Nodes this call started (empty when every node already ran)."""
    outputs: Mapping[str, object] = field(default_factory=dict)
    """Substrate-specific results (libvirt: the Pulumi stack outputs)."""


class Substrate(Protocol):
    """What every lab command needs from the thing that runs the lab's nodes."""

    @property
    def kind(self) -> SubstrateType:
        """Which substrate this is."""
        ...

    def up(self, progress: Progress) -> UpResult:
        """Create what is missing and start what is stopped; return when every node answers SSH."""
        ...

    def down(self) -> DownResult:
        """Remove every node and everything the lab made on the machine(s); idempotent."""
        ...

    def status(self, *, check_ssh: bool = True) -> list[NodeStatus]:
        """Every planned node with its state, and whether a real SSH login works."""
        ...

    def ssh_argv(self, node: str, command: Sequence[str] = ()) -> list[str]:
        """The ``ssh`` command line logging in as root on ``node`` (running ``command``)."""
        ...

    def stop_node(self, node: str, *, hard: bool = False) -> list[str]:
        """Stop ``node`` (a host with its failure domain); ``hard`` pulls the power. Returns the
        nodes stopped."""
        ...

    def start_node(self, node: str, progress: Progress) -> list[str]:
        """Start ``node`` (a host with its failure domain) and wait for SSH; returns the nodes started."""
        ...


class SubstrateRecordError(UsageError):
    """The lab's substrate record is unreadable; the message names the file and the fix."""


def record_path(files: LabFiles) -> Path:
    """Where the lab records which substrate it lives on."""
    return files.root / SUBSTRATE_FILE


def save_record(files: LabFiles, kind: SubstrateType, details: Mapping[str, Any] | None = None) -> None:
    """Record (atomically) that the lab lives on ``kind``, with what that substrate needs later."""
    path = record_path(files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"type": str(kind), **(details or {})}, indent=2) + "\n", encoding="utf-8")
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)


def load_record(files: LabFiles) -> dict[str, Any] | None:
    """The lab's substrate record, or None when it has none (a lab made before records existed)."""
    path = record_path(files)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SubstrateRecordError(
            f"{path} is unreadable ({exc}); it says which substrate the lab runs on: "
            'write {"type": "local"} or {"type": "libvirt", ...} back, or remove the lab directory'
        ) from exc
    if not isinstance(data, dict):
        raise SubstrateRecordError(f"{path} is not a JSON object; remove it or the lab directory")
    return data


def record_type(record: Mapping[str, Any] | None) -> SubstrateType:
    """The substrate a record names; a lab without one is local (every lab before records existed)."""
    if record is None:
        return SubstrateType.LOCAL
    raw = record.get("type")
    try:
        return SubstrateType(str(raw))
    except ValueError:
        known = ", ".join(str(t) for t in SubstrateType)
        raise SubstrateRecordError(
            f"unknown substrate type {raw!r} in the lab's record (known: {known})"
        ) from None
