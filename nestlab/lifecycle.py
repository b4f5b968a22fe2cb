"""Whole-lab operations behind the CLI: spec -> plan -> substrate -> PKI -> provisioning -> verify.

Each CLI command calls one function here. A lab's spec, and which substrate it runs on, are saved in
its state directory at ``up``, so later commands (status, ssh, node, verify, down) need only the
lab's name; they reach the nodes through the :class:`~nestlab.substrate.base.Substrate` interface,
the same for a local and a libvirt lab.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.agent.registry import RegistryClient
from nestlab.agent.registryauth import TokenAuth
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import NODES
from nestlab.api.status import ApiError
from nestlab.errors import NestlabError, UsageError
from nestlab.images import demo as demo_images
from nestlab.labnodes import SPEC_FILE, saved_plan, substrate
from nestlab.paths import LabFiles
from nestlab.progress import Fanout, PlainProgress, as_progress, stepping
from nestlab.provision import agentcerts as agent_provisioning
from nestlab.provision import attestation
from nestlab.provision.archive import pack_tree
from nestlab.provision.attestation import KnownDigests
from nestlab.provision.events import Tally
from nestlab.provision.incremental import provision_site
from nestlab.provision.kubeconfig import ensure_controller_cert, write_kubeconfig
from nestlab.provision.pki import ensure_lab_pki
from nestlab.provision.podkernel import build_pod_kernel_repo
from nestlab.provision.remote import SSH_UNREACHABLE, Remote
from nestlab.provision.verify import verify as run_verify
from nestlab.provision.wheels import ensure_wheelhouse, lab_wheelhouse, lab_wheelhouse_archive
from nestlab.runtime import initramfs, kernel, machine, proc
from nestlab.spec import Plan, make_plan, parse_spec
from nestlab.spec.model import Role, SubstrateType
from nestlab.spec.precheck import Verdict, precheck
from nestlab.substrate.base import DownResult, NodeStatus, load_record, record_type, save_record
from nestlab.substrate.local.substrate import LocalSubstrate
from nestlab.trust.keys import LabKeys, ensure_lab_keys, export_public
from nestlab.trust.measure import file_digest

Progress = Callable[[str], None]
DEFAULT_SPEC = "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\n"
DEPOT_REGISTRY_PORT = 5000  # roles/depot's docker-registry
STATUS_API_TIMEOUT_S = 10.0  # status must answer even when the control plane is down


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


def _logging(files: LabFiles, progress: Progress) -> Fanout:
    """Show progress and append it, time-stamped, as plain lines to logs/up.log."""
    files.logs.mkdir(parents=True, exist_ok=True)
    log = files.logs / "up.log"

    def append(line: str) -> None:
        with log.open("a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

    return Fanout((as_progress(progress), PlainProgress(append, stamp=None)))


def log_line(files: LabFiles) -> str:
    """The line that opens ``up``: where its logs go."""
    logs = files.logs
    return (
        f"logs: {logs / 'up.log'} (this run); {logs / 'ansible.log'} (provisioning); "
        f"{logs}/console-<node>.log (node consoles)"
    )


def up_libvirt(spec: Path | None, image: str, progress: Progress) -> dict[str, object]:
    """``up --substrate libvirt``: the Pulumi program through the Automation API (needs the pulumi CLI)."""
    from nestlab.substrate.libvirt import automation  # noqa: PLC0415 - imports Pulumi, only for this path
    from nestlab.substrate.libvirt.substrate import LibvirtSubstrate  # noqa: PLC0415 - the same

    automation.require_pulumi()  # before anything else: say how to get Pulumi, or to use local
    request = automation.LabRequest(
        spec=spec or paths.repo_root() / "stacks" / "default.lab.yaml", image=image
    )
    return dict(LibvirtSubstrate.prepare(request).up(progress).outputs)


def up(
    spec: Path | None, name: str | None, progress: Progress, *, force: bool = False, full: bool = False
) -> UpReport:
    """Build or complete a local lab: nodes, PKI, provisioning. Safe to re-run; a re-run changes nothing.

    The playbook runs only on nodes whose inputs changed or that were rebuilt since their last
    provisioning (:mod:`nestlab.provision.incremental`); ``full`` runs it on every node."""
    started_at = time.monotonic()
    plan, text = plan_for_up(spec, name)
    failures = [c for c in precheck(plan, machine.capacity(paths.home())) if c.verdict is Verdict.FAIL]
    if failures and not force:
        reasons = "; ".join(f"{c.resource}: {c.note} ({c.wanted} > {c.available} {c.unit})" for c in failures)
        raise UsageError(f"the lab does not fit this machine: {reasons}; shrink the spec or pass --force")
    if plan.lab.substrate.type is SubstrateType.LIBVIRT:
        raise UsageError("this spec uses the libvirt substrate: run `nestlab up --substrate libvirt SPEC`")
    files = LabFiles.named(plan.lab.name)
    if record_type(load_record(files)) is SubstrateType.LIBVIRT:
        raise UsageError(
            f"lab {plan.lab.name} runs on the libvirt substrate: run `nestlab up --substrate libvirt SPEC`, "
            f"or `nestlab down --name {plan.lab.name}` first to rebuild it locally"
        )
    files.root.mkdir(parents=True, exist_ok=True)
    (files.root / SPEC_FILE).write_text(text, encoding="utf-8")
    save_record(files, SubstrateType.LOCAL)
    emit = _logging(files, progress)
    emit(log_line(files))
    emit(f"lab {plan.lab.name}: {len(plan.nodes)} nodes on the local substrate")
    started = LocalSubstrate(plan.lab.name, lambda: plan, lab_root=files.root).up(emit).started
    tally = _provision(plan, files, emit, full=full)
    return UpReport(plan.lab.name, started, tally.total_changed, time.monotonic() - started_at)


def _provision(plan: Plan, files: LabFiles, emit: Progress, *, full: bool = False) -> Tally:
    """Everything after the nodes exist, the same on every substrate: PKI, wheelhouse, playbook (on
    the nodes that need it), kubeconfig, demo images in the depot's registry. Each long part is a
    progress step."""
    files.plan.write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")
    with stepping(emit, "lab PKI: CA and node certificates"):
        ensure_lab_pki(plan, files.pki)
        ensure_controller_cert(plan, files)
    with stepping(emit, "wheelhouse: nestlab and its base dependencies, for the depot"):
        ensure_wheelhouse(lab_wheelhouse(files))
        pack_tree(lab_wheelhouse(files), lab_wheelhouse_archive(files))  # the depot unpacks it in one step
    with stepping(emit, "pod kernel and initramfs for the hosts (built once, cached by content)"):
        kernel.build(progress=emit)  # the compile's own step counts objects; cached: instant
        initramfs.build()
        host_vars = agent_provisioning.ansible_vars(plan, files.pki)  # finds both in the cache
    with stepping(emit, "trust: lab keys, signed pod-kernel package in a signed apt repository"):
        trust_vars, known = _trust_chain(plan, files, host_vars)
    extravars = {**host_vars, **trust_vars, "depot_wheelhouse_archive": str(lab_wheelhouse_archive(files))}
    with stepping(emit, "provisioning: playbooks/site.yml") as step:
        tally, decision = provision_site(plan, files, emit, extravars, full=full)
        skipped = f", {len(decision.skipped)} node(s) unchanged, skipped" if decision.skipped else ""
        step.done(f"{tally.total_changed} change(s){skipped}")
    attestation.setup(plan, files, LabKeys(files.trust_keys), known, emit)
    emit(f"kubeconfig: {write_kubeconfig(plan, files)}")
    registry = f"{plan.node('depot').address}:{DEPOT_REGISTRY_PORT}"
    admin = TokenAuth.with_certificate(files.pki / "ca.crt", files.pki / "admin.crt", files.pki / "admin.key")
    with stepping(emit, f"demo pod images -> {registry}") as step:
        published = demo_images.sync(registry, lambda r: RegistryClient(r, auth=admin))
        step.done(published.summary())  # pushed vs already there, built vs cached
    return tally


def _trust_chain(
    plan: Plan, files: LabFiles, host_vars: dict[str, str]
) -> tuple[dict[str, str], KnownDigests]:
    """Lab keys, the signed pod-kernel repository, the policy so far: the playbook's trust variables."""
    keys = ensure_lab_keys(files.trust_keys, plan.lab.name)
    export_public(keys, files.trust_public)
    repo = build_pod_kernel_repo(
        keys,
        Path(host_vars["nestlab_pod_kernel"]),
        Path(host_vars["nestlab_pod_initrd"]),
        files.pod_kernel_repo,
    )
    wheelhouse = json.loads((lab_wheelhouse(files) / "wheelhouse.json").read_text(encoding="utf-8"))
    known = KnownDigests(
        nestlab_wheel=file_digest(lab_wheelhouse(files) / wheelhouse["nestlabWheel"]),
        pod_kernel_deb=repo.deb_sha256,
        kernel_image=repo.image_sha256,
        initramfs=repo.initramfs_sha256,
    )
    policy = attestation.prepare_policy(plan, files, known)
    public = files.trust_public
    apt_archive = repo.repo_dir.with_name(repo.repo_dir.name + ".tar")
    pack_tree(repo.repo_dir, apt_archive)  # the depot unpacks it in one step
    return {
        "depot_apt_source": str(repo.repo_dir),
        "depot_apt_archive": str(apt_archive),
        "pod_kernel_version": repo.version,
        "pod_kernel_apt_key": str(public / keys.apt_public.name),
        "pod_kernel_db_cert": str(public / keys.kernel_cert.name),
        "control_plane_attestation_policy": str(policy),
        "control_plane_attestation_ca": str(public / keys.ca_cert.name),
    }, known


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


def down(name: str) -> DownResult:
    """Remove everything of lab ``name``; the image cache stays."""
    return substrate(name).down()


def status(name: str, *, check_ssh: bool = True) -> list[NodeStatus]:
    """Every node of lab ``name`` with its state and reachability."""
    return substrate(name).status(check_ssh=check_ssh)


ATTEST_COMMAND = "/opt/nestlab/bin/nestlab-attest"  # the verifier's one-shot command on cp nodes
ATTESTATION_ANNOTATION = "trust.nestlab.dev/attestation"  # the verdict summary the verifier records


def attest(name: str, host: str | None, as_json: bool) -> proc.Result:
    """Run the verifier on the first control-plane node that answers: attest every host (or ``host``)
    now and record the verdicts; its exit code is 0 only when every attested host passed."""
    plan = saved_plan(name)
    remote = Remote(LabFiles.named(name))
    if host is not None and host not in {n.name for n in plan.nodes if n.role is Role.HOST}:
        hosts = ", ".join(n.name for n in plan.nodes if n.role is Role.HOST)
        raise UsageError(f"{host!r} is not a host of lab {name} (hosts: {hosts})")
    command = [ATTEST_COMMAND, *([host] if host else []), *(["--json"] if as_json else [])]
    unreachable = []
    for node in (n.name for n in plan.nodes if n.role is Role.CONTROL_PLANE):
        result = remote.run(node, command, check=False)
        if result.returncode != SSH_UNREACHABLE:
            return result
        unreachable.append(node)
    raise NestlabError(f"no control-plane node answered over SSH ({', '.join(unreachable)}): is the lab up?")


def attestation_summary(name: str) -> dict[str, str]:
    """Host -> "passed <time>" / "FAILED: <reason>" / "not attested yet", from the Nodes' records;
    empty when the API cannot be reached (status still shows the substrate's view)."""
    files = LabFiles.named(name)
    plan = saved_plan(name)
    credentials = Credentials(
        f"https://{plan.vip}:6443",
        files.pki / "ca.crt",
        None,
        files.pki / "admin.crt",
        files.pki / "admin.key",
    )

    async def fetch() -> dict[str, str]:
        client = ApiClient(credentials)
        try:
            nodes = await asyncio.wait_for(client.list(NODES), STATUS_API_TIMEOUT_S)
        finally:
            await client.close()
        summary = {}
        for node in nodes.get("items", []):
            meta = node.get("metadata") or {}
            raw = (meta.get("annotations") or {}).get(ATTESTATION_ANNOTATION)
            summary[str(meta.get("name"))] = _verdict_text(raw)
        return summary

    try:
        return asyncio.run(fetch())
    except (ApiError, OSError, TimeoutError):
        return {}


def _verdict_text(raw: str | None) -> str:
    if raw is None:
        return "not attested yet"
    try:
        verdict = json.loads(raw)
    except json.JSONDecodeError:
        return "FAILED: unreadable verdict record"
    if verdict.get("passed") is True:
        return f"passed {verdict.get('time', '')}"
    reasons = verdict.get("reasons") or ["no reason recorded"]
    return f"FAILED: {reasons[0]}"


def verify(name: str, inventory: Path | None = None) -> Path:
    """Run the testinfra checks against lab ``name`` (or the lab whose inventory is given)."""
    if inventory is not None:
        return run_verify(LabFiles(inventory.resolve().parent))
    saved_plan(name)  # a clear error when there is no such lab
    return run_verify(LabFiles.named(name))


__all__ = [
    "NestlabError",
    "UpReport",
    "attest",
    "attestation_summary",
    "down",
    "kubeconfig",
    "saved_plan",
    "status",
    "substrate",
    "up",
    "verify",
]
