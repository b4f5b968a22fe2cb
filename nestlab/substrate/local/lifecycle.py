"""The local substrate's public API: up, status, stop_node, start_node, ssh_argv, down.

:class:`nestlab.substrate.local.substrate.LocalSubstrate` puts these behind the common
:class:`~nestlab.substrate.base.Substrate` interface; the result types live in ``base``.

Every call is idempotent: ``up`` creates what is missing and starts what is stopped, ``down``
removes whatever of the lab is really on the machine (processes, mounts, bridge, veths, lab dir),
reading the machine as well as the state file, so either can be re-run after a crash. Calls on
one lab are serialized by a lock file in its directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from nestlab import paths
from nestlab.runtime import proc
from nestlab.runtime.accel import probe
from nestlab.spec import NodeName, Plan, PlannedNode, Role
from nestlab.substrate.base import DownResult as DownResult  # noqa: PLC0414 - re-exported for callers
from nestlab.substrate.base import NodeState as NodeState  # noqa: PLC0414
from nestlab.substrate.base import NodeStatus as NodeStatus  # noqa: PLC0414
from nestlab.substrate.local import bridge as br
from nestlab.substrate.local import cgroups, mounts, orphans, pids, ssh
from nestlab.substrate.local import routes as rt
from nestlab.substrate.local import state as st
from nestlab.substrate.local.errors import LabClashError, LocalSubstrateError, UnknownNodeError
from nestlab.substrate.local.image import ensure_image
from nestlab.substrate.local.keys import ensure_key
from nestlab.substrate.local.layout import BridgeName, LabLayout, bridge_name, machine_name
from nestlab.substrate.local.limits import raise_limits
from nestlab.substrate.local.node import Context, Spawner, boot, halt
from nestlab.substrate.local.nodefiles import known_hosts_line

Progress = Callable[[str], None]
STATUS_SSH_ATTEMPTS = 2  # one login lost to a loaded machine does not make a node unreachable
SSH_WAIT_S = 300.0  # nodes boot in parallel on two shared cores; a loaded machine needs minutes


@dataclass(frozen=True)
class NodeResult:
    """What ``up`` or ``start_node`` did to one node."""

    name: NodeName
    address: IPv4Address
    pid: int
    started: bool
    """True when this call started it; False when it was already running."""


def layout_for(name: str, lab_root: Path | None = None) -> LabLayout:
    """The lab's layout (its directory: ``lab_root`` or nestlab.paths.lab_dir(name))."""
    return LabLayout(name=name, root=(lab_root or paths.lab_dir(name)).resolve())


@contextmanager
def _locked(layout: LabLayout, *, create: bool = False) -> Iterator[None]:
    """Hold the lab's lock; only ``up`` (create=True) may make the lab directory."""
    if create:
        layout.root.mkdir(parents=True, exist_ok=True)
    elif not layout.state_file.exists():
        raise LocalSubstrateError(
            f"lab {layout.name} is not up here (no {layout.state_file}); run `nestlab up` first"
        )
    with layout.lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _context(
    plan: Plan, layout: LabLayout, image: Path, *, run: proc.Runner, spawn: Spawner, kvm: bool | None
) -> Context:
    """Keys, known_hosts and the accelerator decision for booting this lab's nodes."""
    public = ensure_key(run, layout.ssh_key, f"nestlab-{plan.lab.name}")
    lines = []
    for node in plan.nodes:
        host_pub = ensure_key(run, layout.host_key(node.name), f"root@{node.name}")
        lines.append(known_hosts_line(node.name, node.address, host_pub))
    layout.known_hosts.write_text("".join(lines), encoding="ascii")
    addresses: dict[str, IPv4Address] = {node.name: node.address for node in plan.nodes}
    layout.files.ssh_config.write_text(ssh.ssh_config(layout, addresses), encoding="ascii")
    if kvm is None:
        kvm = bool(plan.by_role(Role.HOST)) and probe(run).name == "kvm"
    return Context(
        layout=layout,
        image=image,
        bridge=bridge_name(plan.lab.name),
        network=plan.lab.networks.management,
        authorized_key=public,
        kvm=kvm,
        run=run,
        spawn=spawn,
        cgroup_roots=tuple(cgroups.mounted()),
    )


def _start(ctx: Context, lab: st.LabState, nodes: list[PlannedNode], progress: Progress) -> list[NodeResult]:
    for change in raise_limits():
        progress(f"raised {change} (every node runs its own systemd)")
    results = []
    for node in nodes:
        lab, pid, started = boot(ctx, lab, node)
        progress(f"{node.name}: {'started' if started else 'already running'}")
        results.append(NodeResult(node.name, node.address, pid, started))

    def alive(name: str) -> bool:
        return pids.is_running(lab.nodes[NodeName(name)].pid, machine_name(lab.name, NodeName(name)))

    progress(f"waiting for sshd on {len(nodes)} node(s)")
    ssh.wait_reachable(
        ctx.run, ctx.layout, {n.name: n.address for n in nodes}, timeout=SSH_WAIT_S, alive=alive
    )
    return results


def up(
    plan: Plan,
    progress: Progress = lambda _msg: None,
    *,
    lab_root: Path | None = None,
    run: proc.Runner = proc.run,
    spawn: Spawner = proc.spawn,
    kvm: bool | None = None,
) -> list[NodeResult]:
    """Create what is missing and start what is stopped; return when every node answers SSH."""
    layout = layout_for(plan.lab.name, lab_root)
    network = plan.lab.networks.management
    bridge = bridge_name(plan.lab.name)
    fresh = not layout.state_file.exists()
    with _locked(layout, create=True):
        lab = st.load(layout.state_file, plan.lab.name)
        if lab.network is not None and lab.network != str(network):
            raise LabClashError(
                f"lab {plan.lab.name} exists on {lab.network} but the spec now says {network}; "
                f"run `nestlab down {plan.lab.name}` first to rebuild it on the new network"
            )
        tag = br.owner_tag(layout.root)
        owned = br.owner(run, bridge) == tag or (lab.bridge == bridge and lab.network == str(network))
        # This lab's routes: those it recorded, and (its state lost, its bridge still tagged as
        # its own) the ones it would make now.
        ours = lab.routes | (frozenset(r.key for r in rt.route_plan(plan)) if owned else frozenset())
        try:
            br.check_clashes(run, bridge, network, owned=owned)
            rt.check_route_clashes(run, plan, bridge, ours=ours)
        except LabClashError:
            if fresh:
                # Refused before anything was made: take back the lock file, and the directory
                # unless others (the CLI's saved spec, its log) wrote there.
                layout.lock_file.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    layout.root.rmdir()
            raise
        image = Path(lab.image) if lab.image else None
        if image is None or not image.is_dir():  # a lab keeps the image it was created from
            image = ensure_image(run=run, progress=progress).root
            lab = st.with_image(lab, image)
        lab = st.with_bridge(lab, bridge, str(network))
        st.save(layout.state_file, lab)
        layout.files.plan.write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")
        br.ensure_bridge(run, bridge, plan.gateway, network, tag=tag)
        lab = _ensure_routes(run, layout, lab, plan, bridge)
        ctx = _context(plan, layout, image, run=run, spawn=spawn, kvm=kvm)
        return _start(ctx, lab, list(plan.nodes), progress)


def _ensure_routes(
    run: proc.Runner,
    layout: LabLayout,
    lab: st.LabState,
    plan: Plan,
    bridge: BridgeName,
    *,
    stopped: frozenset[NodeName] = frozenset(),
) -> st.LabState:
    """Route the lab's ranges into its bridge (Services to hosts not ``stopped``); drop routes the
    lab no longer needs (an earlier spec's, the Service route when every host is stopped)."""
    routes = rt.route_plan(plan, stopped)
    planned = frozenset(route.key for route in routes)
    lab = st.with_routes(lab, lab.routes | planned)  # recorded before they are made
    st.save(layout.state_file, lab)
    rt.apply(run, routes, bridge)
    rt.remove(run, lab.routes - planned)
    lab = st.with_routes(lab, planned)
    st.save(layout.state_file, lab)
    return lab


def _affected(plan: Plan, name: str) -> list[PlannedNode]:
    """``name`` alone, or for a host its whole failure domain (the host first)."""
    try:
        node = plan.node(name)
    except KeyError:
        known = ", ".join(n.name for n in plan.nodes)
        raise UnknownNodeError(f"lab {plan.lab.name} has no node {name!r}; its nodes: {known}") from None
    if node.role is Role.HOST:
        return [plan.node(member) for member in plan.failure_domains()[node.name]]
    return [node]


def stop_node(
    plan: Plan, name: str, *, lab_root: Path | None = None, run: proc.Runner = proc.run, hard: bool = False
) -> list[NodeName]:
    """Stop a node; a host takes every node placed on it down with it. Returns the nodes stopped.
    ``hard``: pull the power (no clean shutdown of anything on them) instead of a clean poweroff."""
    layout = layout_for(plan.lab.name, lab_root)
    affected = _affected(plan, name)
    with _locked(layout):
        lab = st.load(layout.state_file, plan.lab.name)
        for node in affected:  # status shows them stopping from now until each is off
            record = lab.nodes.get(node.name)
            if record is not None and record.pid is not None:
                lab = st.stopping(lab, node.name)
        st.save(layout.state_file, lab)
        hosts = {node.name for node in affected if node.role is Role.HOST}
        if hosts and lab.bridge is not None and br.exists(run, lab.bridge):  # Services leave first
            stopped = _stopped_hosts(lab, plan) | hosts
            lab = _ensure_routes(run, layout, lab, plan, lab.bridge, stopped=stopped)
        for node in reversed(affected):  # placed nodes first, the host last
            lab = halt(run, layout, lab, node, hard=hard)
    return [node.name for node in affected]


def _stopped_hosts(lab: st.LabState, plan: Plan) -> frozenset[NodeName]:
    """The hosts a node stop left stopped (recorded, with no process)."""
    return frozenset(
        host.name
        for host in plan.by_role(Role.HOST)
        if host.name in lab.nodes and lab.nodes[host.name].pid is None
    )


def start_node(
    plan: Plan,
    name: str,
    progress: Progress = lambda _msg: None,
    *,
    lab_root: Path | None = None,
    run: proc.Runner = proc.run,
    spawn: Spawner = proc.spawn,
    kvm: bool | None = None,
) -> list[NodeResult]:
    """Start a stopped node (a host with every node placed on it); wait until they answer SSH."""
    layout = layout_for(plan.lab.name, lab_root)
    affected = _affected(plan, name)
    with _locked(layout):
        lab = st.load(layout.state_file, plan.lab.name)
        if lab.bridge is None or lab.image is None:
            raise LocalSubstrateError(f"lab {plan.lab.name} was never fully up; run `nestlab up` first")
        image = Path(lab.image)
        br.ensure_bridge(
            run, lab.bridge, plan.gateway, plan.lab.networks.management, tag=br.owner_tag(layout.root)
        )
        starting = {node.name for node in affected}
        # The bridge may have been lost; Services go to the hosts about to run again too.
        stopped = _stopped_hosts(lab, plan) - starting
        lab = _ensure_routes(run, layout, lab, plan, lab.bridge, stopped=stopped)
        ctx = _context(plan, layout, image, run=run, spawn=spawn, kvm=kvm)
        return _start(ctx, lab, affected, progress)


def status(
    plan: Plan, *, lab_root: Path | None = None, run: proc.Runner = proc.run, check_ssh: bool = True
) -> list[NodeStatus]:
    """Every node's role, placement, address, state, and whether SSH answers."""
    layout = layout_for(plan.lab.name, lab_root)
    lab = st.load(layout.state_file, plan.lab.name)
    running = {name: pids.is_running(record.pid, record.machine) for name, record in lab.nodes.items()}
    # Looked for only after every nspawn was checked (and a dead one reaped): a container whose
    # nspawn is still dying has that nspawn as parent and is not an orphan yet.
    orphaned = orphans.find(layout.root / "nodes") if not all(running.values()) else {}
    statuses = []
    for node in plan.nodes:
        state: NodeState = "absent"
        if node.name in running:
            if running[node.name]:
                state = "stopping" if lab.nodes[node.name].stopping else "running"
            else:
                state = "orphaned" if layout.upper(node.name) in orphaned else "stopped"
        reachable = (
            state in ("running", "stopping")
            and check_ssh
            and ssh.reachable(run, layout, node.address, attempts=STATUS_SSH_ATTEMPTS)
        )
        statuses.append(NodeStatus(node.name, node.role, node.placed_on, node.address, state, reachable))
    return statuses


def ssh_argv(
    plan: Plan, name: str, command: list[str] | None = None, *, lab_root: Path | None = None
) -> list[str]:
    """The ``ssh`` command line that logs in as root on node ``name`` (running ``command``)."""
    try:
        node = plan.node(name)
    except KeyError:
        raise UnknownNodeError(f"lab {plan.lab.name} has no node {name!r}") from None
    return ssh.ssh_argv(layout_for(plan.lab.name, lab_root), node.address, command or [])


def _saved_route_keys(layout: LabLayout) -> frozenset[rt.RouteKey]:
    """The route keys of the plan saved at ``up`` (none when there is no readable one)."""
    try:
        return rt.keys_in_plan_dict(json.loads(layout.files.plan.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return frozenset()


def down(name: str, *, lab_root: Path | None = None, run: proc.Runner = proc.run) -> DownResult:
    """Remove every process, mount, veth and the bridge of lab ``name``, then its directory."""
    layout = layout_for(name, lab_root)
    if not layout.root.exists():
        return DownResult((), (), False)
    with _locked(layout, create=True):  # also without a state file: it may be what the crash lost
        try:
            lab = st.load(layout.state_file, name)
        except LocalSubstrateError:
            lab = st.LabState(name=name)  # unreadable: trust the machine
        running = pids.node_pids(layout.root / "nodes")
        for record in lab.nodes.values():
            if record.pid is not None and pids.is_running(record.pid, record.machine):
                running[record.machine] = record.pid
        # Every node's disk is deleted next, so a clean poweroff would save nothing: all nodes lose
        # their power at once (one after another, clean, took most of `down`'s time).
        pids.stop_all(running, hard=True)
        for pid in orphans.find(layout.root / "nodes").values():
            orphans.end(run, pid)
        busy = cgroups.remove(cgroups.lab_dirs(cgroups.mounted(), cgroups.lab_key(name, layout.root)))
        if busy:
            raise LocalSubstrateError(
                f"processes still run in the lab's cgroups {', '.join(map(str, busy))} after its nodes "
                "were stopped: see their cgroup.procs, end them, and run `nestlab down` again"
            )
        unmounted = tuple(mounts.mounts_under(layout.root))
        mounts.unmount_all(run, layout.root)
        # Only this lab's bridge: recorded in its state, or tagged with its directory (the state
        # file may be what a crash lost); never a same-named bridge another lab directory made.
        bridge = bridge_name(name)
        ours = lab.bridge == bridge or br.owner(run, bridge) == br.owner_tag(layout.root)
        # Only this lab's routes: recorded in its state or, that lost, named by its saved plan.
        keys = lab.routes or (_saved_route_keys(layout) if ours else frozenset())
        routes = tuple(f"{key.kind} {key.destination}" for key in rt.remove(run, keys))
        removed = ours and br.exists(run, bridge)
        if removed:
            br.remove_bridge(run, bridge)
        left = mounts.mounts_under(layout.root)
        if left:
            raise LocalSubstrateError(f"still mounted after unmounting: {', '.join(map(str, left))}")
        shutil.rmtree(layout.root)
    return DownResult(tuple(sorted(running)), unmounted, removed, routes)
