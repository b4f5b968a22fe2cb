"""The lab under test, read from the plan.json of NESTLAB_LAB_DIR (set by `nestlab verify`).

Each check module sets ``testinfra_hosts = lab.hosts(...)`` so it runs on the nodes of its roles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def plan() -> dict[str, Any]:
    """The lab's plan as `nestlab plan --json` prints it."""
    lab_dir = os.environ.get("NESTLAB_LAB_DIR")
    if not lab_dir:
        raise RuntimeError("NESTLAB_LAB_DIR is not set: run these checks with `nestlab verify`")
    document: dict[str, Any] = json.loads((Path(lab_dir) / "plan.json").read_text())
    return document


def nodes(*roles: str) -> list[dict[str, Any]]:
    """The plan's nodes of ``roles`` (all nodes when none is given)."""
    return [n for n in plan()["nodes"] if not roles or n["role"] in roles]


def hosts(*roles: str) -> list[str]:
    """testinfra host specs (paramiko backend, names resolved by the lab's ssh_config)."""
    return [f"paramiko://{n['name']}" for n in nodes(*roles)]


def node(name: str) -> dict[str, Any]:
    """One node of the plan by name."""
    for entry in plan()["nodes"]:
        if entry["name"] == name:
            return entry
    raise KeyError(name)
