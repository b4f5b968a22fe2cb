"""The address plan: where each node, the VIP, each host's pod subnet and the cluster's
well-known Service addresses sit. Pure arithmetic.

Addresses are fixed offsets into the management network so they are easy to teach and to
remember (cp-1 is always ``.21``); the offsets leave gaps so a role can grow without renumbering.
The ``kubernetes`` Service and the cluster DNS take upstream's offsets in the service range
(kubeadm's first address and ``.10``), so what a learner reads about Kubernetes holds here.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from nestlab.spec.model import Lab, Role

GATEWAY_OFFSET = 1  # the outer machine's (or hypervisor's) end of the lab bridge
VIP_OFFSET = 5  # default API virtual IP held by keepalived
DEPOT_OFFSET = 10
LOAD_BALANCER_OFFSET = 11  # lb-1, lb-2
CONTROL_PLANE_OFFSET = 21  # cp-1 .. cp-9
HOST_OFFSET = 31  # esx-01 upward
KUBERNETES_SERVICE_OFFSET = 1  # the `kubernetes` Service: the service range's first address
CLUSTER_DNS_OFFSET = 10  # kube-dns: the range's 10th address, as kubeadm picks it
CLUSTER_DOMAIN = "cluster.local"  # upstream's default cluster domain (kubelet --cluster-domain)
# Service ranges a spec gets when it says nothing: beside the management network inside
# 198.18.0.0/15 and clear of the pods' 198.19.0.0/16. A /20 holds 4094 ClusterIPs (upstream's
# default is a /12, far more than a teaching lab needs); a /24 of LoadBalancer addresses is one
# per Service a lesson could expose and then some.
DEFAULT_SERVICES = IPv4Network("198.18.32.0/20")
DEFAULT_INGRESS = IPv4Network("198.18.8.0/24")

ROLE_OFFSETS = {
    Role.DEPOT: DEPOT_OFFSET,
    Role.LOAD_BALANCER: LOAD_BALANCER_OFFSET,
    Role.CONTROL_PLANE: CONTROL_PLANE_OFFSET,
    Role.HOST: HOST_OFFSET,
}


def nth(network: IPv4Network, offset: int) -> IPv4Address:
    """The address ``offset`` places into ``network``."""
    return network.network_address + offset


def gateway(network: IPv4Network) -> IPv4Address:
    """The lab bridge's own address on the outer machine."""
    return nth(network, GATEWAY_OFFSET)


def vip(lab: Lab) -> IPv4Address:
    """The API virtual IP: the spec's, or the default offset."""
    return lab.load_balancers.vip or nth(lab.networks.management, VIP_OFFSET)


def kubernetes_service_ip(lab: Lab) -> IPv4Address:
    """The ClusterIP of Service ``default/kubernetes`` (the API from inside the cluster)."""
    return nth(lab.networks.services, KUBERNETES_SERVICE_OFFSET)


def cluster_dns_ip(lab: Lab) -> IPv4Address:
    """The ClusterIP of Service ``kube-system/kube-dns``: every pod's nameserver."""
    return nth(lab.networks.services, CLUSTER_DNS_OFFSET)


def addresses_needed(host_count: int) -> int:
    """How many addresses the management network must have for ``host_count`` hosts."""
    return HOST_OFFSET + host_count + 1  # + the broadcast address


def pod_subnet(lab: Lab, index: int) -> IPv4Network:
    """The pod subnet of the ``index``-th host (0-based)."""
    pods = lab.networks.pods
    step = 1 << (32 - lab.networks.pod_prefix)
    return IPv4Network((int(pods.network_address) + index * step, lab.networks.pod_prefix))


def pod_subnets_available(lab: Lab) -> int:
    """How many host pod subnets the pod network can be cut into."""
    bits = lab.networks.pod_prefix - lab.networks.pods.prefixlen
    return 1 << bits if bits >= 0 else 0


def node_addresses(lab: Lab) -> dict[str, IPv4Address]:
    """The management address of every node, by name."""
    management = lab.networks.management
    return {
        name: nth(management, ROLE_OFFSETS[role] + i)
        for role, names in lab.names_by_role().items()
        for i, name in enumerate(names)
    }
