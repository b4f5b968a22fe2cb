"""Where nestlab keeps things on the outer machine: one state directory per lab, one cache.

``NESTLAB_HOME`` moves everything (tests use a temporary one); otherwise root uses /var/lib/nestlab
and other users ~/.local/share/nestlab. Image and kernel caches live outside lab directories so
``nestlab down`` keeps them.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The root of everything nestlab writes."""
    configured = os.environ.get("NESTLAB_HOME")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/nestlab")
    return Path.home() / ".local" / "share" / "nestlab"


def lab_dir(name: str) -> Path:
    """The state directory of lab ``name``."""
    return home() / "labs" / name


def cache_dir() -> Path:
    """Content-addressed caches (node images, kernels, pod images) shared by all labs."""
    return home() / "cache"


def image_build_cache() -> Path:
    """OCI images built on the outer machine (the demo pod images), by content key
    (:class:`nestlab.images.oci.BuildCache`), so an unchanged image is not built again. Not
    ``images/``: the node images live there (:mod:`nestlab.substrate.local.image`)."""
    return cache_dir() / "oci-images"


def repo_root() -> Path:
    """The checkout nestlab runs from (roles, playbooks, stacks and recipes live there)."""
    return Path(__file__).resolve().parent.parent


class LabFiles:
    """The layout of one lab's state directory; every layer asks here instead of joining paths."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def named(cls, name: str) -> LabFiles:
        """The files of lab ``name`` under :func:`home`."""
        return cls(lab_dir(name))

    @property
    def ssh_dir(self) -> Path:
        """The lab's SSH key pair, known_hosts and ssh_config."""
        return self.root / "ssh"

    @property
    def ssh_key(self) -> Path:
        """The lab's private SSH key (ed25519, 0600); its ``.pub`` is in every node."""
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """Host keys of the lab's nodes, so no prompt ever appears."""
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        """An ssh_config naming every node, for ssh, testinfra and people."""
        return self.ssh_dir / "config"

    @property
    def inventory(self) -> Path:
        """The Ansible inventory generated from the plan."""
        return self.root / "inventory.yml"

    @property
    def plan(self) -> Path:
        """The plan the lab was built from, as ``nestlab plan --json`` prints it."""
        return self.root / "plan.json"

    @property
    def pki(self) -> Path:
        """The lab CA and node certificates."""
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        """Full logs of every step (ansible, nspawn consoles, verify)."""
        return self.root / "logs"

    @property
    def trust_keys(self) -> Path:
        """The lab's private trust keys (apt signing, kernel signing, attestation CA): 0700, never copied."""
        return self.root / "trust"

    @property
    def trust_public(self) -> Path:
        """Public parts of the trust keys, which roles copy to nodes."""
        return self.root / "trust-public"

    @property
    def attestation(self) -> Path:
        """Host registrations, AK certificates and the measurement policy the verifiers use."""
        return self.root / "attestation"

    @property
    def pod_kernel_repo(self) -> Path:
        """The signed pod-kernel package and the signed apt repository the depot serves."""
        return self.root / "apt"

    @property
    def kubeconfig(self) -> Path:
        """Lab-admin kubeconfig pointing at the VIP."""
        return self.root / "kubeconfig"
