"""Services and EndpointSlices -> DNS records, as the Kubernetes DNS-Based Service Discovery spec has them.

Pure: no I/O. The record shapes follow the specification (kubernetes/dns docs/specification.md)
and what CoreDNS's kubernetes plugin answers where the spec leaves a choice:

- ClusterIP Service (also LoadBalancer): ``<svc>.<ns>.svc.<zone>. A/AAAA <cluster-ip>`` (one per
  ``spec.clusterIPs``), ``PTR`` from each cluster IP back to that name, and for each *named* port
  ``_<port>._<proto>.<svc>.<ns>.svc.<zone>. SRV 0 100 <port> <svc>.<ns>.svc.<zone>.``
- headless Service (``clusterIP: None``): an A/AAAA at the Service name for each *ready* endpoint
  address (not-ready ones too when ``publishNotReadyAddresses``, or the legacy
  ``service.alpha.kubernetes.io/tolerate-unready-endpoints`` annotation, is set); each endpoint has
  a *hostname*: its ``hostname`` field, else (as CoreDNS does) its address with dots or colons
  turned into dashes (``10-0-0-1``); ``<hostname>.<svc>.<ns>.svc.<zone>.`` holds its address, the
  address's PTR points back to it, and each named port of the EndpointSlice gives one SRV per
  endpoint to it (weight ``100 // n``, priority 0, as CoreDNS spreads them). The ports are the
  EndpointSlice's (the target ports a client must connect to: a headless Service has no proxy).
  No ready endpoint: no record, so the name is NXDOMAIN, as the spec requires.
- ExternalName Service: ``<svc>.<ns>.svc.<zone>. CNAME <externalName>.``

Not produced: the deprecated ``<a-b-c-d>.<ns>.pod.<zone>`` records (any address, answered by
CoreDNS's ``pods insecure`` mode, not from objects) and the zone's SOA and ``dns-version`` TXT,
which are static and live in unbound's configuration (:func:`nestlab.dns.unbound.render_config`).

Every name is lower-case, absolute (trailing dot), and checked against DNS label syntax before it
becomes a record: the records travel to ``unbound-control`` one per line, so nothing an API user
writes may smuggle a second line in.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

DEFAULT_TTL = 5
"""Seconds: the CoreDNS kubernetes plugin's default ``ttl`` (kubeadm's Corefile raises it to 30 to
match kube-dns). The lab keeps 5 so a learner sees a scaled-down Service leave DNS within seconds."""
SCHEMA_VERSION = "1.1.0"
"""The DNS specification version answered at ``dns-version.<zone>`` (TXT)."""
MANAGED_TYPES = frozenset({"A", "AAAA", "SRV", "PTR", "CNAME"})
"""The record types this package writes; anything else in unbound is left alone."""
TOLERATE_UNREADY = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_RR = re.compile(r"^(\S+)\s+(\d+)\s+IN\s+([A-Z0-9]+)\s+(.+?)\s*$")


@dataclass(frozen=True, order=True)
class Record:
    """One resource record, in the text form unbound reads and prints."""

    name: str
    """Owner name: lower-case, absolute (``web.default.svc.cluster.local.``)."""
    type: str
    """``A``, ``AAAA``, ``SRV``, ``PTR`` or ``CNAME``."""
    data: str
    """RDATA as presentation text (``198.18.32.5``, ``0 100 80 web.default.svc.cluster.local.``)."""
    ttl: int = DEFAULT_TTL

    def text(self) -> str:
        """``name ttl IN type data``: one line of ``unbound-control local_datas``."""
        return f"{self.name} {self.ttl} IN {self.type} {self.data}"


def parse_record(line: str) -> Record | None:
    """A line of ``unbound-control list_local_data`` (``name<TAB>ttl<TAB>IN<TAB>type<TAB>data``),
    None for blank lines and anything not in that shape."""
    match = _RR.match(line.strip())
    if match is None:
        return None
    name, ttl, kind, data = match.groups()
    return Record(name.lower(), kind, " ".join(data.split()), int(ttl))


def is_name(name: str) -> bool:
    """True for an absolute domain name made of valid labels (``_`` allowed, as in SRV owners)."""
    if not name.endswith(".") or len(name) > 254:
        return False
    return all(_LABEL.match(label) for label in name[:-1].split("."))


def zone_of(domain: str) -> str:
    """The cluster domain as an absolute lower-case name (``cluster.local.``); ValueError when bad."""
    zone = domain.strip().lower().rstrip(".") + "."
    if not is_name(zone):
        raise ValueError(f"cluster domain {domain!r} is not a valid DNS name (e.g. cluster.local)")
    return zone


def owned(record: Record, zone: str) -> bool:
    """Whether ``record`` is one this package may have written for ``zone``: a managed type owned by a
    name strictly inside the zone, or a PTR pointing into it. The zone apex (SOA, TXT) is config."""
    if record.type not in MANAGED_TYPES:
        return False
    if record.name != zone and record.name.endswith("." + zone):
        return True
    return record.type == "PTR" and record.data.endswith("." + zone)


def _reverse(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer + "."


def _address(text: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def _dashed(address: str) -> str:
    return address.replace(".", "-").replace(":", "-")


def _a(name: str, address: str, ttl: int) -> Record:
    kind = "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
    return Record(name, kind, address, ttl)


def _srv_set(owner_targets: dict[str, set[tuple[int, str]]], ttl: int) -> set[Record]:
    found = set()
    for owner, targets in owner_targets.items():
        weight = max(1, 100 // len(targets))
        for port, target in targets:
            found.add(Record(owner, "SRV", f"0 {weight} {port} {target}", ttl))
    return found


def _port_owner(port: Obj, service_name: str) -> str | None:
    name = str(port.get("name") or "").lower()
    protocol = str(port.get("protocol") or "TCP").lower()
    if not name or not isinstance(port.get("port"), int):
        return None  # unnamed ports have no SRV record
    owner = f"_{name}._{protocol}.{service_name}"
    return owner if is_name(owner) else None


def service_records(
    service: Obj, slices: Iterable[Obj], domain: str = "cluster.local", ttl: int = DEFAULT_TTL
) -> frozenset[Record]:
    """Every record of one Service (given the EndpointSlices labelled with its name)."""
    zone = zone_of(domain)
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    base = f"{str(meta.get('name', '')).lower()}.{str(meta.get('namespace', '')).lower()}.svc.{zone}"
    if not is_name(base):
        return frozenset()
    if spec.get("type") == "ExternalName":
        target = str(spec.get("externalName") or "").strip().lower().rstrip(".") + "."
        return frozenset({Record(base, "CNAME", target, ttl)}) if is_name(target) else frozenset()
    cluster_ips = [str(ip) for ip in (spec.get("clusterIPs") or [spec.get("clusterIP") or ""])]
    if cluster_ips and cluster_ips[0] == "None":
        return frozenset(_headless(service, slices, base, ttl))
    records: set[Record] = set()
    for text in cluster_ips:
        if (address := _address(text)) is not None:
            records |= {_a(base, address, ttl), Record(_reverse(address), "PTR", base, ttl)}
    if not records:
        return frozenset()  # no ClusterIP allocated (yet): nothing to answer
    srv: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and (owner := _port_owner(port, base)) is not None:
            srv[owner].add((int(port["port"]), base))
    return frozenset(records | _srv_set(srv, ttl))


def _publishes_unready(service: Obj) -> bool:
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    spec = service.get("spec") or {}
    return bool(spec.get("publishNotReadyAddresses")) or annotations.get(TOLERATE_UNREADY) == "true"


def _headless(service: Obj, slices: Iterable[Obj], base: str, ttl: int) -> set[Record]:
    publish_unready = _publishes_unready(service)
    records: set[Record] = set()
    srv: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue  # FQDN slices name no address
        ports = [p for p in endpoint_slice.get("ports") or [] if isinstance(p, dict)]
        for endpoint in endpoint_slice.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready")
            if ready is False and not publish_unready:
                continue  # a nil ready condition means ready, as the EndpointSlice API says
            for text in endpoint.get("addresses") or []:
                if (address := _address(text)) is None:
                    continue
                hostname = str(endpoint.get("hostname") or "").lower() or _dashed(address)
                host = f"{hostname}.{base}"
                if not is_name(host):
                    host = f"{_dashed(address)}.{base}"
                records |= {_a(base, address, ttl), _a(host, address, ttl)}
                records.add(Record(_reverse(address), "PTR", host, ttl))
                for port in ports:
                    if (owner := _port_owner(port, base)) is not None:
                        srv[owner].add((int(port["port"]), host))
    return records | _srv_set(srv, ttl)


@dataclass(frozen=True)
class Change:
    """What to tell unbound to go from one record set to another.

    ``unbound-control local_data_remove`` removes *every* record of a name, so a change is per
    name: a name that loses any record is cleared and gets all its remaining records added back;
    a name that only gains records just gets the new ones.
    """

    remove: frozenset[str] = frozenset()
    """Names to clear (``local_datas_remove``), applied first."""
    add: frozenset[Record] = frozenset()
    """Records to add (``local_datas``), applied second."""

    def __bool__(self) -> bool:
        return bool(self.remove or self.add)


def by_name(records: Iterable[Record]) -> dict[str, set[Record]]:
    """Records grouped by owner name."""
    grouped: dict[str, set[Record]] = defaultdict(set)
    for record in records:
        grouped[record.name].add(record)
    return grouped


def diff(before: Set[Record], after: Set[Record]) -> Change:
    """The :class:`Change` turning ``before`` into ``after``."""
    old, new = by_name(before), by_name(after)
    remove: set[str] = set()
    add: set[Record] = set()
    for name in old.keys() | new.keys():
        was, will = old.get(name, set()), new.get(name, set())
        if was - will:
            remove.add(name)
            add |= will
        else:
            add |= will - was
    return Change(frozenset(remove), frozenset(add))
