"""What runs after the domains are up, and when it must run again.

Provisioning (Ansible) and verification (testinfra) are the same ``nestlab`` commands on both
substrates; here they only become the command line of a pulumi-command ``local.Command``. Its
triggers are two digests: the plan's (addresses, sizes, placement) and the roles' (every file
under roles/ and playbooks/), so ``pulumi up`` re-provisions exactly when either changed.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

from nestlab.spec import Plan

PROVISIONED_TREES = ("roles", "playbooks")  # what Ansible runs: a change here re-provisions


def plan_digest(plan: Plan) -> str:
    """sha256 of the plan's JSON form (the one ``nestlab plan --json`` prints)."""
    text = json.dumps(plan.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def roles_digest(root: Path) -> str:
    """sha256 over the relative path and content of every file under roles/ and playbooks/."""
    digest = hashlib.sha256()
    for tree in PROVISIONED_TREES:
        base = root / tree
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def provision_argv(spec_path: Path, inventory: Path) -> list[str]:
    """``nestlab provision``: write the inventory for the planned nodes and run the site playbook."""
    return ["nestlab", "provision", "--inventory", str(inventory), "--spec", str(spec_path)]


def verify_argv(inventory: Path) -> list[str]:
    """``nestlab verify``: the testinfra suite against the provisioned nodes."""
    return ["nestlab", "verify", "--inventory", str(inventory)]


def command_line(spec_path: Path, inventory: Path) -> str:
    """The shell line local.Command runs (it always runs through a shell): provision, then verify."""
    return " && ".join(
        shlex.join(argv) for argv in (provision_argv(spec_path, inventory), verify_argv(inventory))
    )
