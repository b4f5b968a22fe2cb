"""A route for the Services CIDR, so that the host itself can connect to ClusterIPs.

Lab nodes have no default route (nothing may leave the lab), and a ClusterIP is on no network: a
process on the host connecting to one fails with "Network is unreachable" before any nftables
hook runs, and a pod's packet to a Service without endpoints is dropped by routing instead of
being rejected. kube-proxy relies on the node's default route; nestlab gives the Services CIDR
its own route to a port-less bridge ``nlsvc`` (this kernel has no ``dummy`` links), as IPVS-mode
kube-proxy gives its addresses to ``kube-ipvs0``. No packet is ever sent on it: the nat hooks
DNAT a Service's traffic to an endpoint (the kernel routes again), and the filter hooks reject
traffic to ports without endpoints.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from nestlab.errors import NestlabError
from nestlab.runtime import proc

SERVICE_LINK = "nlsvc"
IP_TIMEOUT_S = 15.0  # an `ip` call on a busy host


class RouteError(NestlabError):
    """The Services route could not be installed."""


def ensure(services_cidr: str, run: proc.Runner = proc.run, prefix: Sequence[str] = ()) -> None:
    """Create ``nlsvc`` if missing, bring it up and route ``services_cidr`` to it (idempotent)."""
    network = str(ipaddress.IPv4Network(services_cidr, strict=False))

    def ip(*args: str, check: bool = True) -> proc.Result:
        return run([*prefix, "ip", *args], timeout=IP_TIMEOUT_S, check=check)

    try:
        if ip("link", "show", "dev", SERVICE_LINK, check=False).returncode != 0:
            ip("link", "add", SERVICE_LINK, "type", "bridge")
        ip("link", "set", SERVICE_LINK, "up")
        ip("route", "replace", network, "dev", SERVICE_LINK)
    except proc.ProcessError as exc:
        raise RouteError(f"cannot route the Services CIDR {network} to {SERVICE_LINK}: {exc}") from exc
