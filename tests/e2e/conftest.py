"""End-to-end fixtures: a real local lab, stood up once per session and always taken down.

The ladder: ``e2e_plan`` (the plan) -> ``lab_nodes`` (every node booted and answering SSH, nothing
provisioned yet). Later rungs (provisioned lab, pod running, pod attested) build on ``lab_nodes``.

``NESTLAB_E2E_SPEC`` picks the spec (default: the 4-node lab of the substrate integration test).
``NESTLAB_E2E_KEEP=1`` leaves the lab up after the session, to inspect it; take it down with
``nestlab down <name>``. On failure the node consoles are copied next to the test's temp files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab.spec import Plan, load_spec, make_plan
from nestlab.substrate.local import lifecycle as local

DEFAULT_SPEC = Path(__file__).parents[1] / "integration" / "substrate" / "small.lab.yaml"


@dataclass(frozen=True)
class LabNodes:
    """A lab whose nodes run and answer SSH."""

    plan: Plan
    root: Path
    """The lab directory (keys, ssh/config, consoles under logs/)."""

    def ssh(self, node: str, *command: str) -> list[str]:
        """The argv that runs ``command`` on ``node`` as root."""
        return local.ssh_argv(self.plan, node, list(command), lab_root=self.root)


@pytest.fixture(scope="session")
def e2e_plan() -> Plan:
    """The plan of the session's lab."""
    return make_plan(load_spec(Path(os.environ.get("NESTLAB_E2E_SPEC", str(DEFAULT_SPEC)))))


@pytest.fixture(scope="session")
def lab_nodes(e2e_plan: Plan, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNodes]:
    """Every node of the session's lab booted and reachable; taken down at the end of the session."""
    if os.geteuid() != 0:
        pytest.skip("a local lab needs root (nspawn machines, bridges, mounts)")
    root = tmp_path_factory.mktemp("lab") / e2e_plan.lab.name
    lab = LabNodes(e2e_plan, root)
    try:
        local.up(e2e_plan, lab_root=root)
        yield lab
    finally:
        logs = root / "logs"
        if logs.is_dir():
            shutil.copytree(logs, tmp_path_factory.mktemp("lab-logs"), dirs_exist_ok=True)
        if os.environ.get("NESTLAB_E2E_KEEP") != "1":
            local.down(e2e_plan.lab.name, lab_root=root)
