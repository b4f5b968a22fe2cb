"""Booting one node with mount and nspawn replaced by fakes: the steps, the files, the state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from nestlab.runtime import proc
from nestlab.runtime.proc import Result
from nestlab.spec import Plan, PlannedNode, load_spec, make_plan
from nestlab.substrate.local import cgroups, pids
from nestlab.substrate.local import state as st
from nestlab.substrate.local.layout import LabLayout, bridge_name
from nestlab.substrate.local.node import Context, boot

SPEC = Path(__file__).parents[2] / "integration" / "substrate" / "small.lab.yaml"


class FakeProcess:
    """Stands in for a running nspawn."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None


class Recorder:
    """Fake runner and spawner, recording what they were asked to do."""

    def __init__(self) -> None:
        self.ran: list[list[str]] = []
        self.spawned: list[tuple[list[str], Path | None]] = []

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True, **_: object) -> Result:
        self.ran.append(list(argv))
        return Result(tuple(argv), 0, "", "")

    def spawn(self, argv: Sequence[str], *, log: Path | None = None) -> proc.Process:
        self.spawned.append((list(argv), log))
        return cast(proc.Process, FakeProcess(40000 + len(self.spawned)))


@pytest.fixture
def plan() -> Plan:
    return make_plan(load_spec(SPEC))


def _context(plan: Plan, tmp_path: Path, recorder: Recorder) -> Context:
    layout = LabLayout(name=plan.lab.name, root=tmp_path / "lab")
    for node in plan.nodes:
        key = layout.host_key(node.name)
        key.parent.mkdir(parents=True)
        key.write_text(f"PRIVATE {node.name}\n")
        key.with_name(key.name + ".pub").write_text(f"ssh-ed25519 AAAA{node.name} root@{node.name}\n")
    return Context(
        layout=layout,
        image=tmp_path / "image",
        bridge=bridge_name(plan.lab.name),
        network=plan.lab.networks.management,
        authorized_key="ssh-ed25519 AAAALAB nestlab",
        kvm=False,
        run=recorder.run,
        spawn=recorder.spawn,
        cgroup_roots=(tmp_path / "cgroup-systemd", tmp_path / "cgroup-unified"),
    )


def _boot(ctx: Context, lab: st.LabState, node: PlannedNode) -> tuple[st.LabState, int, bool]:
    try:
        return boot(ctx, lab, node)
    finally:
        for pid in [pid for pid, child in pids._children.items() if isinstance(child, FakeProcess)]:
            del pids._children[pid]  # the fakes are not processes to keep (real ones from other tests are)


def test_boot_mounts_configures_spawns_and_records(plan: Plan, tmp_path: Path) -> None:
    recorder = Recorder()
    ctx = _context(plan, tmp_path, recorder)
    host = plan.node("esx-01")
    lab, pid, started = _boot(ctx, st.LabState(name=plan.lab.name), host)
    assert started
    assert pid == 40001

    (mount,) = recorder.ran
    assert mount[:4] == ["mount", "-t", "overlay", "overlay"]
    assert f"lowerdir={tmp_path / 'image'}," in mount[5]
    merged = ctx.layout.merged(host.name)
    assert mount[-1] == str(merged)

    argv, log = recorder.spawned[0]
    # nspawn starts in the node's own cgroup of each hierarchy, made beforehand (no shared payload).
    key = cgroups.lab_key(plan.lab.name, ctx.layout.root)
    own = [
        tmp_path / "cgroup-systemd/nestlab" / key / "esx-01",
        tmp_path / "cgroup-unified/nestlab" / key / "esx-01",
    ]
    assert argv[:2] == ["sh", "-c"]
    assert argv[3:6] == ["sh", str(own[0]), str(own[1])]
    assert argv[6] == "systemd-nspawn"
    assert all(directory.is_dir() for directory in own)
    assert f"--directory={merged}" in argv
    assert "--bind=/dev/net/tun" in argv
    assert "--bind=/dev/kvm" not in argv  # the probe did not choose KVM
    assert log == ctx.layout.console_log(host.name)

    assert (merged / "etc/hostname").read_text() == "esx-01\n"
    assert "Address=198.18.241.31/24" in (merged / "etc/systemd/network/10-nestlab-host0.network").read_text()
    assert (merged / "etc/ssh/ssh_host_ed25519_key").read_text() == "PRIVATE esx-01\n"
    machine_id = (merged / "etc/machine-id").read_text()

    record = st.load(ctx.layout.state_file, plan.lab.name).nodes[host.name]
    assert record == st.NodeRecord(machine=record.machine, pid=40001, mounted=True, configured=True)
    assert lab.nodes[host.name] == record

    # Booted again after a stop, the node keeps its machine-id.
    _boot(ctx, st.stopped(lab, host.name), host)
    assert (merged / "etc/machine-id").read_text() == machine_id


def test_only_hosts_get_tun(plan: Plan, tmp_path: Path) -> None:
    recorder = Recorder()
    ctx = _context(plan, tmp_path, recorder)
    _boot(ctx, st.LabState(name=plan.lab.name), plan.node("cp-1"))
    argv, _ = recorder.spawned[0]
    assert not [arg for arg in argv if arg.startswith("--bind=")]
