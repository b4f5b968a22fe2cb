"""Boot and halt one node: overlay, identity files, nspawn; and the reverse.

Every step checks what is already there first, and the state file records each step as it is
taken, so calling :func:`boot` on a half-started node finishes the job instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Protocol

from nestlab.runtime import proc
from nestlab.spec import PlannedNode, Role
from nestlab.substrate.local import cgroups, mounts, orphans, pids
from nestlab.substrate.local import state as st
from nestlab.substrate.local.layout import BridgeName, LabLayout, machine_name
from nestlab.substrate.local.nodefiles import NodeIdentity, new_machine_id, write_node_files
from nestlab.substrate.local.nspawn import nspawn_argv


class Spawner(Protocol):
    """The part of :func:`nestlab.runtime.proc.spawn` nodes use; tests pass a fake."""

    def __call__(self, argv: Sequence[str], *, log: Path | None = None) -> proc.Process: ...


@dataclass(frozen=True)
class Context:
    """What booting a node needs, fixed for one lifecycle call."""

    layout: LabLayout
    image: Path
    bridge: BridgeName
    network: IPv4Network
    authorized_key: str
    kvm: bool
    """Bind /dev/kvm into hosts (only when the accelerator probe chose KVM)."""
    run: proc.Runner
    spawn: Spawner
    cgroup_roots: tuple[Path, ...]
    """The cgroup hierarchies each node gets a cgroup of its own in (:mod:`.cgroups`)."""


def machine_id(layout: LabLayout, node: PlannedNode) -> str:
    """The node's machine-id, made once and kept in its node directory."""
    path = layout.node_dir(node.name) / "machine-id"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_machine_id() + "\n", encoding="ascii")
    return path.read_text(encoding="ascii").strip()


def identity(ctx: Context, node: PlannedNode) -> NodeIdentity:
    """The node's identity files' inputs (the host key must already exist)."""
    key = ctx.layout.host_key(node.name)
    return NodeIdentity(
        name=node.name,
        address=node.address,
        network=ctx.network,
        authorized_key=ctx.authorized_key,
        host_key=key.read_bytes(),
        host_key_pub=key.with_name(key.name + ".pub").read_text(encoding="ascii"),
        machine_id=machine_id(ctx.layout, node),
    )


def boot(ctx: Context, lab: st.LabState, node: PlannedNode) -> tuple[st.LabState, int, bool]:
    """Start ``node`` unless it runs; returns the new state, its PID and whether it started now."""
    machine = machine_name(ctx.layout.name, node.name)
    record = st.node_record(lab, node.name, machine)
    if record.pid is not None and pids.is_running(record.pid, machine):
        if record.stopping:  # a stop that died half-way: the node runs, so it is not stopping
            lab = st.not_stopping(lab, node.name)
            st.save(ctx.layout.state_file, lab)
        return lab, record.pid, False
    layout = ctx.layout
    clear_orphan(ctx.run, layout, node)
    lab = st.mounted(lab, node.name, machine)
    st.save(layout.state_file, lab)
    merged = layout.merged(node.name)
    mounts.mount_overlay(ctx.run, ctx.image, layout.upper(node.name), layout.work(node.name), merged)
    write_node_files(merged, identity(ctx, node))
    lab = st.configured(lab, node.name)
    argv = nspawn_argv(
        root=merged,
        machine=machine,
        hostname=node.name,
        bridge=ctx.bridge,
        tun=node.role is Role.HOST,
        kvm=ctx.kvm and node.role is Role.HOST,
    )
    own = cgroups.node_dirs(ctx.cgroup_roots, cgroups.lab_key(layout.name, layout.root), node.name)
    cgroups.create(own)
    log = layout.console_log(node.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    pid = pids.adopt(ctx.spawn(cgroups.enter_argv(own, argv), log=log))
    lab = st.started(lab, node.name, pid)
    st.save(layout.state_file, lab)
    return lab, pid, True


def clear_orphan(run: proc.Runner, layout: LabLayout, node: PlannedNode) -> None:
    """End the node's container if it outlived its nspawn (so two never hold one address)."""
    orphan = orphans.find(layout.root / "nodes").get(layout.upper(node.name))
    if orphan is not None:
        orphans.end(run, orphan)


def halt(
    run: proc.Runner,
    layout: LabLayout,
    lab: st.LabState,
    node: PlannedNode,
    *,
    hard: bool = False,
    cgroup_roots: Sequence[Path] | None = None,
) -> st.LabState:
    """Stop ``node`` (clean poweroff, or with ``hard`` its power pulled), unmount its overlay and
    remove its cgroups (in ``cgroup_roots``, this machine's hierarchies when None); its writable
    layer is kept."""
    machine = machine_name(layout.name, node.name)
    record = lab.nodes.get(node.name)
    if record is None:
        return lab
    if record.pid is not None:
        if hard:
            pids.pull_power(record.pid, machine)
        pids.stop(record.pid, machine)
    clear_orphan(run, layout, node)
    mounts.unmount_all(run, layout.merged(node.name))
    roots = cgroups.mounted() if cgroup_roots is None else cgroup_roots
    cgroups.remove(cgroups.node_dirs(roots, cgroups.lab_key(layout.name, layout.root), node.name))
    lab = st.stopped(lab, node.name)
    st.save(layout.state_file, lab)
    return lab
