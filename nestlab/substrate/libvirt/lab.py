"""LibvirtLab: the whole lab on one or several hypervisors, then provisioning once every domain exists.

One libvirt provider per hypervisor URI of the spec; on each, a management network and the node
base image. Each planned node is declared on the provider of the hypervisor the plan placed it on
(placement, anti-affinity included, is decided in :mod:`nestlab.spec`, never here). The
provisioning command depends on every domain, so Ansible starts only when all nodes exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_libvirt as libvirt

from nestlab import paths
from nestlab.spec import NodeName
from nestlab.substrate.libvirt import overlay, provisioning
from nestlab.substrate.libvirt.network import LabNetwork, bridge_name
from nestlab.substrate.libvirt.node import LabNode
from nestlab.substrate.libvirt.settings import StackSettings

COMPONENT_TYPE = "nestlab:libvirt:Lab"
BASE_IMAGE_FORMAT = "qcow2"


@dataclass(frozen=True)
class Hypervisor:
    """What one hypervisor holds for the lab."""

    uri: str
    provider: libvirt.Provider
    network: LabNetwork
    base_volume: libvirt.Volume
    link: command.local.Command | None
    """Joins this hypervisor's lab bridge to the others' (labs over several hypervisors only)."""


class LibvirtLab(pulumi.ComponentResource):
    """Every resource of one lab; read ``nodes`` and ``provision`` for the graph's ends."""

    hypervisors: list[Hypervisor]
    nodes: dict[NodeName, LabNode]
    provision: command.local.Command

    def __init__(
        self,
        resource_name: str,
        settings: StackSettings,
        *,
        console_password: pulumi.Output[str] | None = None,
        repo_root: Path | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, resource_name, None, opts)
        plan = settings.plan
        lab = plan.lab
        self._mtu = overlay.LAB_MTU if len(settings.uris) > 1 else None
        self.hypervisors = [
            self._hypervisor(resource_name, index, uri, settings) for index, uri in enumerate(settings.uris)
        ]
        self.nodes = {}
        for node in plan.nodes:
            hypervisor = self.hypervisors[node.hypervisor]
            self.nodes[node.name] = LabNode(
                f"{resource_name}-{node.name}",
                lab_name=lab.name,
                node=node,
                management=lab.networks.management,
                base_volume=hypervisor.base_volume,
                network=hypervisor.network,
                pool=settings.pool,
                ssh_public_key=settings.ssh_public_key,
                domain_type=settings.domain_type,
                provider=hypervisor.provider,
                console_password=console_password,
                mtu=self._mtu,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.provision = command.local.Command(
            f"{resource_name}-provision",
            create=provisioning.command_line(settings.spec_path, settings.files.inventory),
            triggers=[
                provisioning.plan_digest(plan),
                provisioning.roles_digest(repo_root or paths.repo_root()),
            ],
            environment={"NESTLAB_SUBSTRATE": "libvirt", "NESTLAB_STATE_DIR": str(settings.state_dir)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=self._provisioning_needs()),
        )
        self.register_outputs(
            {"vip": str(plan.vip), "addresses": {n.name: str(n.address) for n in plan.nodes}}
        )

    def _provisioning_needs(self) -> list[pulumi.Resource]:
        """Every domain, and every bridge link: Ansible needs all nodes reachable."""
        links: list[pulumi.Resource] = [h.link for h in self.hypervisors if h.link is not None]
        return [*(node.domain for node in self.nodes.values()), *links]

    def _link(
        self, prefix: str, index: int, settings: StackSettings, network: LabNetwork
    ) -> command.local.Command:
        """The VXLAN join of hypervisor ``index`` towards all the others, run over SSH."""
        lab_name = settings.plan.lab.name
        target = overlay.ssh_target(settings.uris[index])
        peers = [overlay.ssh_target(uri).host for i, uri in enumerate(settings.uris) if i != index]
        return command.local.Command(
            f"{prefix}-link",
            create=overlay.ssh_line(target, overlay.join_script(lab_name, bridge_name(lab_name), peers)),
            delete=overlay.ssh_line(target, overlay.leave_script(lab_name)),
            triggers=[network.network.id],  # a re-created bridge has lost its VXLAN port: join again
            opts=pulumi.ResourceOptions(parent=self, depends_on=[network.network]),
        )

    def _hypervisor(self, resource_name: str, index: int, uri: str, settings: StackSettings) -> Hypervisor:
        lab = settings.plan.lab
        prefix = f"{resource_name}-h{index}"
        provider = libvirt.Provider(prefix, uri=uri, opts=pulumi.ResourceOptions(parent=self))
        network = LabNetwork(
            f"{prefix}-mgmt",
            lab_name=lab.name,
            management=lab.networks.management,
            gateway=settings.plan.gateway if index == 0 else None,
            provider=provider,
            mtu=self._mtu,
            opts=pulumi.ResourceOptions(parent=self),
        )
        link = self._link(prefix, index, settings, network) if self._mtu is not None else None
        base = libvirt.Volume(
            f"{prefix}-base",
            name=f"{lab.name}-node-base.qcow2",
            pool=settings.pool,
            format=BASE_IMAGE_FORMAT,
            source=settings.image,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        return Hypervisor(uri, provider, network, base, link)
