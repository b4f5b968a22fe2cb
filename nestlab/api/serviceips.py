"""Service ClusterIP allocation rules, pure: the range, what may be asked for, what to hand out.

vSphere calls this range the Supervisor's "Services CIDR"; kube-apiserver calls it
``--service-cluster-ip-range``. The rules follow upstream's allocator: the network and broadcast
addresses are never handed out, a requested address must lie inside the range (422 naming the
range otherwise), and the range is split as KEP-3070 splits it: a small static band at the bottom
for addresses people choose (``.1`` is the ``kubernetes`` Service, ``.10`` the cluster DNS), and
dynamic allocation taking from the band above it first. The lab goes one step further than
upstream and never hands out ``.1`` or ``.10`` dynamically, even in a range too small for a band.

Who holds an address is kept in etcd, one key per address (:func:`claim`), created in the same
transaction as the Service (see :class:`~nestlab.api.kinds.base.Claim`): the etcd side of
allocation lives in :mod:`nestlab.api.clusterips`; this module only decides.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Collection
from dataclasses import dataclass

from nestlab.api.kinds.base import Claim
from nestlab.api.status import Cause

KEY_PREFIX = "/registry/ranges/serviceips/"
"""Where each held ClusterIP has its key (never under /registry/services/, which lists Services)."""
DEFAULT_RANGE = "198.18.32.0/20"
"""The lab's default Services CIDR (lab spec ``networks.services``)."""
KUBERNETES_OFFSET = 1
"""``default/kubernetes`` gets the range's first address, as upstream."""
DNS_OFFSET = 10
"""``kube-system/kube-dns`` gets the tenth, as kubeadm's clusterDNS convention."""
_MIN_SIZE = 16  # KEP-3070: ranges smaller than this have no static band...
_MAX_STATIC = 256  # ...the band is 1/16 of the range, at least 16 and at most 256 addresses
_STEP = 16


class RangeError(ValueError):
    """A --service-cluster-ip-range this server cannot use (the message says why)."""


@dataclass(frozen=True)
class ServiceRange:
    """One IPv4 Services CIDR."""

    network: ipaddress.IPv4Network

    @classmethod
    def parse(cls, cidr: str) -> ServiceRange:
        """The range of a CIDR string; :class:`RangeError` when it is not a usable IPv4 network."""
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise RangeError(f"{cidr!r} is not a CIDR network address ({exc})") from exc
        if not isinstance(network, ipaddress.IPv4Network):
            raise RangeError(f"{cidr} is IPv6: the lab's Services are IPv4 only")
        if network.num_addresses < _MIN_SIZE:
            raise RangeError(
                f"{cidr} is too small: the range needs at least {_MIN_SIZE} addresses (a /28) so that "
                f"offset {DNS_OFFSET} exists for the cluster DNS Service"
            )
        return cls(network)

    @property
    def size(self) -> int:
        """Addresses that can be handed out (network and broadcast excluded)."""
        return self.network.num_addresses - 2

    @property
    def static_size(self) -> int:
        """The bottom band reserved for chosen addresses (KEP-3070's ``calculateRangeOffset``)."""
        if self.size < _MIN_SIZE:
            return 0
        return max(_MIN_SIZE, min(self.size // _STEP, _MAX_STATIC))

    def address(self, offset: int) -> str:
        """The address ``offset`` above the network address (1 is the first usable one)."""
        return str(self.network.network_address + offset)

    @property
    def kubernetes_ip(self) -> str:
        return self.address(KUBERNETES_OFFSET)

    @property
    def dns_ip(self) -> str:
        return self.address(DNS_OFFSET)

    def contains(self, ip: str) -> bool:
        """Whether ``ip`` may be held: inside the network, neither network nor broadcast address."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        ends = (self.network.network_address, self.network.broadcast_address)
        return address in self.network and address not in ends

    def __str__(self) -> str:
        return str(self.network)


def check_requested(service_range: ServiceRange, ip: str, path: str = "spec.clusterIPs[0]") -> list[Cause]:
    """The upstream 422 cause when a requested ClusterIP lies outside the range."""
    if service_range.contains(ip):
        return []
    message = (
        f'Invalid value: "{ip}": provided IP is not in the valid range. '
        f"The range of valid IPs is {service_range}"
    )
    return [Cause(path, message)]


def claim(ip: str, path: str = "spec.clusterIPs[0]") -> Claim:
    """The etcd claim a Service holding ``ip`` makes (its 422 when another Service holds it)."""
    return Claim(f"{KEY_PREFIX}{ip}", path, f'Invalid value: "{ip}": provided IP is already allocated')


def held(keys: Collection[str]) -> set[str]:
    """The addresses held, from the claim keys under :data:`KEY_PREFIX`."""
    return {key.removeprefix(KEY_PREFIX) for key in keys if key.startswith(KEY_PREFIX)}


def pick(service_range: ServiceRange, taken: Collection[str], rng: random.Random) -> str | None:
    """A free address for a Service that asked for none, or None when the range is full.

    A random start in the dynamic band spreads concurrent picks by several API servers (a clash is
    still caught by the etcd transaction and retried); the static band is the fallback, as
    upstream, minus the ``kubernetes`` and cluster DNS addresses.
    """
    reserved = {KUBERNETES_OFFSET, DNS_OFFSET}
    bands = (
        range(service_range.static_size + 1, service_range.size + 1),
        range(1, service_range.static_size + 1),
    )
    for band in bands:
        if not band:
            continue
        start = rng.randrange(len(band))
        for step in range(len(band)):
            offset = band[(start + step) % len(band)]
            if offset in reserved:
                continue
            address = service_range.address(offset)
            if address not in taken:
                return address
    return None
