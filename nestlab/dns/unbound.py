"""unbound as the cluster DNS server: its configuration (pure) and the one place running ``unbound-control``.

unbound answers from *static local zones*: the cluster zone and the reverse zones of the service
and pod networks hold exactly the records ``nestlab-dns`` loaded (anything else in them is
NXDOMAIN, with the zone's SOA so clients cache the miss for the TTL only), and every name outside
them is answered REFUSED at once, because lab nodes have no route out: a recursive lookup would
only time out. Records change at run time through ``unbound-control local_datas`` and
``local_datas_remove`` (stdin, one entry a line, unbound >= 1.6); unbound answers local data
before its cache, so a change is visible to the next query. The control channel is a unix socket
(no TLS, no TCP port: the socket's permissions are the access control).

``roles/control_plane/templates/unbound-nestlab.conf.j2`` renders the same text as
:func:`render_config` from inventory variables; a unit test renders both and compares them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nestlab.dns.records import DEFAULT_TTL, SCHEMA_VERSION, Change, Record, parse_record, zone_of
from nestlab.errors import NestlabError
from nestlab.runtime import proc

CONTROL_TIMEOUT = 30.0
"""Seconds for one ``unbound-control`` call: a bulk load of thousands of records takes well under
one second; a call still running after 30 is stuck (unbound hung), not slow."""


class UnboundError(NestlabError):
    """``unbound-control`` failed: unbound is down, the socket is elsewhere, or a record was refused."""


@dataclass(frozen=True)
class UnboundConfig:
    """What the unbound serving the cluster zone is told."""

    listen: tuple[str, ...]
    """Addresses to answer on (the node's management address and 127.0.0.1)."""
    allow: tuple[str, ...] = ("127.0.0.0/8",)
    """Client networks allowed to query (the pod and management networks, loopback); others REFUSED."""
    reverse: tuple[str, ...] = ()
    """Networks whose reverse (PTR) zones are static local zones (the service and pod networks)."""
    domain: str = "cluster.local"
    port: int = 53
    ttl: int = DEFAULT_TTL
    """TTL of the zone's SOA, its negative-answer TTL and the ``dns-version`` record."""
    control_socket: str = "/run/unbound.ctl"
    username: str = "unbound"
    """User unbound drops to after binding (empty: stay, as the tests do)."""
    directory: str = "/etc/unbound"
    threads: int = field(default=1)
    """Worker threads: one is plenty for a lab and leaves the cores to the pods."""


def reverse_zones(cidr: str) -> list[str]:
    """The reverse zones exactly covering ``cidr``: its prefix rounded up to a label boundary (8 bits
    for IPv4, 4 for IPv6), e.g. ``198.18.32.0/20`` -> ``32.18.198.in-addr.arpa.`` .. ``47.18.198...``."""
    network = ipaddress.ip_network(cidr, strict=False)
    step = 8 if network.version == 4 else 4
    bits = -(-network.prefixlen // step) * step
    if bits - network.prefixlen > 8:
        raise ValueError(f"{cidr}: too wide for per-zone reverse lookups (at most 256 zones)")
    zones = []
    for subnet in network.subnets(new_prefix=bits) if bits != network.prefixlen else [network]:
        labels = subnet.network_address.reverse_pointer.split(".")
        keep = bits // step
        zones.append(".".join(labels[len(labels) - 2 - keep :]) + ".")
    return zones


def render_config(config: UnboundConfig) -> str:
    """The unbound.conf text serving the cluster zone (see the module docstring for why each part)."""
    zone = zone_of(config.domain)
    ttl = config.ttl
    lines = ["server:"]
    lines += [f"    interface: {address}" for address in dict.fromkeys(config.listen)]
    lines += [
        f"    port: {config.port}",
        "    do-ip6: no",
        f'    username: "{config.username}"',
        '    chroot: ""',
        f'    directory: "{config.directory}"',
        "    use-syslog: no",
        '    logfile: ""',
        f"    num-threads: {config.threads}",
        # no validator: the only data is local; the iterator is never used ("." is refused)
        '    module-config: "iterator"',
        "    access-control: 0.0.0.0/0 refuse",
    ]
    lines += [f"    access-control: {cidr} allow" for cidr in dict.fromkeys(config.allow)]
    lines += [
        '    local-zone: "." refuse',
        f'    local-zone: "{zone}" static',
        f'    local-data: "{zone} {ttl} IN SOA ns.dns.{zone} hostmaster.{zone} 1 7200 1800 86400 {ttl}"',
        f"    local-data: 'dns-version.{zone} {ttl} IN TXT \"{SCHEMA_VERSION}\"'",
    ]
    for cidr in dict.fromkeys(config.reverse):
        lines += [f'    local-zone: "{name}" static' for name in reverse_zones(cidr)]
    lines += [
        "remote-control:",
        "    control-enable: yes",
        f"    control-interface: {config.control_socket}",
        "    control-use-cert: no",
    ]
    return "\n".join(lines) + "\n"


class Unbound:
    """``unbound-control`` against one running unbound (the runner is swappable for tests)."""

    def __init__(
        self,
        config: Path | None = None,
        *,
        control: str = "unbound-control",
        runner: proc.Runner = proc.run,
        timeout: float = CONTROL_TIMEOUT,
    ) -> None:
        self.config = config
        """The unbound.conf naming the control socket (None: unbound-control's default file)."""
        self.control = control
        self.runner = runner
        self.timeout = timeout

    def _call(self, *args: str, stdin: str | None = None) -> str:
        argv = [self.control, *(["-c", str(self.config)] if self.config else []), *args]
        try:
            return self.runner(argv, timeout=self.timeout, stdin=stdin).stdout
        except proc.ProcessError as exc:
            where = self.config or "/etc/unbound/unbound.conf"
            raise UnboundError(
                f"unbound-control {args[0]} failed: {exc} (is unbound running, with the control "
                f"socket that {where} names? `systemctl status unbound`)"
            ) from exc

    def status(self) -> str:
        """``unbound-control status`` (raises UnboundError when unbound does not answer)."""
        return self._call("status")

    def listing(self) -> list[Record]:
        """Every local-data record unbound holds (``list_local_data``), parsed."""
        text = self._call("list_local_data")
        return [record for line in text.splitlines() if (record := parse_record(line)) is not None]

    def add(self, records: Iterable[Record]) -> None:
        """Add records in one call; adding a record unbound already holds changes nothing."""
        lines = sorted(record.text() for record in records)
        if lines:
            self._call("local_datas", stdin="\n".join(lines) + "\n")

    def remove(self, names: Iterable[str]) -> None:
        """Remove every record of each name in one call (unknown names are ignored)."""
        lines = sorted(names)
        if lines:
            self._call("local_datas_remove", stdin="\n".join(lines) + "\n")

    def apply(self, change: Change) -> None:
        """Removals, then additions: two calls at most. Between them a cleared name answers NXDOMAIN
        for the few milliseconds unbound-control takes (unbound has no atomic replace)."""
        self.remove(change.remove)
        self.add(change.add)
