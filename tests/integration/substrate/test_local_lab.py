"""A real local lab: nspawn nodes from the cached node image, SSH, a TPM in a node, a host's failure
domain stopping and starting, two labs side by side, and a ``down`` that leaves nothing behind.

The node image is built on first use (a minute or two) and then comes from the cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab.paths import LabFiles
from nestlab.runtime import proc
from nestlab.spec import Plan, make_plan, parse_spec
from nestlab.substrate.local import bridge as br
from nestlab.substrate.local import cgroups, orphans
from nestlab.substrate.local import lifecycle as lc
from nestlab.substrate.local import routes as rt
from nestlab.substrate.local.errors import LabClashError
from nestlab.substrate.local.layout import bridge_name
from nestlab.substrate.local.pids import node_pids as pids_of_lab

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="nspawn machines, bridges and mounts need root"),
]

SPEC = Path(__file__).with_name("small.lab.yaml")


@dataclass(frozen=True)
class Lab:
    """A lab that is up, and where its state lives."""

    plan: Plan
    root: Path


def _plan(name: str | None = None, third_octet: int | None = None) -> Plan:
    text = SPEC.read_text()
    if name is not None:
        text = text.replace("name: h3small", f"name: {name}")
    if third_octet is not None:
        text = text.replace("198.18.241.", f"198.18.{third_octet}.").replace(
            "198.19.241.", f"198.19.{third_octet}."
        )
    return make_plan(parse_spec(text, str(SPEC)))


def _ssh(lab: Lab, node: str, *command: str) -> proc.Result:
    return proc.run(lc.ssh_argv(lab.plan, node, list(command), lab_root=lab.root), timeout=60, check=False)


def _links() -> str:
    return proc.run(["ip", "-o", "link", "show"], timeout=30).stdout


def _mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def _route_get(address: str) -> proc.Result:
    return proc.run(["ip", "route", "get", address], timeout=30, check=False)


def _lab_routes(plan: Plan) -> list[rt.MachineRoute]:
    """The routes a lab made on this machine inside ``plan``'s ranges."""
    networks = plan.lab.networks
    table = rt.parse_routes(proc.run(["ip", "-j", "route", "show"], timeout=30).stdout)
    ranges = (networks.pods, networks.services, networks.ingress)
    return [r for r in table if r.nestlab and any(r.destination.subnet_of(n) for n in ranges)]


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[list[Lab]]:
    """Labs created by a test; every one is taken down afterwards, also when the test fails."""
    labs: list[Lab] = []
    yield labs
    errors = []
    for lab in labs:
        logs = LabFiles(lab.root).logs
        if logs.is_dir():  # the node consoles outlive the lab, for a failure's post-mortem
            shutil.copytree(logs, tmp_path / f"{lab.plan.lab.name}-logs", dirs_exist_ok=True)
        try:
            lc.down(lab.plan.lab.name, lab_root=lab.root)
        except Exception as exc:  # take every lab down, then report
            errors.append(exc)
    if errors:
        raise errors[0]


def _up(labs: list[Lab], plan: Plan, root: Path) -> tuple[Lab, list[lc.NodeResult]]:
    lab = Lab(plan, root)
    labs.append(lab)
    return lab, lc.up(plan, lab_root=root)


def test_small_lab_lifecycle(lab_factory: list[Lab], tmp_path: Path) -> None:
    lab, results = _up(lab_factory, _plan(), tmp_path / "h3small")
    names = sorted(node.name for node in lab.plan.nodes)
    assert sorted(r.name for r in results) == names == ["cp-1", "depot", "esx-01", "lb-1"]
    pids = {r.name: r.pid for r in results}

    # Every node answers SSH as itself, on its planned address, with no route off the lab.
    for node in lab.plan.nodes:
        answer = _ssh(lab, node.name, "hostname; ip -4 -o addr show host0; ip route show default")
        assert answer.returncode == 0, answer.stderr
        hostname, address_line, *default_route = answer.stdout.splitlines()
        assert hostname == node.name
        assert f"inet {node.address}/24" in address_line
        assert default_route == []
    assert all(s.state == "running" and s.reachable for s in lc.status(lab.plan, lab_root=lab.root))
    # Each node's systemd keeps its units in the node's own cgroup: nspawn runs in
    # nestlab/<lab>-<digest>/<node>/supervisor, the node below .../payload (before, every node of every lab
    # shared /payload, and units that two nodes started at once failed with status=219/CGROUP).
    roots = cgroups.mounted()
    assert roots, "no cgroup hierarchy found in /proc/self/mounts"
    key = cgroups.lab_key("h3small", lab.root)
    for node in lab.plan.nodes:
        for own in cgroups.node_dirs(roots, key, node.name):
            assert (own / "payload" / "system.slice").is_dir(), own
        lines = Path(f"/proc/{pids[node.name]}/cgroup").read_text().splitlines()
        assert any(line.endswith(f"/nestlab/{key}/{node.name}/supervisor") for line in lines), lines
        journal = _ssh(lab, node.name, "journalctl -b --no-pager --grep 'status=219/CGROUP'")
        assert journal.stdout.strip() in ("", "-- No entries --"), journal.stdout
        failed = _ssh(lab, node.name, "systemctl list-units --failed --no-legend --plain")
        assert failed.stdout.strip() == "", f"{node.name}: {failed.stdout}"  # a node boots clean
    # The outer machine reaches esx-01's pods through esx-01; the rest of the pod range never
    # follows the default route out (198.19.241.0/26 is esx-01's, .100 is in no host's subnet).
    assert f"via 198.18.241.31 dev {bridge_name(lab.plan.lab.name)}" in _route_get("198.19.241.5").stdout
    assert "No route to host" in _route_get("198.19.241.100").stderr
    assert len(_lab_routes(lab.plan)) == len(rt.route_plan(lab.plan))
    files = LabFiles(lab.root)
    by_name = proc.run(["ssh", "-F", str(files.ssh_config), "lb-1", "hostname"], timeout=60, check=False)
    assert by_name.stdout.strip() == "lb-1", by_name.stderr
    assert json.loads(files.plan.read_text())["name"] == "h3small"

    # The node's own TPM answers, and role services are installed but left off for the roles.
    tpm = _ssh(lab, "cp-1", "tpm2_getcap properties-fixed")
    assert tpm.returncode == 0, tpm.stderr
    assert 'value: "2.0"' in tpm.stdout
    services = _ssh(lab, "cp-1", "systemctl is-enabled etcd haproxy keepalived nginx docker-registry unbound")
    assert services.stdout.split() == ["disabled"] * 6
    tap = _ssh(lab, "esx-01", "ip tuntap add dev nltap0 mode tap && ip link del dev nltap0")
    assert tap.returncode == 0, tap.stderr  # a host can make the tap devices its pods need

    # A second up changes nothing.
    again = lc.up(lab.plan, lab_root=lab.root)
    assert [(r.name, r.pid, r.started) for r in again] == [(n, pids[n], False) for n in pids]

    # Stopping the host stops every node placed on it; starting it brings them back.
    domain = lab.plan.failure_domains()["esx-01"]
    assert sorted(lc.stop_node(lab.plan, "esx-01", lab_root=lab.root)) == sorted(domain) == names
    after_stop = lc.status(lab.plan, lab_root=lab.root)
    assert [(s.state, s.reachable) for s in after_stop] == [("stopped", False)] * 4
    assert not any(_alive(pid) for pid in pids.values())
    assert str(lab.root) not in _mountinfo()
    assert _ssh(lab, "cp-1", "true").returncode != 0
    restarted = lc.start_node(lab.plan, "esx-01", lab_root=lab.root)
    assert sorted(r.name for r in restarted) == names
    assert all(r.started for r in restarted)
    assert all(s.state == "running" and s.reachable for s in lc.status(lab.plan, lab_root=lab.root))
    # The node's writable layer survives the restart.
    assert _ssh(lab, "cp-1", "test -f /var/lib/swtpm/tpm2-00.permall").returncode == 0

    # down removes the processes, mounts, veths, bridge and lab directory.
    running = [r.pid for r in restarted]
    bridge = bridge_name(lab.plan.lab.name)
    veths = br.members(proc.run, bridge)
    assert len(veths) == 4
    assert all(veth.startswith("vb-") for veth in veths)
    done = lc.down(lab.plan.lab.name, lab_root=lab.root)
    assert done.bridge_removed
    assert len(done.stopped) == 4
    assert not any(_alive(pid) for pid in running)
    assert f"{bridge}:" not in _links()
    assert not [veth for veth in veths if f"{veth}:" in _links() or f"{veth}@" in _links()]
    assert str(lab.root) not in _mountinfo()
    assert not lab.root.exists()
    assert not any(d.exists() for d in cgroups.lab_dirs(roots, key))
    assert len(done.routes_removed) == len(rt.route_plan(lab.plan))
    assert _lab_routes(lab.plan) == []
    assert lc.down(lab.plan.lab.name, lab_root=lab.root) == lc.DownResult((), (), False)  # idempotent


def test_labs_side_by_side_and_clash_refused(lab_factory: list[Lab], tmp_path: Path) -> None:
    first, _ = _up(lab_factory, _plan("h3left", 242), tmp_path / "h3left")
    second, _ = _up(lab_factory, _plan("h3right", 243), tmp_path / "h3right")
    for lab in (first, second):
        assert all(s.reachable for s in lc.status(lab.plan, lab_root=lab.root))
    # Each lab's nodes sit on its own bridge; a node reaches its lab's gateway and nothing else.
    left, right = br.members(proc.run, bridge_name("h3left")), br.members(proc.run, bridge_name("h3right"))
    assert len(left) == len(right) == 4
    assert not set(left) & set(right)
    assert _ssh(first, "cp-1", "ping -c1 -W10 198.18.242.1").returncode == 0
    assert _ssh(first, "cp-1", "ping -c1 -W2 198.18.243.1").returncode != 0
    assert _ssh(first, "cp-1", "ping -c1 -W2 198.18.243.21").returncode != 0

    clash = _plan("h3clash", 242)  # same management network as h3left
    with pytest.raises(LabClashError, match=r"198\.18\.242\.0/24 overlaps"):
        lc.up(clash, lab_root=tmp_path / "h3clash")
    assert "nl-h3clash" not in _links()
    assert not (tmp_path / "h3clash").exists()

    same_name = _plan("h3left", 244)  # another state dir, but the bridge name is taken
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "spec.yaml").write_text("saved by the CLI before up\n")
    with pytest.raises(
        LabClashError, match=re.escape(f"nl-h3left already exists, made by the lab in {first.root}")
    ):
        lc.up(same_name, lab_root=elsewhere)
    assert [p.name for p in elsewhere.iterdir()] == ["spec.yaml"]
    # Taking the refused lab down removes its directory, never the other lab's bridge.
    assert not lc.down("h3left", lab_root=elsewhere).bridge_removed
    assert not elsewhere.exists()
    assert "nl-h3left:" in _links()
    assert all(s.reachable for s in lc.status(first.plan, lab_root=first.root))


def _states_once_cp1_not_running(lab: Lab) -> dict[str, str]:
    """Node states, read once the killed nspawn of cp-1 has really exited (a signal is not instant)."""
    for _ in range(300):
        states = {s.name: s.state for s in lc.status(lab.plan, lab_root=lab.root, check_ssh=False)}
        if states["cp-1"] != "running":
            return states
        time.sleep(0.1)
    raise AssertionError("cp-1's nspawn did not exit after SIGKILL")


def test_recovers_from_killed_nspawn_and_lost_state(lab_factory: list[Lab], tmp_path: Path) -> None:
    lab, results = _up(lab_factory, _plan("h3crash", 245), tmp_path / "h3crash")
    pids = {r.name: r.pid for r in results}

    # nspawn killed hard: its container lives on as an orphan holding cp-1's address.
    os.kill(pids["cp-1"], signal.SIGKILL)
    states = _states_once_cp1_not_running(lab)
    assert states == {"esx-01": "running", "depot": "running", "lb-1": "running", "cp-1": "orphaned"}
    again = {r.name: r for r in lc.up(lab.plan, lab_root=lab.root)}
    assert again["cp-1"].started
    assert not again["lb-1"].started
    assert orphans.find(lab.root / "nodes") == {}
    assert _ssh(lab, "cp-1", "true").returncode == 0

    # A crash that also lost the state file: down still finds and removes everything.
    os.kill(again["lb-1"].pid, signal.SIGKILL)
    (lab.root / "state.json").unlink()
    lc.down(lab.plan.lab.name, lab_root=lab.root)
    assert orphans.find(tmp_path) == {}
    assert pids_of_lab(lab.root / "nodes") == {}
    assert "nl-h3crash" not in _links()
    assert _lab_routes(lab.plan) == []  # the unreachable fallbacks too, named by the saved plan
    assert str(lab.root) not in _mountinfo()
    assert not lab.root.exists()
