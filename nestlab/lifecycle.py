"""Whole-lab operations behind the CLI: spec -> plan -> substrate -> PKI -> provisioning -> verify.

Each CLI command calls one function here. A lab's spec is saved in its state directory at ``up``,
so later commands (status, ssh, node, verify, down) need only the lab's name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.agent import demo_images
from nestlab.agent import provisioning as agent_provisioning
from nestlab.errors import NestlabError, UsageError
from nestlab.paths import LabFiles
from nestlab.provision.ansible import run_playbook
from nestlab.provision.events import Tally
from nestlab.provision.kubeconfig import ensure_controller_cert, write_kubeconfig
from nestlab.provision.pki import ensure_lab_pki
from nestlab.provision.verify import verify as run_verify
from nestlab.provision.wheels import ensure_wheelhouse, lab_wheelhouse
from nestlab.runtime import machine, proc
from nestlab.spec import Plan, make_plan, parse_spec
from nestlab.spec.model import SubstrateType
from nestlab.spec.precheck import Verdict, precheck
from nestlab.substrate.local import lifecycle as local

Progress = Callable[[str], None]
DEFAULT_SPEC = "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\n"
SPEC_FILE = "spec.yaml"
DEPOT_REGISTRY_PORT = 5000  # roles/depot's docker-registry
SSH_SESSION_TIMEOUT_S = 24 * 3600.0  # an interactive session; the timeout only bounds a forgotten one


@dataclass(frozen=True)
class UpReport:
    """What ``up`` did."""

    name: str
    started: tuple[str, ...]
    """Nodes this run started (empty on a second ``up``)."""
    changed: int
    """Ansible tasks that changed something (0 on a second ``up``)."""
    seconds: float

    @property
    def nothing_to_do(self) -> bool:
        """True when the lab was already complete."""
        return not self.started and self.changed == 0


def _spec_text(spec: Path | None) -> tuple[str, str]:
    if spec is None:
        return DEFAULT_SPEC, "(defaults)"
    try:
        return spec.read_text(encoding="utf-8"), str(spec)
    except OSError as exc:
        raise UsageError(f"{spec}: cannot read the spec: {exc.strerror or exc}") from exc


def plan_for_up(spec: Path | None, name: str | None) -> tuple[Plan, str]:
    """The plan ``up`` would build, and the spec text to save with the lab."""
    text, source = _spec_text(spec)
    return make_plan(parse_spec(text, source=source, name=name)), text


def saved_plan(name: str) -> Plan:
    """The plan of an existing lab, from the spec saved at its ``up``."""
    files = LabFiles.named(name)
    saved = files.root / SPEC_FILE
    if not saved.exists():
        raise UsageError(f"no lab named {name!r} (looked in {files.root}); run `nestlab up` first")
    return make_plan(parse_spec(saved.read_text(encoding="utf-8"), source=str(saved), name=name))


def _logging(files: LabFiles, progress: Progress) -> Progress:
    """Show progress and append it, time-stamped, to logs/up.log."""
    files.logs.mkdir(parents=True, exist_ok=True)
    log = files.logs / "up.log"

    def emit(message: str) -> None:
        with log.open("a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
        progress(message)

    return emit


def up_libvirt(spec: Path | None, image: str, progress: Progress) -> dict[str, object]:
    """``up --substrate libvirt``: the Pulumi program through the Automation API (needs the pulumi CLI)."""
    from nestlab.substrate.libvirt import automation  # noqa: PLC0415 - imports Pulumi, only for this path

    automation.require_pulumi()  # before anything else: say how to get Pulumi, or to use local
    request = automation.LabRequest(
        spec=spec or paths.repo_root() / "stacks" / "default.lab.yaml", image=image
    )
    return automation.up(request, on_output=progress)


def up(spec: Path | None, name: str | None, progress: Progress, *, force: bool = False) -> UpReport:
    """Build or complete a local lab: nodes, PKI, provisioning. Safe to re-run; a re-run changes nothing."""
    started_at = time.monotonic()
    plan, text = plan_for_up(spec, name)
    failures = [c for c in precheck(plan, machine.capacity(paths.home())) if c.verdict is Verdict.FAIL]
    if failures and not force:
        reasons = "; ".join(f"{c.resource}: {c.note} ({c.wanted} > {c.available} {c.unit})" for c in failures)
        raise UsageError(f"the lab does not fit this machine: {reasons}; shrink the spec or pass --force")
    if plan.lab.substrate.type is SubstrateType.LIBVIRT:
        raise UsageError("this spec uses the libvirt substrate: run `nestlab up --substrate libvirt SPEC`")
    files = LabFiles.named(plan.lab.name)
    files.root.mkdir(parents=True, exist_ok=True)
    (files.root / SPEC_FILE).write_text(text, encoding="utf-8")
    emit = _logging(files, progress)
    emit(f"lab {plan.lab.name}: {len(plan.nodes)} nodes on the local substrate")
    results = local.up(plan, emit)
    tally = _provision(plan, files, emit)
    started = tuple(r.name for r in results if r.started)
    return UpReport(plan.lab.name, started, tally.total_changed, time.monotonic() - started_at)


def _provision(plan: Plan, files: LabFiles, emit: Progress) -> Tally:
    """Everything after the nodes exist, the same on every substrate: PKI, wheelhouse, playbook,
    kubeconfig, demo images in the depot's registry."""
    files.plan.write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")
    emit("lab PKI: CA and node certificates")
    ensure_lab_pki(plan, files.pki)
    ensure_controller_cert(plan, files)
    emit("wheelhouse: nestlab and its base dependencies, for the depot")
    ensure_wheelhouse(lab_wheelhouse(files))
    emit("pod kernel and initramfs for the hosts (built once, cached by content)")
    host_vars = agent_provisioning.ansible_vars(plan, files.pki)
    emit("provisioning: playbooks/site.yml")
    tally = run_playbook(plan, files, emit, extravars=host_vars)
    emit(f"kubeconfig: {write_kubeconfig(plan, files)}")
    registry = f"{plan.node('depot').address}:{DEPOT_REGISTRY_PORT}"
    emit(f"demo pod images -> {registry}: " + ", ".join(demo_images.publish(registry)))
    return tally


def provision(spec: Path, inventory: Path, progress: Progress, name: str | None = None) -> int:
    """Provision nodes another substrate made (the Pulumi program's step): the lab's state directory
    is the inventory's; returns the number of changes."""
    plan, text = plan_for_up(spec, name)
    files = LabFiles(inventory.resolve().parent)
    files.root.mkdir(parents=True, exist_ok=True)
    (files.root / SPEC_FILE).write_text(text, encoding="utf-8")
    return _provision(plan, files, _logging(files, progress)).total_changed


def kubeconfig(name: str) -> Path:
    """The admin kubeconfig of lab ``name`` (pointing at the VIP), written by ``up``."""
    path = LabFiles.named(name).kubeconfig
    if not path.exists():
        saved_plan(name)  # no such lab: say so
        raise UsageError(f"lab {name!r} has no kubeconfig yet (written at the end of `nestlab up`): run it")
    return path


def down(name: str) -> local.DownResult:
    """Remove everything of lab ``name``; the image cache stays."""
    return local.down(name)


def status(name: str, *, check_ssh: bool = True) -> list[local.NodeStatus]:
    """Every node of lab ``name`` with its state and reachability."""
    return local.status(saved_plan(name), check_ssh=check_ssh)


def ssh(name: str, node: str, command: list[str]) -> int:
    """Log in to (or run ``command`` on) a node; returns ssh's exit code."""
    argv = local.ssh_argv(saved_plan(name), node, command)
    return proc.run(argv, timeout=SSH_SESSION_TIMEOUT_S, check=False, capture=False).returncode


def node_stop(name: str, node: str) -> list[str]:
    """Stop a node (a host with its failure domain); returns the nodes stopped."""
    return [str(n) for n in local.stop_node(saved_plan(name), node)]


def node_start(name: str, node: str, progress: Progress) -> list[str]:
    """Start a node (a host with its failure domain); returns the nodes started."""
    return [str(r.name) for r in local.start_node(saved_plan(name), node, progress)]


def verify(name: str, inventory: Path | None = None) -> Path:
    """Run the testinfra checks against lab ``name`` (or the lab whose inventory is given)."""
    if inventory is not None:
        return run_verify(LabFiles(inventory.resolve().parent))
    saved_plan(name)  # a clear error when there is no such lab
    return run_verify(LabFiles.named(name))


__all__ = [
    "NestlabError",
    "UpReport",
    "down",
    "kubeconfig",
    "node_start",
    "node_stop",
    "ssh",
    "status",
    "up",
    "verify",
]
