"""The frozen, typed lab model that every other layer reads; built only by :mod:`nestlab.spec.parse`.

Sizes are whole MiB so arithmetic stays exact; networks are :mod:`ipaddress` objects so overlap and
membership checks cannot be done by string comparison by mistake.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import NewType

NodeName = NewType("NodeName", str)
"""A lab node's name, also its hostname: a DNS label such as ``esx-01`` or ``cp-2``."""

API_VERSION = "nestlab.dev/v1alpha1"
KIND = "Lab"


class Role(enum.StrEnum):
    """What a node is for; each role has an Ansible group and a minimum size."""

    HOST = "host"
    CONTROL_PLANE = "control-plane"
    LOAD_BALANCER = "load-balancer"
    DEPOT = "depot"


class SubstrateType(enum.StrEnum):
    """Where nodes come from."""

    LOCAL = "local"
    LIBVIRT = "libvirt"


class KernelSource(enum.StrEnum):
    """Which kernel pods boot."""

    JUST_ENOUGH = "just-enough"
    """Built from linux-source-6.1 with the fragments in kernel/ (the default)."""
    DEBIAN_CLOUD = "debian-cloud"
    """Debian's linux-image-cloud-amd64 with the virtio modules in the initramfs (fallback)."""


@dataclass(frozen=True)
class Size:
    """Resources given to one node."""

    cpu: int
    """Virtual CPUs (libvirt) or the CPU weight share (local substrate)."""
    memory_mib: int
    """Memory in MiB: the VM's RAM, or the nspawn machine's memory limit."""
    disk_mib: int
    """Disk in MiB: the VM volume size, or the overlay's expected use."""


@dataclass(frozen=True)
class HostSpec:
    """One ESXi-like host."""

    name: NodeName
    size: Size
    hypervisor: int | None = None
    """Index into ``Substrate.uris`` the user pinned this host to; None lets placement choose."""


@dataclass(frozen=True)
class ControlPlaneSpec:
    """The Supervisor control plane."""

    count: int
    """Number of control-plane nodes; odd, so etcd keeps a majority when one fails."""
    size: Size
    anti_affinity: bool = True
    """Place every control-plane node on its own host (and hypervisor when several)."""
    pod_eviction_seconds: int = 30
    """Seconds a pod stays bound to a failed (unreachable or not-ready) host before it is evicted:
    the API server's default tolerationSeconds (upstream 300; 30 shows the failover in a lesson)."""


@dataclass(frozen=True)
class LoadBalancerSpec:
    """The L4 load balancer pair in front of the API servers."""

    count: int
    """1 or 2; with 2, keepalived moves the VIP when its holder fails."""
    size: Size
    vip: IPv4Address | None = None
    """Virtual IP of the API; None takes the management network's address ``.5``."""


@dataclass(frozen=True)
class DepotSpec:
    """The depot: OCI registry + signed apt repository the lab installs from."""

    size: Size


@dataclass(frozen=True)
class Networks:
    """Lab networks; they exist only on bridges the lab creates and are never routed out."""

    management: IPv4Network
    """Node addresses, the VIP and the outer machine's bridge address (``.1``)."""
    pods: IPv4Network
    """Cut into one subnet per host for its pods."""
    pod_prefix: int
    """Prefix length of each host's pod subnet."""
    services: IPv4Network
    """Service ClusterIPs (vSphere: the Supervisor's "Services CIDR"); ``.1`` is the ``kubernetes``
    Service, ``.10`` the cluster DNS."""
    ingress: IPv4Network
    """LoadBalancer Service addresses (vSphere: the Supervisor's "Ingress CIDR")."""


@dataclass(frozen=True)
class Substrate:
    """Where the nodes run."""

    type: SubstrateType
    uris: tuple[str, ...] = ()
    """libvirt connection URIs, one per hypervisor; empty for the local substrate."""


@dataclass(frozen=True)
class Lab:
    """A whole lab spec, validated."""

    name: str
    """The lab's name; it prefixes bridges, machines and the state directory."""
    substrate: Substrate
    hosts: tuple[HostSpec, ...]
    control_plane: ControlPlaneSpec
    load_balancers: LoadBalancerSpec
    depot: DepotSpec
    networks: Networks
    pod_kernel: KernelSource

    def names_by_role(self) -> dict[Role, list[NodeName]]:
        """Every node's name, grouped by role, in address order."""
        return {
            Role.DEPOT: [NodeName("depot")],
            Role.LOAD_BALANCER: [NodeName(f"lb-{i}") for i in range(1, self.load_balancers.count + 1)],
            Role.CONTROL_PLANE: [NodeName(f"cp-{i}") for i in range(1, self.control_plane.count + 1)],
            Role.HOST: [host.name for host in self.hosts],
        }
