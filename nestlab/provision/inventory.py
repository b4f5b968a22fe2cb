"""The Ansible inventory and ssh_config of a lab, derived from its plan and nothing else.

Groups follow node roles (``hosts``, ``control_plane``, ``load_balancers``, ``depot``) so each role
in roles/ targets one group; per-node variables carry what the plan decided (address, placement,
pod subnet), so no role recomputes placement or addresses.
"""

from __future__ import annotations

from typing import Any

from nestlab.paths import LabFiles
from nestlab.spec import addresses
from nestlab.spec.model import Role, SubstrateType
from nestlab.spec.plan import Plan

GROUPS = {
    Role.HOST: "hosts",
    Role.CONTROL_PLANE: "control_plane",
    Role.LOAD_BALANCER: "load_balancers",
    Role.DEPOT: "depot",
}

#: the TPM each substrate's hosts measure into and quote from (roles/esx_host: esx_host_tpm_tcti):
#: a container node has no TPM of its own, so it runs a swtpm; a libvirt VM has the vTPM that OVMF
#: measured the firmware into, reached through the kernel's resource manager
HOST_TPM_TCTI = {
    SubstrateType.LOCAL: "swtpm:host=127.0.0.1,port=2321",
    SubstrateType.LIBVIRT: "device:/dev/tpmrm0",
}


def ssh_options(files: LabFiles) -> list[str]:
    """SSH options every lab connection uses: the lab key, its own known_hosts, no prompts."""
    return [
        "-o", f"IdentityFile={files.ssh_key}",
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={files.known_hosts}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
    ]  # fmt: skip


def inventory(plan: Plan, files: LabFiles) -> dict[str, Any]:
    """The inventory as a YAML-ready mapping."""
    lab = plan.lab
    children: dict[str, Any] = {group: {"hosts": {}} for group in GROUPS.values()}
    for node in plan.nodes:
        host_vars: dict[str, Any] = {
            "ansible_host": str(node.address),
            "nestlab_role": str(node.role),
            "nestlab_placed_on": node.placed_on,
        }
        if node.pod_subnet is not None:
            host_vars["nestlab_pod_subnet"] = str(node.pod_subnet)
        children[GROUPS[node.role]]["hosts"][node.name] = host_vars
    children[GROUPS[Role.HOST]]["vars"] = {"esx_host_tpm_tcti": HOST_TPM_TCTI[lab.substrate.type]}
    return {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(files.ssh_key),
                "ansible_ssh_common_args": " ".join(ssh_options(files)),
                "ansible_python_interpreter": "/usr/bin/python3",
                "nestlab_lab_name": lab.name,
                "nestlab_substrate": str(lab.substrate.type),
                "nestlab_vip": str(plan.vip),
                "nestlab_gateway": str(plan.gateway),
                "nestlab_management_cidr": str(lab.networks.management),
                "nestlab_pods_cidr": str(lab.networks.pods),
                "nestlab_services_cidr": str(lab.networks.services),
                "nestlab_ingress_cidr": str(lab.networks.ingress),
                "nestlab_kubernetes_service_ip": str(addresses.kubernetes_service_ip(lab)),
                "nestlab_cluster_dns_ip": str(addresses.cluster_dns_ip(lab)),
                "nestlab_cluster_domain": addresses.CLUSTER_DOMAIN,
                "nestlab_pod_eviction_seconds": lab.control_plane.pod_eviction_seconds,
                "nestlab_nodes": [
                    {"name": node.name, "address": str(node.address), "role": str(node.role)}
                    for node in plan.nodes
                ],
            },
            "children": children,
        }
    }


def ssh_config(plan: Plan, files: LabFiles) -> str:
    """An ssh_config with a ``Host`` block per node (``ssh -F <file> cp-1`` works)."""
    blocks = []
    for node in plan.nodes:
        blocks.append(
            f"Host {node.name}\n"
            f"  HostName {node.address}\n"
            "  User root\n"
            f"  IdentityFile {files.ssh_key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {files.known_hosts}\n"
            "  StrictHostKeyChecking accept-new\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
        )
    return "\n".join(blocks)
