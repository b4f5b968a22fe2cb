"""Names and paths of one local lab: its bridge, its machines and its files in the lab directory.

All derived from the lab's name and state directory alone, so ``down`` can find and remove
everything even when the state file was lost in a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NewType

from nestlab.paths import LabFiles
from nestlab.spec import NodeName

BridgeName = NewType("BridgeName", str)
"""A Linux interface name (15 characters at most) of a lab bridge."""
MachineName = NewType("MachineName", str)
"""The nspawn machine name of a node: unique on this machine."""

IFNAMSIZ = 15  # Linux interface names hold at most 15 characters
BRIDGE_PREFIX = "nl-"  # lab names are at most 12 characters (spec), so nl-<name> always fits


def bridge_name(lab: str) -> BridgeName:
    """The lab bridge on the outer machine."""
    name = f"{BRIDGE_PREFIX}{lab}"
    if len(name) > IFNAMSIZ:
        raise ValueError(f"lab name {lab!r} is too long for an interface name ({name!r})")
    return BridgeName(name)


def machine_name(lab: str, node: NodeName) -> MachineName:
    """The node's nspawn machine name: the lab's name keeps two labs' nodes apart."""
    return MachineName(f"{lab}-{node}")


@dataclass(frozen=True)
class LabLayout:
    """Where a lab keeps its files."""

    name: str
    root: Path
    """The lab directory (nestlab.paths.lab_dir(name) unless given)."""

    @property
    def files(self) -> LabFiles:
        """The lab-directory layout every layer shares (keys, inventory, logs)."""
        return LabFiles(self.root)

    @property
    def state_file(self) -> Path:
        """What exists and which PIDs run it (JSON)."""
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        """Held while a lifecycle call changes the lab."""
        return self.root / "lock"

    @property
    def ssh_key(self) -> Path:
        """The lab's private SSH key (ed25519, 0600); ``.pub`` beside it."""
        return self.files.ssh_key

    @property
    def known_hosts(self) -> Path:
        """Every node's host key, so SSH never prompts."""
        return self.files.known_hosts

    def node_dir(self, node: NodeName) -> Path:
        """Everything of one node."""
        return self.root / "nodes" / node

    def upper(self, node: NodeName) -> Path:
        """The node's writable layer: all it changes lives here."""
        return self.node_dir(node) / "upper"

    def work(self, node: NodeName) -> Path:
        """overlayfs's work directory (same filesystem as upper)."""
        return self.node_dir(node) / "work"

    def merged(self, node: NodeName) -> Path:
        """The mounted root the node boots from."""
        return self.node_dir(node) / "root"

    def host_key(self, node: NodeName) -> Path:
        """The node's SSH host key, generated once and kept across restarts."""
        return self.node_dir(node) / "ssh_host_ed25519_key"

    def console_log(self, node: NodeName) -> Path:
        """nspawn's output: the node's console."""
        return self.files.logs / f"console-{node}.log"
