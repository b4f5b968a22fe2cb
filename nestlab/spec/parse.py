"""Turn YAML text into a validated :class:`~nestlab.spec.model.Lab`: the only way one is made.

Parsing is at the boundary: everything past this module works with the frozen model. Structural
problems (types, unknown keys, ranges, sizes below what a role needs) are found here; rules that
tie several fields together live in :mod:`nestlab.spec.validate`. Both report into one list.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from pathlib import Path

import yaml

from nestlab.spec import addresses
from nestlab.spec.errors import SpecError, SpecIssue
from nestlab.spec.model import (
    API_VERSION,
    KIND,
    ControlPlaneSpec,
    DepotSpec,
    HostSpec,
    KernelSource,
    Lab,
    LoadBalancerSpec,
    Networks,
    NodeName,
    Role,
    Size,
    Substrate,
    SubstrateType,
)
from nestlab.spec.reader import Section, type_name
from nestlab.spec.validate import validate
from nestlab.spec.yamlload import DuplicateKeyError, TooDeepError, UniqueKeyLoader, check_depth

# A DNS label: node names are hostnames.
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Lab names prefix Linux interface names (15 characters at most), hence 12.
_LAB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,10}[a-z0-9])?$")
MAX_HOSTS = 32  # hosts take management addresses .31 upward; 32 keeps a /26 enough for any lab
MAX_CONTROL_PLANE = 9  # etcd's own advice: more members slow every write for no extra safety
# Upstream waits 300 s before evicting pods from a failed node; the teaching lab waits 30 s so the
# failover happens inside a lesson. An hour is the ceiling: longer and a learner would take the
# lab for broken, and a real outage that long wants a human decision, not a timer.
DEFAULT_POD_EVICTION_S = 30
MAX_POD_EVICTION_S = 3600

DEFAULT_SIZES: dict[Role, Size] = {
    Role.HOST: Size(cpu=2, memory_mib=4096, disk_mib=10240),
    Role.CONTROL_PLANE: Size(cpu=1, memory_mib=1024, disk_mib=4096),
    Role.LOAD_BALANCER: Size(cpu=1, memory_mib=256, disk_mib=2048),
    Role.DEPOT: Size(cpu=1, memory_mib=512, disk_mib=8192),
}
# What each role needs at the least: a host runs pod VMs (219 MB RSS each under TCG), a control
# plane node runs etcd + API server + controller, a depot holds the node and pod images.
MINIMUM_SIZES: dict[Role, Size] = {
    Role.HOST: Size(cpu=1, memory_mib=1024, disk_mib=4096),
    Role.CONTROL_PLANE: Size(cpu=1, memory_mib=512, disk_mib=2048),
    Role.LOAD_BALANCER: Size(cpu=1, memory_mib=128, disk_mib=1024),
    Role.DEPOT: Size(cpu=1, memory_mib=256, disk_mib=4096),
}
DEFAULT_MANAGEMENT = IPv4Network("198.18.0.0/24")
DEFAULT_PODS = IPv4Network("198.19.0.0/16")
DEFAULT_POD_PREFIX = 24


def load_spec(path: Path, name: str | None = None) -> Lab:
    """Read and validate a spec file (``name`` replaces metadata.name); unreadable files are SpecErrors."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecError([SpecIssue(str(path), f"cannot read the spec: {reason}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        issue = SpecIssue(
            f"line {line}",
            f"is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            "save the file as UTF-8 (for example: iconv -f latin1 -t utf-8)",
        )
        raise SpecError([issue], str(path)) from exc
    return parse_spec(text, source=str(path), name=name)


def parse_spec(text: str, source: str = "", name: str | None = None) -> Lab:
    """Parse YAML text into a Lab, or raise one SpecError listing every problem.

    ``name`` (from ``--name``) replaces metadata.name and is validated like it.
    """
    issues: list[SpecIssue] = []
    try:
        check_depth(text)
        document = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except (DuplicateKeyError, TooDeepError) as exc:
        raise SpecError([SpecIssue(f"line {exc.line}", str(exc), exc.hint)], source) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise SpecError([SpecIssue(where, f"is not valid YAML: {problem}")], source) from exc
    except RecursionError as exc:  # a last guard: check_depth refuses deep documents first
        issue = SpecIssue("document", "nests too deep to read", "a lab spec needs five levels at most")
        raise SpecError([issue], source) from exc
    except ValueError as exc:  # a number too long for Python's int (more than 4300 digits)
        issue = SpecIssue("document", "holds a number too long to read (over 4300 digits)", "shorten it")
        raise SpecError([issue], source) from exc
    if name is not None and isinstance(document, dict):
        metadata = document.get("metadata")
        document["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "name": name}
    lab = _lab(Section(document, "", issues))
    if lab is not None and not issues:
        validate(lab, issues)
    if issues or lab is None:
        raise SpecError(issues, source)
    return lab


def _lab(top: Section) -> Lab | None:
    api_version = top.raw("apiVersion")
    if api_version != API_VERSION:
        top.fail("apiVersion", f"must be {API_VERSION!r}, got {api_version!r}")
    kind = top.raw("kind")
    if kind != KIND:
        top.fail("kind", f"must be {KIND!r}, got {kind!r}")
    meta = top.section("metadata")
    name = meta.string("name", "default")
    if not _LAB_NAME.match(name):
        meta.fail("name", f"{name!r} is not a valid lab name", _name_hint(12))
    meta.finish()
    spec = top.section("spec")
    substrate = _substrate(spec.section("substrate"))
    lab = Lab(
        name=name,
        substrate=substrate,
        hosts=_hosts(spec.section("hosts"), substrate),
        control_plane=_control_plane(spec.section("controlPlane")),
        load_balancers=_load_balancers(spec.section("loadBalancers")),
        depot=DepotSpec(size=_size(spec.section("depot"), Role.DEPOT)),
        networks=_networks(spec.section("networks")),
        pod_kernel=_pod_kernel(spec.section("podKernel")),
    )
    spec.finish()
    top.finish()
    return lab


def _name_hint(limit: int) -> str:
    return f"use lowercase letters, digits and '-', start with a letter, at most {limit} characters"


def _size(section: Section, role: Role, base: Size | None = None) -> Size:
    """Read cpu/memory/disk, defaulting to ``base`` (or the role default); refuse too small."""
    base = base or DEFAULT_SIZES[role]
    floor = MINIMUM_SIZES[role]
    cpu = section.integer("cpu", base.cpu, low=1, high=64)
    sizes = {}
    for key, default, least in (
        ("memory", base.memory_mib, floor.memory_mib),
        ("disk", base.disk_mib, floor.disk_mib),
    ):
        value = section.size_mib(key, default)
        if value < least:
            section.fail(key, f"{value}MiB is below what a {role} node needs", f"use at least {least}MiB")
        sizes[key] = value
    return Size(cpu=cpu, memory_mib=sizes["memory"], disk_mib=sizes["disk"])


def _substrate(section: Section) -> Substrate:
    kind = SubstrateType(section.choice("type", "local", tuple(t.value for t in SubstrateType)))
    uris = section.items("uris") or []
    for index, uri in enumerate(uris):
        if not isinstance(uri, str) or "://" not in uri:
            section.fail(f"uris[{index}]", f"is not a libvirt URI: {uri!r}", "e.g. qemu:///system")
    if kind is SubstrateType.LOCAL and uris:
        section.fail("uris", "applies only to the libvirt substrate", "remove it or set type: libvirt")
        uris = []
    if kind is SubstrateType.LIBVIRT and not uris:
        uris = ["qemu:///system"]
    section.finish()
    return Substrate(type=kind, uris=tuple(str(uri) for uri in uris))


def _hosts(section: Section, substrate: Substrate) -> tuple[HostSpec, ...]:
    size = _size(section, Role.HOST)
    nodes = section.items("nodes")
    count = section.integer("count", 3 if nodes is None else len(nodes), low=1, high=MAX_HOSTS)
    if nodes is None:
        section.finish()
        return tuple(HostSpec(name=NodeName(f"esx-{i:02d}"), size=size) for i in range(1, count + 1))
    if section.has("count") and count != len(nodes):
        section.fail("count", f"is {count} but {len(nodes)} nodes are listed", "drop count or match it")
    hosts = []
    for index, item in enumerate(nodes):
        node = Section(item, section.at(f"nodes[{index}]"), section.issues)
        name = node.string("name", "")
        if not _NODE_NAME.match(name):
            node.fail("name", f"{name!r} is not a valid node name", _name_hint(63))
        hypervisor = None
        if node.has("hypervisor"):
            hypervisor = node.integer("hypervisor", 0, low=0, high=max(len(substrate.uris) - 1, 0))
            if substrate.type is SubstrateType.LOCAL:
                node.fail("hypervisor", "applies only to the libvirt substrate", "remove it")
        hosts.append(HostSpec(name=NodeName(name), size=_size(node, Role.HOST, size), hypervisor=hypervisor))
        node.finish()
    section.finish()
    return tuple(hosts)


def _control_plane(section: Section) -> ControlPlaneSpec:
    count = section.integer("count", 3, low=1, high=MAX_CONTROL_PLANE)
    if count % 2 == 0:
        section.fail(
            "count",
            f"{count} control-plane nodes cannot keep an etcd majority through a failure",
            f"use an odd number ({count - 1} or {count + 1})",
        )
    spec = ControlPlaneSpec(
        count=count,
        size=_size(section, Role.CONTROL_PLANE),
        anti_affinity=section.boolean("antiAffinity", True),
        pod_eviction_seconds=section.integer(
            "podEvictionSeconds", DEFAULT_POD_EVICTION_S, low=1, high=MAX_POD_EVICTION_S
        ),
    )
    section.finish()
    return spec


def _load_balancers(section: Section) -> LoadBalancerSpec:
    spec = LoadBalancerSpec(
        count=section.integer("count", 2, low=1, high=2),
        size=_size(section, Role.LOAD_BALANCER),
        vip=section.address("vip"),
    )
    section.finish()
    return spec


def _networks(section: Section) -> Networks:
    networks = Networks(
        management=section.network("management", DEFAULT_MANAGEMENT),
        pods=section.network("pods", DEFAULT_PODS),
        pod_prefix=section.integer("podPrefixLength", DEFAULT_POD_PREFIX, low=16, high=28),
        services=section.network("services", addresses.DEFAULT_SERVICES),
        ingress=section.network("ingress", addresses.DEFAULT_INGRESS),
    )
    section.finish()
    return networks


def _pod_kernel(section: Section) -> KernelSource:
    choices = tuple(k.value for k in KernelSource)
    source = KernelSource(section.choice("source", KernelSource.JUST_ENOUGH.value, choices))
    section.finish()
    return source


__all__ = ["load_spec", "parse_spec", "type_name"]
