"""The lab bridge on the outer machine: the lab's management network, holding the gateway address.

No NAT and no forwarding: IPv4 forwarding is switched off for packets arriving on the bridge, and
nodes get no default route, so lab traffic cannot leave the machine. Before creating anything the
clash check refuses a bridge name or an address range that something else on the machine holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from nestlab.runtime import proc
from nestlab.substrate.local.errors import LabClashError
from nestlab.substrate.local.layout import BridgeName

IP = "ip"
TIMEOUT_S = 30.0  # ip answers at once; a slow answer means the machine is in trouble
PROC_SYS_IPV4 = Path("/proc/sys/net/ipv4/conf")
OWNER_PREFIX = "nestlab:"


@dataclass(frozen=True)
class Interface:
    """One interface of the outer machine and its IPv4 networks."""

    name: str
    networks: tuple[IPv4Network, ...]


def parse_interfaces(ip_json: str) -> list[Interface]:
    """Interfaces and IPv4 networks from ``ip -j addr show``."""
    interfaces: list[Interface] = []
    raw: list[dict[str, Any]] = json.loads(ip_json or "[]")
    for entry in raw:
        networks = tuple(
            IPv4Interface(f"{info['local']}/{info['prefixlen']}").network
            for info in entry.get("addr_info", [])
            if info.get("family") == "inet"
        )
        interfaces.append(Interface(name=str(entry["ifname"]), networks=networks))
    return interfaces


def owner_tag(lab_root: Path) -> str:
    """The alias a lab bridge carries: which lab directory made it (so only that lab removes it)."""
    return f"{OWNER_PREFIX}{lab_root}"


def find_clashes(
    interfaces: list[Interface],
    bridge: BridgeName,
    network: IPv4Network,
    *,
    owned: bool,
    bridge_owner: str | None = None,
) -> list[str]:
    """Why the lab's bridge and network cannot go on this machine (empty when they can)."""
    problems: list[str] = []
    for interface in interfaces:
        ours = owned and interface.name == bridge
        if interface.name == bridge and not ours:
            whose = (
                f"the lab in {bridge_owner.removeprefix(OWNER_PREFIX)} (`nestlab down` it there)"
                if bridge_owner and bridge_owner.startswith(OWNER_PREFIX)
                else "another lab with this name, or something else"
            )
            problems.append(
                f"an interface named {bridge} already exists, made by {whose}; choose another lab name"
            )
        if ours:
            continue
        for other in interface.networks:
            if other.overlaps(network):
                problems.append(
                    f"{network} overlaps {other} on {interface.name}: give this lab another "
                    f"networks.management range"
                )
    return problems


def interfaces(run: proc.Runner) -> list[Interface]:
    """The machine's interfaces now."""
    return parse_interfaces(run([IP, "-j", "addr", "show"], timeout=TIMEOUT_S).stdout)


def owner(run: proc.Runner, bridge: BridgeName) -> str | None:
    """The alias of ``bridge`` (its owner tag), or None when it has none or does not exist."""
    result = run([IP, "-j", "link", "show", "dev", bridge], timeout=TIMEOUT_S, check=False)
    if result.returncode != 0:
        return None
    links: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    alias = links[0].get("ifalias") if links else None
    return str(alias) if alias else None


def check_clashes(run: proc.Runner, bridge: BridgeName, network: IPv4Network, *, owned: bool) -> None:
    """Raise LabClashError naming every clash."""
    problems = find_clashes(interfaces(run), bridge, network, owned=owned, bridge_owner=owner(run, bridge))
    if problems:
        raise LabClashError("the lab cannot be created here: " + "; ".join(problems))


def exists(run: proc.Runner, bridge: BridgeName) -> bool:
    """Whether ``bridge`` is on the machine."""
    return run([IP, "link", "show", "dev", bridge], timeout=TIMEOUT_S, check=False).returncode == 0


def ensure_bridge(
    run: proc.Runner,
    bridge: BridgeName,
    gateway: IPv4Address,
    network: IPv4Network,
    *,
    tag: str,
    proc_sys: Path = PROC_SYS_IPV4,
) -> None:
    """Create (or complete) the bridge: tagged with its owner, up, holding ``gateway``, forwarding off."""
    if not exists(run, bridge):
        run([IP, "link", "add", "name", bridge, "type", "bridge"], timeout=TIMEOUT_S)
    run([IP, "link", "set", "dev", bridge, "alias", tag], timeout=TIMEOUT_S)
    (proc_sys / bridge / "forwarding").write_text("0\n", encoding="ascii")
    run([IP, "addr", "replace", f"{gateway}/{network.prefixlen}", "dev", bridge], timeout=TIMEOUT_S)
    run([IP, "link", "set", "dev", bridge, "up"], timeout=TIMEOUT_S)


def members(run: proc.Runner, bridge: BridgeName) -> list[str]:
    """The interfaces (nodes' veths) attached to ``bridge``."""
    result = run([IP, "-j", "link", "show", "master", bridge], timeout=TIMEOUT_S, check=False)
    if result.returncode != 0:
        return []
    return [str(entry["ifname"]) for entry in json.loads(result.stdout or "[]")]


def remove_bridge(run: proc.Runner, bridge: BridgeName) -> None:
    """Delete the bridge and any veth still attached to it (idempotent)."""
    for veth in members(run, bridge):
        run([IP, "link", "del", "dev", veth], timeout=TIMEOUT_S, check=False)
    if exists(run, bridge):
        run([IP, "link", "del", "dev", bridge], timeout=TIMEOUT_S)
