"""Lifecycle calls that need no root: failure domains, unknown nodes, status of a lab never made."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.spec import NodeName, Plan, load_spec, make_plan
from nestlab.substrate.local import lifecycle as lc
from nestlab.substrate.local import state as st
from nestlab.substrate.local.errors import LabClashError, LocalSubstrateError, UnknownNodeError
from nestlab.substrate.local.layout import bridge_name, machine_name

SPEC = Path(__file__).parents[2] / "integration" / "substrate" / "small.lab.yaml"


@pytest.fixture
def plan() -> Plan:
    return make_plan(load_spec(SPEC))


def test_status_of_a_lab_never_created(plan: Plan, tmp_path: Path) -> None:
    statuses = lc.status(plan, lab_root=tmp_path / "lab")
    assert [(s.name, s.state, s.reachable) for s in statuses] == [
        ("esx-01", "absent", False),
        ("depot", "absent", False),
        ("lb-1", "absent", False),
        ("cp-1", "absent", False),
    ]
    assert statuses[3].placed_on == "esx-01"


def test_stopping_a_host_stops_its_failure_domain(plan: Plan, tmp_path: Path) -> None:
    layout = lc.layout_for(plan.lab.name, tmp_path / "lab")
    lab = st.LabState(name=plan.lab.name)
    for node in plan.nodes:
        # PIDs that cannot be a node's nspawn (PID 1 is this machine's init): stopped without signals.
        lab = st.started(st.mounted(lab, node.name, machine_name(lab.name, node.name)), node.name, 1)
    st.save(layout.state_file, lab)
    stopped = lc.stop_node(plan, "esx-01", lab_root=layout.root)
    assert stopped == ["esx-01", "depot", "lb-1", "cp-1"]
    after = st.load(layout.state_file, plan.lab.name)
    assert all(record.pid is None and not record.mounted for record in after.nodes.values())
    assert [s.state for s in lc.status(plan, lab_root=layout.root, check_ssh=False)] == ["stopped"] * 4


def test_stopping_a_non_host_stops_only_it(plan: Plan, tmp_path: Path) -> None:
    layout = lc.layout_for(plan.lab.name, tmp_path / "lab")
    st.save(layout.state_file, st.LabState(name=plan.lab.name))
    assert lc.stop_node(plan, "cp-1", lab_root=layout.root) == [NodeName("cp-1")]


def test_a_lab_never_up_is_not_created_by_stop_or_start(plan: Plan, tmp_path: Path) -> None:
    for call in (lc.stop_node, lc.start_node):
        with pytest.raises(LocalSubstrateError, match="is not up here"):
            call(plan, "esx-01", lab_root=tmp_path / "lab")
    assert not (tmp_path / "lab").exists()


def test_unknown_node_lists_the_real_ones(plan: Plan, tmp_path: Path) -> None:
    with pytest.raises(UnknownNodeError, match=r"no node 'cp-9'; its nodes: esx-01, depot, lb-1, cp-1"):
        lc.stop_node(plan, "cp-9", lab_root=tmp_path)
    with pytest.raises(UnknownNodeError, match="cp-9"):
        lc.ssh_argv(plan, "cp-9", lab_root=tmp_path)


def test_start_of_a_half_made_lab_says_what_to_do(plan: Plan, tmp_path: Path) -> None:
    layout = lc.layout_for(plan.lab.name, tmp_path / "lab")
    st.save(layout.state_file, st.LabState(name=plan.lab.name))  # a crash before the bridge
    with pytest.raises(LocalSubstrateError, match="never fully up; run `nestlab up` first"):
        lc.start_node(plan, "cp-1", lab_root=layout.root)


def test_down_of_an_absent_lab_is_a_no_op(tmp_path: Path) -> None:
    assert lc.down("nothing", lab_root=tmp_path / "nothing") == lc.DownResult((), (), False)


def test_a_lab_cannot_move_to_another_network_in_place(plan: Plan, tmp_path: Path) -> None:
    layout = lc.layout_for(plan.lab.name, tmp_path / "lab")
    lab = st.with_bridge(st.LabState(name=plan.lab.name), bridge_name(plan.lab.name), "198.18.99.0/24")
    st.save(layout.state_file, lab)
    with pytest.raises(
        LabClashError, match=r"exists on 198\.18\.99\.0/24 .* run `nestlab down h3small` first"
    ):
        lc.up(plan, lab_root=layout.root)
