"""What the outer machine prepares for the hosts' agents before Ansible runs roles/esx_host.

Runs on the outer machine only (it needs the ``outer`` extra's ``cryptography`` and the kernel
build): each host's agent gets a client certificate naming it the way the API server's
NodeRestriction expects (CN ``system:node:<host>``, O ``system:nodes``), signed by the lab CA and
kept next to the other lab certificates; and the lifecycle gets the paths of the pod kernel and
initramfs it builds the signed nestlab-pod-kernel package from (the role copies neither).
:func:`ansible_vars` returns the extra variables for the playbook.
"""

from __future__ import annotations

from pathlib import Path

from nestlab.provision import pki as lab_pki
from nestlab.runtime import initramfs, kernel
from nestlab.spec.model import Role
from nestlab.spec.plan import Plan

NODE_GROUP = "system:nodes"


def agent_cert_name(host: str) -> str:
    """The certificate's CN, which is also its file name under the lab's pki directory."""
    return f"system:node:{host}"


def ensure_agent_certs(plan: Plan, pki_dir: Path, role: Role = Role.HOST) -> dict[str, lab_pki.Issued]:
    """One client certificate per node of ``role`` (kept when it exists): the hosts' agents and
    proxies, and the load balancers' nestlab-edge, which reads Services and EndpointSlices with a
    node's read rights (a dedicated kube-proxy-like identity comes with the tenancy work)."""
    ca = lab_pki.ensure_ca(pki_dir, plan.lab.name)
    return {
        node.name: lab_pki.issue(
            pki_dir, ca, agent_cert_name(node.name), organization=NODE_GROUP, server=False
        )
        for node in plan.nodes
        if node.role is role
    }


def ansible_vars(plan: Plan, pki_dir: Path) -> dict[str, str]:
    """Node certificates made, pod kernel and initramfs built (cached): the playbook's extra vars."""
    ensure_agent_certs(plan, pki_dir)
    ensure_agent_certs(plan, pki_dir, Role.LOAD_BALANCER)
    return {
        "nestlab_pod_kernel": str(kernel.build().vmlinux),
        "nestlab_pod_initrd": str(initramfs.build().initramfs),
    }
