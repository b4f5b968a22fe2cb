"""State file transitions and persistence: what a crash at any step leaves behind is readable."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from nestlab.spec import NodeName
from nestlab.substrate.local import state as st
from nestlab.substrate.local.errors import LocalSubstrateError
from nestlab.substrate.local.layout import BridgeName, MachineName
from nestlab.substrate.local.routes import Kind, RouteKey

CP = NodeName("cp-1")
MACHINE = MachineName("a-cp-1")


def test_a_node_goes_mounted_configured_started_stopped() -> None:
    lab = st.LabState(name="a")
    lab = st.mounted(lab, CP, MACHINE)
    assert lab.nodes[CP] == st.NodeRecord(machine=MACHINE, mounted=True)
    lab = st.configured(lab, CP)
    lab = st.started(lab, CP, 4242)
    assert lab.nodes[CP] == st.NodeRecord(machine=MACHINE, pid=4242, mounted=True, configured=True)
    lab = st.stopped(lab, CP)
    assert lab.nodes[CP] == st.NodeRecord(machine=MACHINE, pid=None, mounted=False, configured=True)


def test_transitions_do_not_change_the_old_state() -> None:
    before = st.mounted(st.LabState(name="a"), CP, MACHINE)
    after = st.started(before, CP, 7)
    assert before.nodes[CP].pid is None
    assert after.nodes[CP].pid == 7


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lab" / "state.json"
    lab = st.with_bridge(st.LabState(name="a"), BridgeName("nl-a"), "198.18.7.0/24")
    lab = st.with_image(lab, Path("/cache/images/node-x/rootfs"))
    lab = st.started(st.mounted(lab, CP, MACHINE), CP, 99)
    st.save(path, lab)
    assert st.load(path, "a") == lab
    assert json.loads(path.read_text())["nodes"]["cp-1"]["pid"] == 99
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp file left


def test_routes_round_trip_and_older_files_have_none(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    keys = frozenset(
        {
            RouteKey(Kind.UNREACHABLE, IPv4Network("198.19.0.0/16")),
            RouteKey(Kind.UNICAST, IPv4Network("198.18.32.0/20")),
        }
    )
    st.save(path, st.with_routes(st.LabState(name="a"), keys))
    assert json.loads(path.read_text())["routes"] == [
        {"type": "unicast", "destination": "198.18.32.0/20"},
        {"type": "unreachable", "destination": "198.19.0.0/16"},
    ]
    assert st.load(path, "a").routes == keys
    path.write_text('{"version": 1, "name": "a", "nodes": {}}')  # written before labs had routes
    assert st.load(path, "a").routes == frozenset()


def test_missing_file_is_an_empty_lab(tmp_path: Path) -> None:
    assert st.load(tmp_path / "state.json", "a") == st.LabState(name="a")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 99, "name": "a"}',
        '{"version": 1}',
        '{"version": 1, "name": "a", "routes": [{"type": "anycast", "destination": "10.0.0.0/8"}]}',
    ],
)
def test_unreadable_file_says_how_to_recover(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(LocalSubstrateError, match=r"state|version"):
        st.load(path, "a")
