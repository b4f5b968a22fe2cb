"""The libvirt substrate behind the common Substrate interface: every lab command for a libvirt lab.

``up`` and ``down`` go through the Pulumi stack (:mod:`nestlab.substrate.libvirt.automation`);
``status`` and ``node stop/start`` ask libvirt directly with ``virsh`` (through the project's process
runner), since a node stopped on purpose is a runtime state, not a change of the declared lab.
Which domain on which hypervisor holds each node is recorded in the lab's ``substrate.json`` when
``up`` starts (:class:`LibvirtRecord`), so every later command, ``down`` of a half-built lab
included, needs only the lab's name.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from nestlab.errors import NestlabError, UsageError
from nestlab.paths import LabFiles
from nestlab.runtime import proc
from nestlab.spec import NodeName, Role
from nestlab.spec.model import SubstrateType
from nestlab.substrate.base import DownResult, NodeState, NodeStatus, Progress, UpResult, save_record
from nestlab.substrate.libvirt import automation
from nestlab.substrate.libvirt.node import domain_name
from nestlab.substrate.libvirt.settings import StackSettings

VIRSH_TIMEOUT_S = 60.0  # one virsh call; over qemu+ssh:// a loaded hypervisor may take seconds
SHUTDOWN_WAIT_S = 120.0  # a clean guest poweroff; then the power is pulled, like the local SIGKILL
SSH_WAIT_S = 300.0  # a VM boots through UEFI and cloud-init; a loaded machine needs minutes
POLL_S = 1.0
SSH_CONNECT_TIMEOUT_S = 5
SSH_PROBE_TIMEOUT_S = 20.0
# virsh domstate -> the lab's node state; anything else (pmsuspended, dying...) counts as stopped.
DOMAIN_STATES: Mapping[str, NodeState] = {
    "running": "running",
    "idle": "running",
    "blocked": "running",
    "in shutdown": "stopping",
    "shut off": "stopped",
    "crashed": "stopped",
    "paused": "stopped",
}
NO_DOMAIN = "failed to get domain"  # virsh's message for a domain that does not exist
STOPPING_DIR = "stopping"  # in the lab directory: one empty file per node a stop is taking down


class LibvirtSubstrateError(NestlabError):
    """libvirt refused or could not be reached; the message names the hypervisor and the command."""


@dataclass(frozen=True)
class LibvirtNode:
    """One node as the libvirt substrate finds it again: its domain on its hypervisor."""

    name: NodeName
    role: Role
    placed_on: NodeName
    address: IPv4Address
    uri: str
    domain: str


@dataclass(frozen=True)
class LibvirtRecord:
    """What ``up --substrate libvirt`` recorded: the stack's request and where each node's domain is."""

    spec: Path
    image: str
    domain_type: str
    nodes: tuple[LibvirtNode, ...]

    @classmethod
    def from_settings(cls, settings: StackSettings) -> LibvirtRecord:
        """The record of a lab the Pulumi program is about to declare from ``settings``."""
        lab = settings.plan.lab.name
        nodes = tuple(
            LibvirtNode(
                n.name, n.role, n.placed_on, n.address, settings.uris[n.hypervisor], domain_name(lab, n)
            )
            for n in settings.plan.nodes
        )
        return cls(settings.spec_path, settings.image, settings.domain_type, nodes)

    @property
    def request(self) -> automation.LabRequest:
        """The request that made the stack (what ``destroy`` selects it with)."""
        return automation.LabRequest(spec=self.spec, image=self.image, domain_type=self.domain_type)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in substrate.json (beside ``"type": "libvirt"``)."""
        return {
            "spec": str(self.spec),
            "image": self.image,
            "domainType": self.domain_type,
            "nodes": [
                {"name": n.name, "role": str(n.role), "placedOn": n.placed_on, "address": str(n.address),
                 "uri": n.uri, "domain": n.domain}
                for n in self.nodes
            ],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LibvirtRecord:
        """Read the JSON form; UsageError naming the missing field."""
        try:
            nodes = tuple(
                LibvirtNode(
                    NodeName(str(raw["name"])),
                    Role(str(raw["role"])),
                    NodeName(str(raw["placedOn"])),
                    IPv4Address(str(raw["address"])),
                    str(raw["uri"]),
                    str(raw["domain"]),
                )
                for raw in data["nodes"]
            )
            return cls(Path(str(data["spec"])), str(data["image"]), str(data.get("domainType", "kvm")), nodes)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"the lab's libvirt record is incomplete or wrong ({exc!r}); "
                "run `nestlab up --substrate libvirt SPEC` again to rewrite it"
            ) from exc

    def node(self, name: str) -> LibvirtNode:
        """The node called ``name``; UsageError listing the lab's nodes."""
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise UsageError(f"the lab has no node {name!r}; its nodes: {known}")

    def affected(self, name: str) -> list[LibvirtNode]:
        """``name`` alone, or for a host its whole failure domain (the host first), as on local."""
        node = self.node(name)
        if node.role is not Role.HOST:
            return [node]
        return [node, *(n for n in self.nodes if n.placed_on == node.name and n.name != node.name)]


def domain_state(stdout: str) -> NodeState:
    """``virsh domstate`` output -> the lab's node state."""
    return DOMAIN_STATES.get(stdout.strip().splitlines()[0].strip() if stdout.strip() else "", "stopped")


def ssh_argv(files: LabFiles, address: IPv4Address, command: Sequence[str] = ()) -> list[str]:
    """ssh as root with the lab key; host keys are learnt on first use (cloud-init makes them in the
    VM, so unlike the local substrate there is none to know beforehand), then held to."""
    return [
        "ssh",
        "-F", "/dev/null",
        "-i", str(files.ssh_key),
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", f"UserKnownHostsFile={files.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT_S}",
        "-o", "LogLevel=ERROR",
        f"root@{address}",
        *command,
    ]  # fmt: skip


class LibvirtSubstrate:
    """Lab ``name`` as libvirt domains, as recorded in ``record``."""

    def __init__(
        self,
        name: str,
        files: LabFiles,
        record: LibvirtRecord,
        *,
        run: proc.Runner | None = None,
        stack_up: Callable[[automation.LabRequest, Progress], dict[str, object]] | None = None,
        stack_destroy: Callable[[automation.LabRequest], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.files = files
        self.record = record
        self._run = run or proc.run  # looked up now, not at import: tests replace proc.run
        self._stack_up = stack_up or (lambda request, progress: automation.up(request, on_output=progress))
        self._stack_destroy = stack_destroy or (
            lambda request: automation.destroy(request, on_output=lambda _line: None)
        )
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def prepare(cls, request: automation.LabRequest, **kwargs: Any) -> LibvirtSubstrate:
        """Check ``request`` as the program will and record the lab as a libvirt lab, before Pulumi
        creates anything (so a failed ``up`` can still be taken ``down``)."""
        settings = automation.check(request)
        record = LibvirtRecord.from_settings(settings)
        files = LabFiles(settings.state_dir)
        save_record(files, SubstrateType.LIBVIRT, record.to_dict())
        return cls(settings.plan.lab.name, files, record, **kwargs)

    @property
    def kind(self) -> SubstrateType:
        """Always the libvirt substrate."""
        return SubstrateType.LIBVIRT

    def up(self, progress: Progress) -> UpResult:
        """``pulumi up`` of the lab's stack (domains, then provisioning inside the program)."""
        try:
            before = {n.name for n in self.status(check_ssh=False) if n.state == "running"}
        except LibvirtSubstrateError:  # libvirt unreachable: Pulumi says why, in its own words
            before = set()
        outputs = self._stack_up(self.record.request, progress)
        started = tuple(n.name for n in self.record.nodes if n.name not in before)
        return UpResult(started, outputs)

    def down(self) -> DownResult:
        """``pulumi destroy`` of the stack (every domain, disk and network), then the lab directory."""
        if not self.files.root.exists():
            return DownResult((), (), False)
        self._stack_destroy(self.record.request)
        shutil.rmtree(self.files.root)
        return DownResult(tuple(n.domain for n in self.record.nodes), (), True)

    def _virsh(self, node: LibvirtNode, *args: str, check: bool = True) -> proc.Result:
        argv = ["virsh", "-c", node.uri, *args]
        try:
            result = self._run(argv, timeout=VIRSH_TIMEOUT_S, check=False)
        except proc.ProcessError as exc:
            raise LibvirtSubstrateError(f"{node.name}: `{' '.join(argv)}` did not finish: {exc}") from exc
        if check and result.returncode != 0:
            raise LibvirtSubstrateError(
                f"{node.name}: `{' '.join(argv)}` failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-400:]}; is libvirtd reachable at {node.uri}?"
            )
        return result

    def _state(self, node: LibvirtNode) -> NodeState:
        result = self._virsh(node, "domstate", node.domain, check=False)
        if result.returncode != 0:
            if NO_DOMAIN in result.stderr:
                return "absent"
            raise LibvirtSubstrateError(
                f"{node.name}: cannot read domain {node.domain} on {node.uri}: {result.stderr.strip()[-400:]}"
            )
        return domain_state(result.stdout)

    def _reachable(self, node: LibvirtNode) -> bool:
        argv = ssh_argv(self.files, node.address, ["true"])
        try:
            return self._run(argv, timeout=SSH_PROBE_TIMEOUT_S, check=False).returncode == 0
        except proc.ProcessError:
            return False

    def _stopping_mark(self, node: LibvirtNode) -> Path:
        """Present while ``node stop`` takes the node down: libvirt says "running" until the guest's
        poweroff is done, and status should show the stop from its start."""
        return self.files.root / STOPPING_DIR / node.name

    def status(self, *, check_ssh: bool = True) -> list[NodeStatus]:
        """Each domain's state from libvirt; SSH tried on running ones when ``check_ssh``."""
        statuses = []
        for node in self.record.nodes:
            state = self._state(node)
            if state == "running" and self._stopping_mark(node).exists():
                state = "stopping"
            reachable = state in ("running", "stopping") and check_ssh and self._reachable(node)
            statuses.append(NodeStatus(node.name, node.role, node.placed_on, node.address, state, reachable))
        return statuses

    def ssh_argv(self, node: str, command: Sequence[str] = ()) -> list[str]:
        """ssh to the node's management address with the lab key."""
        return ssh_argv(self.files, self.record.node(node).address, command)

    def stop_node(self, node: str, *, hard: bool = False) -> list[str]:
        """``virsh shutdown`` (``hard``: ``virsh destroy``, the power pulled) of the node, a host with its
        failure domain; placed nodes first, the host last. Waits until each is off."""
        affected = self.record.affected(node)
        marks = [self._stopping_mark(member) for member in affected]
        for mark in marks:  # every node of the failure domain shows "stopping" from now on
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
        try:
            for member in reversed(affected):
                self._stop_one(member, hard=hard)
                self._stopping_mark(member).unlink(missing_ok=True)
        finally:
            for mark in marks:
                mark.unlink(missing_ok=True)
        return [str(n.name) for n in affected]

    def _stop_one(self, member: LibvirtNode, *, hard: bool) -> None:
        if self._state(member) in ("stopped", "absent"):
            return
        if hard:
            self._virsh(member, "destroy", member.domain)
            return
        self._virsh(member, "shutdown", member.domain)
        deadline = self._clock() + SHUTDOWN_WAIT_S
        while self._state(member) not in ("stopped", "absent"):
            if self._clock() > deadline:  # a guest that ignores ACPI: pull the power
                self._virsh(member, "destroy", member.domain)
                return
            self._sleep(POLL_S)

    def start_node(self, node: str, progress: Progress) -> list[str]:
        """``virsh start`` of the node (a host with its failure domain); waits until each answers SSH."""
        affected = self.record.affected(node)
        for member in affected:
            self._stopping_mark(member).unlink(missing_ok=True)  # a stop that died half-way
            state = self._state(member)
            if state == "absent":
                raise UsageError(
                    f"{member.name}: domain {member.domain} does not exist on {member.uri}; "
                    "run `nestlab up --substrate libvirt SPEC` to create it"
                )
            if state == "running":
                progress(f"{member.name}: already running")
                continue
            self._virsh(member, "start", member.domain)
            progress(f"{member.name}: started")
        progress(f"waiting for sshd on {len(affected)} node(s)")
        waiting = list(affected)
        deadline = self._clock() + SSH_WAIT_S
        while waiting:
            waiting = [n for n in waiting if not self._reachable(n)]
            if not waiting:
                break
            if self._clock() > deadline:
                names = ", ".join(n.name for n in waiting)
                raise LibvirtSubstrateError(
                    f"sshd did not answer on {names} within {SSH_WAIT_S:g}s; "
                    f"see the console with `virsh -c {waiting[0].uri} console {waiting[0].domain}`"
                )
            self._sleep(POLL_S)
        return [str(n.name) for n in affected]
