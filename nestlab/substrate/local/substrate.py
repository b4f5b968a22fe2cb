"""The local substrate (systemd-nspawn nodes on this machine) behind the common Substrate interface.

A thin adapter: every call goes to :mod:`nestlab.substrate.local.lifecycle`, which holds the logic.
The lab's plan is loaded only when a call needs it, so ``down`` works even when the saved spec is
gone (a crash may have lost it; ``down`` reads the machine instead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from nestlab.runtime import proc
from nestlab.spec import Plan
from nestlab.spec.model import SubstrateType
from nestlab.substrate.base import DownResult, NodeStatus, Progress, UpResult
from nestlab.substrate.local import lifecycle as local


class LocalSubstrate:
    """Lab ``name`` on this machine; ``plan`` loads the plan saved at its ``up``."""

    def __init__(
        self,
        name: str,
        plan: Callable[[], Plan],
        *,
        lab_root: Path | None = None,
        run: proc.Runner = proc.run,
    ) -> None:
        self.name = name
        self._plan = plan
        self._lab_root = lab_root
        self._run = run

    @property
    def kind(self) -> SubstrateType:
        """Always the local substrate."""
        return SubstrateType.LOCAL

    def up(self, progress: Progress) -> UpResult:
        """Bridge, routes, overlays and nspawn machines; returns when every node answers SSH."""
        results = local.up(self._plan(), progress, lab_root=self._lab_root, run=self._run)
        return UpResult(tuple(str(r.name) for r in results if r.started))

    def down(self) -> DownResult:
        """Every process, mount, veth, route and the bridge of the lab, then its directory."""
        return local.down(self.name, lab_root=self._lab_root, run=self._run)

    def status(self, *, check_ssh: bool = True) -> list[NodeStatus]:
        """Node states from the state file and the machine; SSH tried when ``check_ssh``."""
        return local.status(self._plan(), lab_root=self._lab_root, run=self._run, check_ssh=check_ssh)

    def ssh_argv(self, node: str, command: Sequence[str] = ()) -> list[str]:
        """ssh with the lab key and the nodes' real host keys."""
        return local.ssh_argv(self._plan(), node, list(command), lab_root=self._lab_root)

    def stop_node(self, node: str, *, hard: bool = False) -> list[str]:
        """Stop the node (a host: its failure domain too)."""
        stopped = local.stop_node(self._plan(), node, lab_root=self._lab_root, run=self._run, hard=hard)
        return [str(n) for n in stopped]

    def start_node(self, node: str, progress: Progress) -> list[str]:
        """Start the node (a host: its failure domain too) and wait for SSH."""
        started = local.start_node(self._plan(), node, progress, lab_root=self._lab_root, run=self._run)
        return [str(r.name) for r in started]
