"""Stack configuration -> validated settings, refused with one clear message before any resource exists.

``pulumi up`` with a typo in a stack file should not declare half a lab and then fail on a libvirt
call; so every ``nestlab:*`` key is read and checked here, the lab spec is parsed and planned, and
only a complete :class:`StackSettings` reaches the components. Pure apart from reading the files the
config names (the spec and the SSH public key).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nestlab import paths
from nestlab.errors import UsageError
from nestlab.spec import Plan, SpecError, load_spec, make_plan
from nestlab.spec.model import Lab, Substrate, SubstrateType
from nestlab.substrate.libvirt import overlay

NAMESPACE = "nestlab"
DEFAULT_URI = "qemu:///system"
DOMAIN_TYPES = ("kvm", "qemu")  # kvm needs (nested) KVM on the hypervisor; qemu is TCG, slow but works

# Every key the program reads, with what it is for: the unknown-key message lists them.
KEYS: dict[str, str] = {
    "spec": "path to the *.lab.yaml lab spec (relative paths start at the Pulumi project directory)",
    "image": "path or http(s) URL of the node base image (qcow2), uploaded once per hypervisor",
    "pool": "libvirt storage pool for volumes and cloud-init disks (default: default)",
    "sshPublicKey": "the lab SSH public key, as one line (or use sshPublicKeyFile)",
    "sshPublicKeyFile": "file holding the lab SSH public key (default: <stateDir>/ssh/id_ed25519.pub)",
    "domainType": "libvirt domain type: kvm (default) or qemu (TCG, when the hypervisor has no KVM)",
    "stateDir": "where the inventory and kubeconfig go (default: nestlab's state dir for the lab)",
    "consolePassword": "secret: password of the nestlab user on the serial console (optional)",
}


class StackConfigError(UsageError):
    """The stack configuration is incomplete or wrong; the message names the key and the fix."""


@dataclass(frozen=True)
class StackSettings:
    """Everything the libvirt program needs, checked."""

    spec_path: Path
    """The lab spec file, absolute."""
    plan: Plan
    """The lab resolved into nodes; its ``lab.substrate.uris`` are the hypervisors."""
    image: str
    """Node base image: an absolute path or an http(s) URL."""
    pool: str
    """libvirt storage pool on every hypervisor."""
    ssh_public_key: str
    """Authorized on every node for the ``nestlab`` user and root."""
    domain_type: str
    """``kvm`` or ``qemu``."""
    state_dir: Path
    """Where provisioning writes the inventory and the kubeconfig."""

    @property
    def uris(self) -> tuple[str, ...]:
        """libvirt URIs, one per hypervisor, in the spec's order."""
        return self.plan.lab.substrate.uris

    @property
    def files(self) -> paths.LabFiles:
        """The lab's state files (inventory, kubeconfig, SSH key), the same layout on every substrate."""
        return paths.LabFiles(self.state_dir)


def public_key_path(state_dir: Path) -> Path:
    """The public half of the lab's own SSH key pair (the key nestlab makes for each lab)."""
    private = paths.LabFiles(state_dir).ssh_key
    return private.with_name(private.name + ".pub")


def as_libvirt(lab: Lab) -> Lab:
    """The lab on the libvirt substrate: a spec written for the local one gets one local hypervisor."""
    if lab.substrate.type is SubstrateType.LIBVIRT:
        return lab
    return dataclasses.replace(lab, substrate=Substrate(SubstrateType.LIBVIRT, (DEFAULT_URI,)))


def read_settings(raw: Mapping[str, object], base_dir: Path) -> StackSettings:
    """Check the ``nestlab:*`` keys of a stack's config and build the settings, or raise.

    ``raw`` holds the full config keys (``nestlab:spec``); keys of other namespaces are ignored.
    Every problem found is reported at once, one per line.
    """
    values = {key.split(":", 1)[1]: value for key, value in raw.items() if key.startswith(f"{NAMESPACE}:")}
    problems = [
        f"{NAMESPACE}:{key} is not a setting of this program; known settings: {', '.join(sorted(KEYS))}"
        for key in sorted(values)
        if key not in KEYS
    ]
    spec = _text(values, "spec", problems, "pulumi config set nestlab:spec stacks/default.lab.yaml")
    image = _text(values, "image", problems, "pulumi config set nestlab:image /path/to/node.qcow2")
    domain_type = _text(values, "domainType", problems, "", default="kvm")
    if domain_type and domain_type not in DOMAIN_TYPES:
        problems.append(f"{NAMESPACE}:domainType is {domain_type!r}; use one of {', '.join(DOMAIN_TYPES)}")
    pool = _text(values, "pool", problems, "", default="default")
    state = _text(values, "stateDir", problems, "", default="")
    plan = None
    spec_path = _absolute(spec, base_dir)
    if spec:
        try:
            plan = make_plan(as_libvirt(load_spec(spec_path)))
        except SpecError as exc:
            problems.append(f"{NAMESPACE}:spec names a spec that was refused:\n{exc}")
    if plan is not None and len(plan.lab.substrate.uris) > 1:
        for uri in plan.lab.substrate.uris:
            try:
                overlay.ssh_target(uri)
            except UsageError as exc:
                problems.append(f"{NAMESPACE}:spec: {exc}")
    if image and "://" not in image:
        image = str(_absolute(image, base_dir))
    state_dir = _absolute(state, base_dir) if state else paths.lab_dir(plan.lab.name if plan else "default")
    # The lab's own key is the default, once the lab (hence its state dir) is known.
    key = _public_key(values, base_dir, public_key_path(state_dir) if plan or state else None, problems)
    if problems or plan is None:
        raise StackConfigError("bad stack configuration:\n" + "\n".join(problems))
    return StackSettings(spec_path, plan, image, pool, key, domain_type, state_dir)


def _text(
    values: Mapping[str, object], key: str, problems: list[str], fix: str, default: str | None = None
) -> str:
    value = values.get(key)
    if value is None or value == "":
        if default is None:
            problems.append(f"{NAMESPACE}:{key} is not set ({KEYS[key]}); {fix}")
            return ""
        return default
    if not isinstance(value, str):
        problems.append(f"{NAMESPACE}:{key} must be a string, got {type(value).__name__}")
        return ""
    return value


def _absolute(path: str, base_dir: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base_dir / candidate


def _public_key(
    values: Mapping[str, object], base_dir: Path, lab_key: Path | None, problems: list[str]
) -> str:
    literal = _text(values, "sshPublicKey", problems, "", default="")
    file = _text(values, "sshPublicKeyFile", problems, "", default="")
    if literal and file:
        problems.append(f"{NAMESPACE}:sshPublicKey and {NAMESPACE}:sshPublicKeyFile are both set; keep one")
        return ""
    path = _absolute(file, base_dir) if file else lab_key
    if not literal and path is not None:
        try:
            literal = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(
                f"cannot read the lab SSH public key {path}: {exc.strerror or exc}; create it "
                f"(ssh-keygen -t ed25519 -N '' -f {path.with_suffix('')}) or point "
                f"{NAMESPACE}:sshPublicKeyFile at another one"
            )
            return ""
    if not literal:
        return ""  # no lab yet to take the key from: the spec problem is the one to report
    if not literal.startswith(("ssh-", "ecdsa-", "sk-")) or "\n" in literal:
        problems.append(f"{NAMESPACE}:sshPublicKey does not look like one OpenSSH public key line")
    return literal
