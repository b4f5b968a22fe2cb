"""LabNode: one planned node as a libvirt domain with its own disk overlay, cloud-init and vTPM.

The disk is a qcow2 overlay on the hypervisor's copy of the node image, so a node costs only what
it writes and ``pulumi destroy`` leaves the base image for the next lab. Every node gets OVMF (UEFI,
what measured boot needs) and a TPM 2.0 CRB device backed by swtpm (libvirt's ``emulator``
backend): the same per-node TPM the local substrate gives, so attestation works the same on both.
Hosts get the host CPU passed through so their pod microVMs can use nested KVM.
"""

from __future__ import annotations

from ipaddress import IPv4Network

import pulumi
import pulumi_libvirt as libvirt

from nestlab.spec import PlannedNode, Role
from nestlab.substrate.libvirt import cloudinit
from nestlab.substrate.libvirt.domain_xml import CDROM_ON_SATA
from nestlab.substrate.libvirt.network import LabNetwork

COMPONENT_TYPE = "nestlab:libvirt:LabNode"
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"  # Debian's ovmf package, 4 MiB flash layout
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"  # the matching variable store template
NVRAM_DIR = "/var/lib/libvirt/qemu/nvram"  # where libvirt keeps per-domain UEFI variables
MACHINE = "q35"  # OVMF and the CRB TPM want a PCIe machine; pc works but q35 is what OVMF is tested on
TPM_MODEL = "tpm-crb"
TPM_BACKEND = "emulator"  # libvirt starts one swtpm per domain and keeps its state with the domain
TPM_VERSION = "2.0"
MIB = 1024 * 1024


def domain_name(lab_name: str, node: PlannedNode) -> str:
    """The libvirt domain's name: the lab prefixes it so two labs can share a hypervisor."""
    return f"{lab_name}-{node.name}"


class LabNode(pulumi.ComponentResource):
    """One node: overlay volume, cloud-init disk and domain, on its hypervisor's provider."""

    volume: libvirt.Volume
    cloud_init: libvirt.CloudInitDisk
    domain: libvirt.Domain

    def __init__(
        self,
        resource_name: str,
        *,
        lab_name: str,
        node: PlannedNode,
        management: IPv4Network,
        base_volume: libvirt.Volume,
        network: LabNetwork,
        pool: str,
        ssh_public_key: str,
        domain_type: str,
        provider: libvirt.Provider,
        console_password: pulumi.Output[str] | None = None,
        mtu: int | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        name = domain_name(lab_name, node)
        self.volume = libvirt.Volume(
            f"{resource_name}-disk",
            name=f"{name}.qcow2",
            pool=pool,
            format="qcow2",
            base_volume_id=base_volume.id,
            size=node.size.disk_mib * MIB,
            opts=child,
        )
        docs = cloudinit.documents(lab_name, node, management, ssh_public_key, mtu=mtu)
        user_data: pulumi.Input[str] = docs.user_data
        if console_password is not None:
            user_data = console_password.apply(lambda pw: cloudinit.user_data(node, ssh_public_key, pw))
        self.cloud_init = libvirt.CloudInitDisk(
            f"{resource_name}-cloudinit",
            name=f"{name}-cloudinit.iso",
            pool=pool,
            meta_data=docs.meta_data,
            user_data=user_data,
            network_config=docs.network_config,
            opts=child,
        )
        self.domain = libvirt.Domain(
            f"{resource_name}-domain",
            name=name,
            type=domain_type,
            machine=MACHINE,
            memory=node.size.memory_mib,
            vcpu=node.size.cpu,
            firmware=OVMF_CODE,
            nvram=libvirt.DomainNvramArgs(file=f"{NVRAM_DIR}/{name}_VARS.fd", template=OVMF_VARS),
            cpu=libvirt.DomainCpuArgs(mode="host-passthrough") if node.role is Role.HOST else None,
            tpm=libvirt.DomainTpmArgs(model=TPM_MODEL, backend_type=TPM_BACKEND, backend_version=TPM_VERSION),
            disks=[libvirt.DomainDiskArgs(volume_id=self.volume.id)],
            cloudinit=self.cloud_init.id,
            network_interfaces=[
                libvirt.DomainNetworkInterfaceArgs(
                    network_id=network.network.id,
                    mac=cloudinit.mac_for(node.address),
                    wait_for_lease=False,  # no DHCP on the lab network: the address is static
                )
            ],
            consoles=[libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")],
            autostart=True,
            running=True,
            description=f"nestlab {lab_name}: {node.role} {node.name} at {node.address}",
            xml=libvirt.DomainXmlArgs(xslt=CDROM_ON_SATA),  # the cloud-init CD must not be IDE on q35
            opts=child,
        )
        self.register_outputs({"domain": self.domain.id, "address": str(node.address)})
