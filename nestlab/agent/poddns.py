"""A pod's names as the kubelet gives them: its hostname, ``/etc/resolv.conf`` and ``/etc/hosts``.

Kubernetes decides a pod's resolver configuration on the node, not in the API: the kubelet combines
``spec.dnsPolicy`` with what it was started with (``--cluster-dns``, ``--cluster-domain``,
``--resolv-conf``) and appends ``spec.dnsConfig`` (``pkg/kubelet/network/dns/dns.go``); it also
writes a managed hosts file (``pkg/kubelet/kubelet_pods.go``). The agent does the same here, and
pod-init writes both files into every container's root. Everything is pure apart from
:func:`read_host_config`; limits the kubelet enforces by trimming (and a ``DNSConfigForming``
Warning event) are applied here the same way and returned as :class:`DnsWarning` values.

Two documented differences: a vSphere Pod never shares its host's network, so
``ClusterFirstWithHostNet`` behaves as ``ClusterFirst``; and merged options keep their first
position (the kubelet rebuilds them from a Go map, in no particular order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from nestlab.errors import UsageError

DEFAULT_DOMAIN = "cluster.local"  # kubelet's usual --cluster-domain
DEFAULT_OPTIONS = ("ndots:5",)  # kubelet's defaultDNSOptions for ClusterFirst
MAX_NAMESERVERS = 3  # upstream MaxDNSNameservers (glibc's MAXNS)
MAX_SEARCH_PATHS = 32  # upstream MaxDNSSearchPaths (ExpandedDNSConfig, GA since 1.28)
MAX_SEARCH_CHARS = 2048  # upstream MaxDNSSearchListChars, spaces included
MAX_SEARCH_PATH_LEN = 253  # a longer search path makes some resolvers (glibc 2.28) abort()
HOSTNAME_MAX = 63  # the kubelet truncates longer pod names (a hostname is at most 64 bytes with NUL)
FQDN_MAX = 64  # setHostnameAsFQDN: the kernel's hostname limit
POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
LOCALHOST_LINES = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


class PodDnsError(UsageError):
    """A pod's names cannot be formed (the kubelet's CreateContainerConfigError); says which field."""


class DnsWarning(NamedTuple):
    """A Warning Event the kubelet would record for the pod (the agent records it)."""

    reason: str
    message: str


@dataclass(frozen=True)
class ResolvConf:
    """A resolver configuration: what resolv.conf says, as the kubelet parses and writes it."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    """``name`` or ``name:value``."""

    def text(self) -> str:
        """The file, in the order containerd writes it (search, nameservers, options)."""
        lines = [f"search {' '.join(self.searches)}"] if self.searches else []
        lines += [f"nameserver {server}" for server in self.nameservers]
        lines += [f"options {' '.join(self.options)}"] if self.options else []
        return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class ClusterDns:
    """What the node knows about cluster DNS: the kubelet's ``--cluster-dns`` and ``--cluster-domain``."""

    servers: tuple[str, ...] = ()
    """Cluster DNS Service addresses; none: ClusterFirst pods fall back to Default (with a Warning)."""
    domain: str = DEFAULT_DOMAIN


@dataclass(frozen=True)
class PodDnsSpec:
    """The fields of a pod that decide its names (already validated by the API server)."""

    namespace: str
    name: str
    policy: str = "ClusterFirst"
    config: ResolvConf | None = None
    """``spec.dnsConfig``'s nameservers and searches (None: no dnsConfig); its options are below."""
    config_options: tuple[tuple[str, str | None], ...] = ()
    """``spec.dnsConfig.options`` as (name, value or None)."""
    hostname: str = ""
    subdomain: str = ""
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    hostname_as_fqdn: bool = False


@dataclass(frozen=True)
class PodNames:
    """What pod-init writes and sets for one pod."""

    hostname: str
    resolv_conf: str
    hosts: str
    warnings: tuple[DnsWarning, ...] = field(default=())


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PodDnsError(f"{where} must be a list of strings")
    return tuple(value)


def spec_of(pod: dict[str, Any]) -> PodDnsSpec:
    """The DNS fields of a Pod object (PodDnsError for shapes the API server should have refused)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    policy = str(spec.get("dnsPolicy") or "ClusterFirst")
    if policy not in POLICIES:
        raise PodDnsError(f"spec.dnsPolicy {policy!r} is not one of {', '.join(POLICIES)}")
    raw = spec.get("dnsConfig")
    config, options = None, []
    if raw is not None:
        if not isinstance(raw, dict):
            raise PodDnsError("spec.dnsConfig must be an object")
        for index, option in enumerate(raw.get("options") or []):
            if not isinstance(option, dict) or not option.get("name"):
                raise PodDnsError(f"spec.dnsConfig.options[{index}].name must not be empty")
            value = option.get("value")
            options.append((str(option["name"]), None if value is None else str(value)))
        config = ResolvConf(
            _strs(raw.get("nameservers"), "spec.dnsConfig.nameservers"),
            _strs(raw.get("searches"), "spec.dnsConfig.searches"),
        )
    aliases = []
    for index, alias in enumerate(spec.get("hostAliases") or []):
        if not isinstance(alias, dict) or not isinstance(alias.get("ip"), str):
            raise PodDnsError(f"spec.hostAliases[{index}].ip is required")
        aliases.append((alias["ip"], _strs(alias.get("hostnames"), f"spec.hostAliases[{index}].hostnames")))
    return PodDnsSpec(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        policy=policy,
        config=config,
        config_options=tuple(options),
        hostname=str(spec.get("hostname") or ""),
        subdomain=str(spec.get("subdomain") or ""),
        host_aliases=tuple(aliases),
        hostname_as_fqdn=bool(spec.get("setHostnameAsFQDN")),
    )


def parse_resolv_conf(text: str) -> ResolvConf:
    """The kubelet's parseResolvConf: nameservers accumulate, the last search and options lines win."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.strip().split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "nameserver":
            if len(fields) == 1:
                raise PodDnsError("nameserver list is empty")
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:]]
        elif fields[0] == "options":
            options = fields[1:]
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


def read_host_config(path: Path | None) -> ResolvConf | None:
    """The node's resolver configuration (``--resolv-conf``); None when the flag is empty."""
    if path is None:
        return None
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise PodDnsError(
            f"the node's resolver configuration {path} (--resolv-conf) is unreadable: {exc}"
        ) from exc
    try:
        return parse_resolv_conf(text)
    except PodDnsError as exc:
        raise PodDnsError(f"the node's resolver configuration {path} (--resolv-conf): {exc}") from exc


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def merge_options(existing: Iterable[str], extra: Iterable[tuple[str, str | None]]) -> tuple[str, ...]:
    """The kubelet's mergeDNSOptions: dnsConfig's options override same-named ones."""
    merged: dict[str, str] = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = value
    for extra_name, extra_value in extra:
        merged[extra_name] = extra_value or ""
    return tuple(f"{name}:{value}" if value else name for name, value in merged.items())


def _fit_searches(searches: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """formDNSSearchFitsLimits: at most 32 paths, none longer than 253, at most 2048 characters."""
    kept = [s for s in searches[:MAX_SEARCH_PATHS] if len(s) <= MAX_SEARCH_PATH_LEN]
    trimmed = len(kept) != len(searches)
    while len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()
        trimmed = True
    return tuple(kept), trimmed


def _fit_limits(conf: ResolvConf) -> tuple[ResolvConf, tuple[DnsWarning, ...]]:
    warnings = []
    servers = conf.nameservers
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append(
            DnsWarning(
                "DNSConfigForming",
                "Nameserver limits were exceeded, some nameservers have been omitted, "
                f"the applied nameserver line is: {' '.join(servers)}",
            )
        )
    searches, trimmed = _fit_searches(conf.searches)
    if trimmed:
        warnings.append(
            DnsWarning(
                "DNSConfigForming",
                "Search Line limits were exceeded, some search paths have been omitted, "
                f"the applied search line is: {' '.join(searches)}",
            )
        )
    return ResolvConf(servers, searches, conf.options), tuple(warnings)


def resolv_conf(
    pod: PodDnsSpec, cluster: ClusterDns, host: ResolvConf | None
) -> tuple[ResolvConf, tuple[DnsWarning, ...]]:
    """The kubelet's GetPodDNS: the policy's base configuration, dnsConfig appended, limits applied.

    ``host`` is the node's own configuration (``Default``), None when ``--resolv-conf`` is empty
    (then the kubelet points pods at 127.0.0.1 with search ``.``).
    """
    warnings: list[DnsWarning] = []
    base = host if host is not None else ResolvConf(("127.0.0.1",), (".",))
    if pod.policy == "None":
        base = ResolvConf()
    elif pod.policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        if cluster.servers:
            searches = base.searches if host is not None else ()
            if cluster.domain:
                own = (f"{pod.namespace}.svc.{cluster.domain}", f"svc.{cluster.domain}", cluster.domain)
                searches = _unique((*own, *searches))
            base = ResolvConf(cluster.servers, searches, DEFAULT_OPTIONS)
        else:
            message = (
                'kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" '
                'policy. Falling back to "Default" policy.'
            )
            warnings.append(DnsWarning("MissingClusterDNS", f'pod: "{pod.name}_{pod.namespace}". {message}'))
    if pod.config is not None:
        base = ResolvConf(
            _unique((*base.nameservers, *pod.config.nameservers)),
            _unique((*base.searches, *pod.config.searches)),
            merge_options(base.options, pod.config_options),
        )
    fitted, limits = _fit_limits(base)
    return fitted, (*warnings, *limits)


def hostname_and_domain(pod: PodDnsSpec, cluster_domain: str) -> tuple[str, str]:
    """The kubelet's GeneratePodHostNameAndDomain: (hostname, domain or "")."""
    hostname = pod.hostname or pod.name
    if len(hostname) > HOSTNAME_MAX:
        hostname = hostname[:HOSTNAME_MAX].rstrip("-.")
    if not hostname:
        raise PodDnsError(f"hostname for pod {pod.name!r} was invalid: {pod.hostname or pod.name!r}")
    domain = f"{pod.subdomain}.{pod.namespace}.svc.{cluster_domain}" if pod.subdomain else ""
    return hostname, domain


def hosts_file(
    pod_ips: Iterable[str], hostname: str, domain: str, aliases: Iterable[tuple[str, tuple[str, ...]]]
) -> str:
    """The kubelet's managedHostsFileContent: localhost lines, the pod's own name, hostAliases."""
    names = f"{hostname}.{domain}\t{hostname}" if domain else hostname
    text = HOSTS_HEADER + LOCALHOST_LINES + "".join(f"{ip}\t{names}\n" for ip in pod_ips)
    aliases = list(aliases)
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        text += "".join(f"{ip}\t{chr(9).join(hostnames)}\n" for ip, hostnames in aliases)
    return text


def pod_names(pod: PodDnsSpec, cluster: ClusterDns, host: ResolvConf | None, pod_ip: str | None) -> PodNames:
    """Everything pod-init needs for the pod's names; ``pod_ip`` None for a pod without network."""
    conf, warnings = resolv_conf(pod, cluster, host)
    hostname, domain = hostname_and_domain(pod, cluster.domain)
    hosts = hosts_file([pod_ip] if pod_ip else [], hostname, domain, pod.host_aliases)
    if pod.hostname_as_fqdn and domain:
        fqdn = f"{hostname}.{domain}"
        if len(fqdn) > FQDN_MAX:
            raise PodDnsError(
                "failed to construct FQDN from pod hostname and cluster domain, FQDN "
                f"{fqdn} is too long ({FQDN_MAX} characters is the max, {len(fqdn)} characters requested)"
            )
        hostname = fqdn
    return PodNames(hostname, conf.text(), hosts, warnings)
