"""`nestlab node stop` marks its nodes "stopping" in the state file at once; status reports it until
each node is off (before this, a stop was only visible when it completed, ~11 s later)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.spec import NodeName, Plan, PlannedNode, load_spec, make_plan
from nestlab.substrate.local import lifecycle as lc
from nestlab.substrate.local import pids
from nestlab.substrate.local import state as st
from nestlab.substrate.local.layout import LabLayout, machine_name

SPEC = Path(__file__).parents[2] / "integration" / "substrate" / "small.lab.yaml"
FAKE_PID = 4_000_000  # above pid_max's default: never a real process


@pytest.fixture
def plan() -> Plan:
    return make_plan(load_spec(SPEC))


def _running_lab(plan: Plan, root: Path) -> LabLayout:
    layout = lc.layout_for(plan.lab.name, root)
    root.mkdir(parents=True)
    lab = st.LabState(name=plan.lab.name)
    for node in plan.nodes:
        lab = st.started(
            st.mounted(lab, node.name, machine_name(plan.lab.name, node.name)), node.name, FAKE_PID
        )
    st.save(layout.state_file, lab)
    return layout


def test_every_node_of_the_failure_domain_is_stopping_before_the_first_one_halts(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _running_lab(plan, tmp_path / "lab")
    seen: list[dict[str, bool]] = []

    def halt(
        run: object, layout: LabLayout, lab: st.LabState, node: PlannedNode, *, hard: bool
    ) -> st.LabState:
        on_disk = st.load(layout.state_file, plan.lab.name)
        seen.append({name: record.stopping for name, record in on_disk.nodes.items()})
        lab = st.stopped(lab, node.name)
        st.save(layout.state_file, lab)
        return lab

    monkeypatch.setattr(lc, "halt", halt)
    stopped = lc.stop_node(plan, "esx-01", lab_root=layout.root)
    domain = set(plan.failure_domains()[NodeName("esx-01")])
    assert set(stopped) == domain
    assert {name for name, flag in seen[0].items() if flag} == domain  # all marked before any halt
    after = st.load(layout.state_file, plan.lab.name)
    assert not any(record.stopping for record in after.nodes.values())  # off: no longer stopping


def test_status_says_stopping_while_the_process_still_runs(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = _running_lab(plan, tmp_path / "lab")
    lab = st.stopping(st.load(layout.state_file, plan.lab.name), NodeName("cp-1"))
    st.save(layout.state_file, lab)
    monkeypatch.setattr(pids, "is_running", lambda pid, machine: pid == FAKE_PID)
    states = {str(s.name): s.state for s in lc.status(plan, lab_root=layout.root, check_ssh=False)}
    assert states["cp-1"] == "stopping"
    assert {states[n] for n in states if n != "cp-1"} == {"running"}


def test_the_mark_survives_a_round_trip_and_a_start_or_stop_clears_it() -> None:
    lab = st.mounted(st.LabState(name="x"), NodeName("a"), machine_name("x", NodeName("a")))
    lab = st.stopping(st.started(lab, NodeName("a"), 7), NodeName("a"))
    assert st.from_dict(st.to_dict(lab)).nodes[NodeName("a")].stopping
    assert not st.started(lab, NodeName("a"), 8).nodes[NodeName("a")].stopping
    assert not st.stopped(lab, NodeName("a")).nodes[NodeName("a")].stopping
    old = st.to_dict(lab)
    del old["nodes"]["a"]["stopping"]  # a state file written before the mark existed
    assert not st.from_dict(old).nodes[NodeName("a")].stopping
