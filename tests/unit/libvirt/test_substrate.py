"""A libvirt lab behind the common Substrate interface: every lab command reaches libvirt.

The lab is recorded exactly as `nestlab up --substrate libvirt` records it (LibvirtSubstrate.prepare
on the teaching spec); libvirt itself is a fake answering `virsh` through the project's process
runner, and Pulumi's destroy/up are replaced where the CLI would be needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from nestlab import labnodes, lifecycle
from nestlab.errors import UsageError
from nestlab.paths import LabFiles
from nestlab.runtime import proc
from nestlab.runtime.proc import Result
from nestlab.substrate.base import record_path
from nestlab.substrate.libvirt import automation
from nestlab.substrate.libvirt import substrate as substrate_module
from nestlab.substrate.libvirt.substrate import LibvirtSubstrate, domain_state
from nestlab.substrate.local.substrate import LocalSubstrate
from tests.unit.libvirt.harness import ROOT

SPEC = ROOT / "stacks" / "default.lab.yaml"
URI = "qemu:///system"


class FakeLibvirt:
    """Domains with states; answers virsh and ssh as libvirt and a booted VM would."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states
        self.calls: list[list[str]] = []
        self.ignore_shutdown = False

    def __call__(self, argv: Sequence[str], *, timeout: float, check: bool = True, **_: Any) -> Result:
        args = [str(a) for a in argv]
        self.calls.append(args)
        if args[0] == "ssh":
            domain = "default-" + {v: k for k, v in ADDRESSES.items()}[args[-2].removeprefix("root@")]
            return Result(tuple(args), 0 if self.states.get(domain) == "running" else 255, "", "")
        assert args[:3] == ["virsh", "-c", URI], args
        verb, domain = args[3], args[4]
        if domain not in self.states:
            return Result(tuple(args), 1, "", f"error: {automation_error(domain)}")
        if verb == "domstate":
            state = self.states[domain]
            if state == "in shutdown" and not self.ignore_shutdown:
                self.states[domain] = "shut off"  # the guest finishes its poweroff by the next look
            return Result(tuple(args), 0, f"{state}\n\n", "")
        self.states[domain] = {"shutdown": "in shutdown", "destroy": "shut off", "start": "running"}[verb]
        return Result(tuple(args), 0, "", "")

    def verbs(self, verb: str) -> list[str]:
        return [c[4] for c in self.calls if c[0] == "virsh" and c[3] == verb]


ADDRESSES = {"esx-01": "198.18.0.31", "cp-1": "198.18.0.21", "lb-1": "198.18.0.11", "esx-02": "198.18.0.32",
             "esx-03": "198.18.0.33", "depot": "198.18.0.10", "lb-2": "198.18.0.12", "cp-2": "198.18.0.22",
             "cp-3": "198.18.0.23"}  # fmt: skip


def automation_error(domain: str) -> str:
    return f"failed to get domain '{domain}'"


@pytest.fixture(autouse=True)
def no_poll_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake libvirt answers at once: poll it without the 1 s pause a real guest is given."""
    monkeypatch.setattr(substrate_module, "POLL_S", 0.0)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def recorded(home: Path) -> LibvirtSubstrate:
    """The teaching lab recorded as a libvirt lab, as `up --substrate libvirt` does before Pulumi runs."""
    return LibvirtSubstrate.prepare(automation.LabRequest(spec=SPEC, image="/images/node.qcow2"))


@pytest.fixture
def libvirt(monkeypatch: pytest.MonkeyPatch) -> FakeLibvirt:
    fake = FakeLibvirt({f"default-{name}": "running" for name in ADDRESSES})
    monkeypatch.setattr(proc, "run", fake)
    monkeypatch.setattr("nestlab.substrate.libvirt.substrate.time.sleep", lambda _s: None)
    return fake


def test_up_records_the_lab_as_libvirt_with_each_nodes_domain_and_hypervisor(
    recorded: LibvirtSubstrate, home: Path
) -> None:
    record = json.loads(record_path(LabFiles.named("default")).read_text())
    assert record["type"] == "libvirt"
    assert record["spec"] == str(SPEC)
    assert {n["name"]: (n["domain"], n["uri"], n["address"]) for n in record["nodes"]} == {
        name: (f"default-{name}", URI, address) for name, address in ADDRESSES.items()
    }
    assert isinstance(lifecycle.substrate("default"), LibvirtSubstrate)
    assert not (home / "labs" / "default" / "spec.yaml").exists()  # commands need no saved spec


def test_a_lab_without_a_record_or_recorded_local_is_local(home: Path) -> None:
    assert isinstance(lifecycle.substrate("other"), LocalSubstrate)
    files = LabFiles.named("other")
    files.root.mkdir(parents=True)
    record_path(files).write_text('{"type": "local"}')
    assert isinstance(lifecycle.substrate("other"), LocalSubstrate)
    record_path(files).write_text('{"type": "vmware"}')
    with pytest.raises(UsageError, match="unknown substrate type 'vmware'"):
        lifecycle.substrate("other")


def test_status_reads_each_domain_state_from_libvirt(
    recorded: LibvirtSubstrate, libvirt: FakeLibvirt
) -> None:
    libvirt.states["default-esx-02"] = "shut off"
    libvirt.states["default-cp-1"] = "in shutdown"
    libvirt.ignore_shutdown = True
    del libvirt.states["default-depot"]
    nodes = {str(n.name): (n.state, n.reachable) for n in lifecycle.status("default")}
    assert nodes["esx-02"] == ("stopped", False)
    assert nodes["cp-1"] == ("stopping", False)  # ssh refused: the fake VM is going down
    assert nodes["depot"] == ("absent", False)
    assert nodes["esx-01"] == ("running", True)
    assert ["virsh", "-c", URI, "domstate", "default-cp-1"] in libvirt.calls


def test_node_stop_shuts_the_failure_domain_down_placed_nodes_first(
    recorded: LibvirtSubstrate, libvirt: FakeLibvirt
) -> None:
    stopped = labnodes.node_stop("default", "esx-01")
    assert stopped == ["esx-01", "lb-1", "cp-1"]
    assert libvirt.verbs("shutdown") == ["default-cp-1", "default-lb-1", "default-esx-01"]
    assert libvirt.verbs("destroy") == []
    assert {d for d, s in libvirt.states.items() if s == "shut off"} == {
        "default-esx-01", "default-lb-1", "default-cp-1"
    }  # fmt: skip


def test_node_stop_hard_pulls_the_power(recorded: LibvirtSubstrate, libvirt: FakeLibvirt) -> None:
    assert labnodes.node_stop("default", "cp-2", hard=True) == ["cp-2"]
    assert libvirt.verbs("destroy") == ["default-cp-2"]
    assert libvirt.verbs("shutdown") == []


def test_a_guest_ignoring_the_shutdown_gets_its_power_pulled_after_the_deadline(
    recorded: LibvirtSubstrate, libvirt: FakeLibvirt
) -> None:
    libvirt.ignore_shutdown = True
    now = [0.0]

    def clock() -> float:
        now[0] += 30.0
        return now[0]

    substrate = LibvirtSubstrate("default", recorded.files, recorded.record, run=libvirt, clock=clock,
                                 sleep=lambda _s: None)  # fmt: skip
    assert substrate.stop_node("lb-2") == ["lb-2"]
    assert libvirt.verbs("shutdown") == ["default-lb-2"]
    assert libvirt.verbs("destroy") == ["default-lb-2"]


def test_node_start_starts_the_domains_and_waits_for_ssh(
    recorded: LibvirtSubstrate, libvirt: FakeLibvirt
) -> None:
    for node in ("esx-01", "lb-1", "cp-1"):
        libvirt.states[f"default-{node}"] = "shut off"
    said: list[str] = []
    assert labnodes.node_start("default", "esx-01", said.append) == ["esx-01", "lb-1", "cp-1"]
    assert libvirt.verbs("start") == ["default-esx-01", "default-lb-1", "default-cp-1"]
    assert [c[-2] for c in libvirt.calls if c[0] == "ssh"] == ["root@198.18.0.31", "root@198.18.0.11",
                                                              "root@198.18.0.21"]  # fmt: skip
    assert said[-1] == "waiting for sshd on 3 node(s)"


def test_node_start_of_a_domain_that_is_gone_says_how_to_recreate_it(
    recorded: LibvirtSubstrate, libvirt: FakeLibvirt
) -> None:
    del libvirt.states["default-depot"]
    with pytest.raises(UsageError, match=r"up --substrate libvirt"):
        labnodes.node_start("default", "depot", lambda _m: None)


def test_ssh_goes_to_the_nodes_address_with_the_lab_key(
    recorded: LibvirtSubstrate, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def run(argv: Sequence[str], **_: Any) -> Result:
        seen.append(list(argv))
        return Result(tuple(argv), 3, "", "")

    monkeypatch.setattr(proc, "run", run)
    assert labnodes.ssh("default", "cp-2", ["hostname"]) == 3
    argv = seen[0]
    assert argv[0] == "ssh"
    assert argv[-2:] == ["root@198.18.0.22", "hostname"]
    assert argv[argv.index("-i") + 1] == str(LabFiles.named("default").ssh_key)
    with pytest.raises(UsageError, match="no node 'cp-9'"):
        labnodes.ssh("default", "cp-9", [])


def test_down_destroys_the_recorded_stack_then_removes_the_lab(
    recorded: LibvirtSubstrate, monkeypatch: pytest.MonkeyPatch
) -> None:
    destroyed: list[automation.LabRequest] = []
    monkeypatch.setattr(automation, "destroy", lambda request, **_: destroyed.append(request))
    result = lifecycle.down("default")
    assert destroyed == [automation.LabRequest(spec=SPEC, image="/images/node.qcow2", domain_type="kvm")]
    assert set(result.stopped) == {f"default-{name}" for name in ADDRESSES}
    assert not LabFiles.named("default").root.exists()
    assert lifecycle.down("default").stopped == ()  # again: nothing left, nothing to do


def test_up_libvirt_records_the_lab_before_pulumi_runs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stack_up(request: automation.LabRequest, **_: Any) -> dict[str, object]:
        assert json.loads(record_path(LabFiles.named("default")).read_text())["type"] == "libvirt"
        return {"vip": "198.18.0.5"}

    monkeypatch.setattr(automation, "require_pulumi", lambda: "/usr/bin/pulumi")
    monkeypatch.setattr(automation, "up", stack_up)
    monkeypatch.setattr(proc, "run", FakeLibvirt({}))
    assert lifecycle.up_libvirt(SPEC, "/images/node.qcow2", lambda _m: None) == {"vip": "198.18.0.5"}


def test_a_local_up_refuses_a_lab_recorded_as_libvirt(recorded: LibvirtSubstrate) -> None:
    with pytest.raises(UsageError, match="runs on the libvirt substrate"):
        lifecycle.up(SPEC, None, lambda _m: None, force=True)


@pytest.mark.parametrize(
    ("output", "state"),
    [("running\n\n", "running"), ("in shutdown\n", "stopping"), ("shut off\n", "stopped"),
     ("crashed\n", "stopped"), ("paused\n", "stopped"), ("", "stopped")],
)  # fmt: skip
def test_virsh_domstate_maps_to_node_states(output: str, state: str) -> None:
    assert domain_state(output) == state


def test_status_shows_the_whole_failure_domain_stopping_while_a_stop_runs(
    recorded: LibvirtSubstrate, libvirt: FakeLibvirt, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, str]] = []
    answer = libvirt.__call__

    def spy(argv: Sequence[str], **kwargs: Any) -> Result:
        if list(argv[3:]) == ["shutdown", "default-cp-1"]:  # the first node of the domain goes down
            seen.append({str(n.name): n.state for n in lifecycle.status("default", check_ssh=False)})
        return answer(argv, **kwargs)

    monkeypatch.setattr(proc, "run", spy)
    labnodes.node_stop("default", "esx-01")
    assert {n for n, s in seen[0].items() if s == "stopping"} == {"esx-01", "lb-1", "cp-1"}
    after = {str(n.name): n.state for n in lifecycle.status("default", check_ssh=False)}
    assert {n for n, s in after.items() if s != "running"} == {"esx-01", "lb-1", "cp-1"}
    assert set(after.values()) == {"running", "stopped"}  # the marks are gone once they are off
