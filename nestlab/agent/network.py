"""The pod network on one host: a bridge owning the host's pod subnet, a tap and an address per pod.

Each host gets its own pod subnet from the plan (``nestlab_pod_subnet``); the bridge holds the
subnet's first address, which is every pod's gateway. A pod's tap is enslaved to the bridge and its
address is handed to pod-init on the kernel command line (``nestlab.ip``/``nestlab.gw``). Hosts
reach each other's pods through host routes: ``<peer pod subnet> via <peer management address>``,
so any pod reaches any pod and any host any pod, and nothing is routed out of the lab. Address
leases are files named by address (created with O_EXCL), so two pods never share one and a
restarted agent finds them again; pod tasks release concurrently in threads, so a lease that
vanishes mid-scan is skipped and :meth:`PodNetwork.release` is idempotent. Every ``ip`` call goes
through the runner passed in.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nestlab.errors import NestlabError
from nestlab.runtime import proc, qemu

log = logging.getLogger("nestlab.agent")
IP_TIMEOUT_S = 15.0  # an `ip` call on a busy host
TAP_PREFIX = "nlt"  # + 12 hex digits of the pod uid = 15 characters, the IFNAMSIZ limit


class PodNetworkError(NestlabError):
    """The pod network could not be set up (no free address, ip failed)."""


@dataclass(frozen=True)
class PodAddress:
    """A pod's place on the pod network."""

    ip: str
    prefix: int
    gateway: str
    tap: qemu.Tap

    def cmdline(self) -> tuple[str, ...]:
        """The kernel parameters pod-init configures eth0 from."""
        return (f"nestlab.ip={self.ip}/{self.prefix}", f"nestlab.gw={self.gateway}")


def tap_name(uid: str) -> str:
    return TAP_PREFIX + uid.replace("-", "")[:12]


def mac_of(uid: str) -> str:
    """A stable, locally administered unicast MAC for the pod."""
    digest = hashlib.sha256(uid.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


class PodNetwork:
    """The host's pod bridge, address leases under ``state``/leases, and routes to peer hosts."""

    def __init__(self, bridge: str, subnet: str, state: Path, run: proc.Runner = proc.run) -> None:
        self.bridge = bridge
        self.subnet = ipaddress.ip_network(subnet)
        self.gateway = str(next(self.subnet.hosts()))
        self.leases = state / "leases"
        self._run = run

    def _ip(self, *args: str, check: bool = True) -> proc.Result:
        return self._run(["ip", *args], timeout=IP_TIMEOUT_S, check=check)

    def _exists(self, ifname: str) -> bool:
        return self._ip("link", "show", "dev", ifname, check=False).returncode == 0

    def setup(self, peers: Mapping[str, str] | None = None) -> None:
        """Bridge up with the gateway address; forwarding on; a route to each peer's pod subnet."""
        self.leases.mkdir(parents=True, exist_ok=True)
        if not self._exists(self.bridge):
            self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "replace", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for subnet, via in (peers or {}).items():
            if ipaddress.ip_network(subnet) != self.subnet:
                self._ip("route", "replace", subnet, "via", via)

    def allocate(self, uid: str) -> PodAddress:
        """This pod's address (the same one again for a pod that has one), its tap created."""
        self.leases.mkdir(parents=True, exist_ok=True)
        ip = self._lease_of(uid) or self._lease(uid)
        tap = qemu.Tap(tap_name(uid), mac_of(uid))
        if not self._exists(tap.ifname):
            user = str(qemu.POD_UID) if os.geteuid() == 0 else str(os.geteuid())
            self._ip("tuntap", "add", "dev", tap.ifname, "mode", "tap", "user", user, "group", user)
        self._ip("link", "set", tap.ifname, "master", self.bridge)
        # hairpin: a pod reaching itself through a Service gets its own packets back on its port
        # (br_netfilter DNATs bridged frames; kubelet's "hairpin-veth" mode)
        self._ip("link", "set", tap.ifname, "type", "bridge_slave", "hairpin", "on")
        self._ip("link", "set", tap.ifname, "up")
        return PodAddress(ip, self.subnet.prefixlen, self.gateway, tap)

    def _lease_of(self, uid: str) -> str | None:
        """The address leased to ``uid``; leases another thread frees meanwhile are skipped."""
        try:
            leases = list(self.leases.iterdir())
        except FileNotFoundError:
            return None
        for lease in leases:
            try:
                holder = lease.read_text()
            except FileNotFoundError:
                continue  # released by another pod's task between the listing and the read
            if holder == uid:
                return lease.name
        return None

    def _lease(self, uid: str) -> str:
        for host in list(self.subnet.hosts())[1:]:
            try:
                fd = os.open(self.leases / str(host), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(uid)
            return str(host)
        raise PodNetworkError(f"pod subnet {self.subnet} on {self.bridge} has no free address")

    def release(self, uid: str) -> None:
        """Delete the pod's tap and free its address; idempotent, and safe while other pods release.

        A tap or lease that is already gone (freed by another task, or by a host reboot) is not an
        error; a tap that ``ip`` cannot delete is logged and its address freed all the same.
        """
        ifname = tap_name(uid)
        if self._exists(ifname):
            done = self._ip("link", "del", ifname, check=False)
            if done.returncode != 0 and self._exists(ifname):
                log.warning("pod tap %s not deleted: %s", ifname, done.stderr.strip())
        while (ip := self._lease_of(uid)) is not None:
            (self.leases / ip).unlink(missing_ok=True)

    def capacity(self) -> int:
        """How many pod addresses the subnet holds."""
        return max(0, self.subnet.num_addresses - 3)
