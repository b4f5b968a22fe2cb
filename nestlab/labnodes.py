"""A saved lab's plan and substrate, and what reaches one node: ssh, stop, start.

Apart from :mod:`nestlab.lifecycle` (which imports the API client, provisioning and the image
builders) so that ``nestlab ssh`` and ``nestlab node`` load little: the lab's tests and exercises
call them hundreds of times, and a learner's shell as often.
"""

from __future__ import annotations

from nestlab.errors import UsageError
from nestlab.paths import LabFiles
from nestlab.progress import Report
from nestlab.runtime import proc
from nestlab.spec import Plan, make_plan, parse_spec
from nestlab.substrate import pick
from nestlab.substrate.base import Substrate

SPEC_FILE = "spec.yaml"
"""The spec ``up`` saved in the lab's directory (what every later command plans from)."""
SSH_SESSION_TIMEOUT_S = 24 * 3600.0  # an interactive session; the timeout only bounds a forgotten one


def saved_plan(name: str) -> Plan:
    """The plan of an existing lab, from the spec saved at its ``up``."""
    files = LabFiles.named(name)
    saved = files.root / SPEC_FILE
    if not saved.exists():
        raise UsageError(f"no lab named {name!r} (looked in {files.root}); run `nestlab up` first")
    return make_plan(parse_spec(saved.read_text(encoding="utf-8"), source=str(saved), name=name))


def substrate(name: str) -> Substrate:
    """The substrate lab ``name`` runs on, as its ``up`` recorded it (local when it recorded none)."""
    return pick.for_lab(name, lambda: saved_plan(name))


def ssh(name: str, node: str, command: list[str]) -> int:
    """Log in to (or run ``command`` on) a node; returns ssh's exit code."""
    argv = substrate(name).ssh_argv(node, command)
    return proc.run(argv, timeout=SSH_SESSION_TIMEOUT_S, check=False, capture=False).returncode


def node_stop(name: str, node: str, *, hard: bool = False) -> list[str]:
    """Stop a node (a host with its failure domain), or pull its power; returns the nodes stopped."""
    return substrate(name).stop_node(node, hard=hard)


def node_start(name: str, node: str, progress: Report) -> list[str]:
    """Start a node (a host with its failure domain); returns the nodes started."""
    return substrate(name).start_node(node, progress)
