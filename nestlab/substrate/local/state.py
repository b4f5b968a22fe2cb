"""The lab's state file: what the local substrate created and which PIDs run which node.

Transitions are pure functions returning a new :class:`LabState`; :func:`save` writes it
atomically (temp file + rename), so a crash leaves either the old or the new state, never half.
Each side effect is recorded *before* it is made (bridge, mount) or right after (PID), and
``down`` also looks at the machine itself, so nothing created can be forgotten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from nestlab.spec import NodeName
from nestlab.substrate.local.errors import LocalSubstrateError
from nestlab.substrate.local.layout import BridgeName, MachineName
from nestlab.substrate.local.routes import Kind, RouteKey

VERSION = 1


@dataclass(frozen=True)
class NodeRecord:
    """One node as the state file knows it."""

    machine: MachineName
    pid: int | None = None
    """The nspawn process running the node, None when stopped."""
    mounted: bool = False
    """Whether its overlay is (or may be) mounted."""
    configured: bool = False
    """Whether its identity files were written into its overlay."""
    stopping: bool = False
    """``nestlab node stop`` is taking it down (recorded when the stop starts, cleared when it is off)."""


@dataclass(frozen=True)
class LabState:
    """Everything a local lab holds on this machine."""

    name: str
    bridge: BridgeName | None = None
    """The lab bridge, recorded before it is created."""
    network: str | None = None
    """The management network the bridge's address belongs to."""
    image: str | None = None
    """The node image root the overlays use as their lower layer."""
    nodes: dict[NodeName, NodeRecord] = field(default_factory=dict)
    routes: frozenset[RouteKey] = frozenset()
    """The lab's routes on the outer machine, recorded before they are added."""


def with_bridge(state: LabState, bridge: BridgeName, network: str) -> LabState:
    """The lab bridge is (about to be) there."""
    return replace(state, bridge=bridge, network=network)


def with_routes(state: LabState, routes: frozenset[RouteKey]) -> LabState:
    """The lab's routes on the outer machine are (about to be) ``routes``."""
    return replace(state, routes=routes)


def with_image(state: LabState, image: Path) -> LabState:
    """The overlays use ``image``."""
    return replace(state, image=str(image))


def with_node(state: LabState, node: NodeName, record: NodeRecord) -> LabState:
    """``node`` is now described by ``record``."""
    return replace(state, nodes={**state.nodes, node: record})


def node_record(state: LabState, node: NodeName, machine: MachineName) -> NodeRecord:
    """The node's record, or a fresh one when the node was never created."""
    return state.nodes.get(node, NodeRecord(machine=machine))


def mounted(state: LabState, node: NodeName, machine: MachineName) -> LabState:
    """The node's overlay is (about to be) mounted."""
    return with_node(state, node, replace(node_record(state, node, machine), mounted=True))


def configured(state: LabState, node: NodeName) -> LabState:
    """The node's identity files are written."""
    return with_node(state, node, replace(state.nodes[node], configured=True))


def started(state: LabState, node: NodeName, pid: int) -> LabState:
    """The node runs as ``pid``."""
    return with_node(state, node, replace(state.nodes[node], pid=pid, stopping=False))


def stopping(state: LabState, node: NodeName) -> LabState:
    """A stop of the node has begun (status shows it as stopping until it is off)."""
    return with_node(state, node, replace(state.nodes[node], stopping=True))


def not_stopping(state: LabState, node: NodeName) -> LabState:
    """No stop of the node is under way (a crashed stop's mark is cleared by the next start)."""
    return with_node(state, node, replace(state.nodes[node], stopping=False))


def stopped(state: LabState, node: NodeName) -> LabState:
    """The node's process is gone and its overlay unmounted."""
    return with_node(state, node, replace(state.nodes[node], pid=None, mounted=False, stopping=False))


def to_dict(state: LabState) -> dict[str, Any]:
    """The JSON form."""
    return {
        "version": VERSION,
        "name": state.name,
        "bridge": state.bridge,
        "network": state.network,
        "image": state.image,
        "nodes": {
            name: {
                "machine": record.machine,
                "pid": record.pid,
                "mounted": record.mounted,
                "configured": record.configured,
                "stopping": record.stopping,
            }
            for name, record in sorted(state.nodes.items())
        },
        "routes": [
            {"type": str(key.kind), "destination": str(key.destination)} for key in sorted(state.routes)
        ],
    }


def from_dict(data: dict[str, Any]) -> LabState:
    """Read the JSON form; LocalSubstrateError when it is not one this version wrote."""
    if data.get("version") != VERSION:
        raise LocalSubstrateError(f"lab state version {data.get('version')!r} is not {VERSION}")
    nodes = {
        NodeName(name): NodeRecord(
            machine=MachineName(str(raw["machine"])),
            pid=int(raw["pid"]) if raw.get("pid") is not None else None,
            mounted=bool(raw.get("mounted", False)),
            configured=bool(raw.get("configured", False)),
            stopping=bool(raw.get("stopping", False)),
        )
        for name, raw in dict(data.get("nodes", {})).items()
    }
    bridge = data.get("bridge")
    return LabState(
        name=str(data["name"]),
        bridge=BridgeName(str(bridge)) if bridge else None,
        network=data.get("network"),
        image=data.get("image"),
        nodes=nodes,
        routes=frozenset(
            RouteKey(Kind(str(raw["type"])), IPv4Network(str(raw["destination"])))
            for raw in list(data.get("routes", []))
        ),
    )


def load(path: Path, name: str) -> LabState:
    """The lab's state, or an empty one when the lab was never created."""
    if not path.exists():
        return LabState(name=name)
    try:
        return from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalSubstrateError(
            f"the lab state file {path} is unreadable ({exc}); run `nestlab down {name}` to clean up"
        ) from exc


def save(path: Path, state: LabState) -> None:
    """Write ``state`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_dict(state), indent=2) + "\n", encoding="utf-8")
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)
