"""LabNetwork: the lab's management network on one hypervisor, isolated by construction.

libvirt mode ``none``: guests and the hypervisor talk, nothing is forwarded or NATed, so the lab's
198.18.0.0/15 addresses never leave the machine. No DHCP and no DNS either: nodes get their planned
addresses from cloud-init. Only the network of the first hypervisor carries the plan's gateway
address (``.1``); with several hypervisors the others' bridges have no address, so joining the
bridges at layer 2 (docs/pulumi.md) cannot create two hosts with the same IP.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pulumi
import pulumi_libvirt as libvirt

from nestlab.errors import NestlabError

COMPONENT_TYPE = "nestlab:libvirt:LabNetwork"
BRIDGE_PREFIX = "lv-"  # + the lab name (<= 12 characters) stays within Linux's 15-character limit


def network_name(lab_name: str) -> str:
    """The libvirt network's name on every hypervisor."""
    return f"{lab_name}-mgmt"


def bridge_name(lab_name: str) -> str:
    """The Linux bridge libvirt creates for the network (same name on every hypervisor)."""
    return f"{BRIDGE_PREFIX}{lab_name}"


class LabNetwork(pulumi.ComponentResource):
    """The isolated management network on one hypervisor."""

    network: libvirt.Network
    """The libvirt network nodes attach to."""

    def __init__(
        self,
        resource_name: str,
        *,
        lab_name: str,
        management: IPv4Network,
        gateway: IPv4Address | None,
        provider: libvirt.Provider,
        mtu: int | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``gateway`` is the hypervisor's own address on the network, or None for a bridge without one.

        ``mtu`` (when the network is stretched over a VXLAN) reaches the nodes' virtio NICs through libvirt.
        """
        super().__init__(COMPONENT_TYPE, resource_name, None, opts)
        addresses: list[str] | None = None
        if gateway is not None:
            # libvirt gives the bridge the first host address of ``addresses``; the plan must agree.
            if gateway != management.network_address + 1:
                raise NestlabError(f"the lab gateway {gateway} is not the first address of {management}")
            addresses = [str(management)]
        self.network = libvirt.Network(
            f"{resource_name}-net",
            name=network_name(lab_name),
            mode="none",
            bridge=bridge_name(lab_name),
            addresses=addresses,
            dhcp=libvirt.NetworkDhcpArgs(enabled=False),
            dns=libvirt.NetworkDnsArgs(enabled=False),
            autostart=True,
            mtu=mtu,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.register_outputs({"id": self.network.id, "bridge": bridge_name(lab_name)})
