"""The local substrate end to end, through the real `nestlab` command: up -> second up changes
nothing -> provision and verify -> a host's failure domain stops and starts -> a failed
provisioning names host, task and message -> down leaves no bridge, veth, mount, process or state
directory.

Tests share one lab (the session fixture); the one marked lab_teardown takes it down, after all others.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nestlab.paths import LabFiles
from nestlab.provision.ansible import run_playbook
from nestlab.provision.events import ProvisionError
from nestlab.runtime import proc
from nestlab.spec import load_spec, make_plan
from tests.e2e.conftest import LiveLab, nestlab

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def reachable(lab: LiveLab) -> dict[str, bool]:
    rows = json.loads(nestlab("status", "--name", lab.name, "--json").stdout)
    return {row["name"]: row["reachable"] for row in rows}


def test_up_builds_the_teaching_lab(lab_up: LiveLab) -> None:
    assert f"lab {lab_up.name} is up" in lab_up.up_output
    assert reachable(lab_up) == dict.fromkeys(
        ["esx-01", "esx-02", "esx-03", "depot", "lb-1", "lb-2", "cp-1", "cp-2", "cp-3"], True
    )


def test_second_up_changes_nothing(lab_up: LiveLab) -> None:
    result = nestlab("up", str(lab_up.spec), "--name", lab_up.name, timeout=1200)
    assert f"lab {lab_up.name} is up; nothing to do" in result.stdout


def test_provision_and_verify_commands_on_running_nodes(lab_up: LiveLab) -> None:
    """The commands the Pulumi program runs after creating VMs, here on the local lab's nodes. The
    lab's one testinfra run (`verify --name` reaches the same files: tests/unit/test_lifecycle_verify.py)."""
    inventory = str(lab_up.files.inventory)
    provisioned = nestlab(
        "provision", "--spec", str(lab_up.spec), "--name", lab_up.name, "--inventory", inventory
    )
    assert "provisioned: 0 change(s) applied" in provisioned.stdout
    result = nestlab("verify", "--inventory", inventory, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "verify passed" in result.stdout


def test_stopping_a_host_stops_its_failure_domain(lab_up: LiveLab) -> None:
    stopped = nestlab("node", "stop", "esx-02", "--name", lab_up.name)
    assert stopped.stdout.strip() == "stopped: esx-02, lb-2, cp-2"
    try:
        after = reachable(lab_up)
        assert {name for name, ok in after.items() if not ok} == {"esx-02", "lb-2", "cp-2"}
    finally:
        nestlab("node", "start", "esx-02", "--name", lab_up.name)
    assert all(reachable(lab_up).values())


def test_failed_provisioning_names_host_task_and_message(lab_up: LiveLab) -> None:
    plan = make_plan(load_spec(lab_up.spec, name=lab_up.name))
    lines: list[str] = []
    with pytest.raises(ProvisionError) as caught:
        # /etc/hostname is a file, so a directory below it cannot be made: a real task failure.
        run_playbook(
            plan, lab_up.files, lines.append, limit="cp-1", extravars={"common_pki_dir": "/etc/hostname/pki"}
        )
    failures = caught.value.failures
    assert [(f.host, f.task) for f in failures] == [("cp-1", "Create the PKI directory")]
    assert failures[0].message
    assert str(caught.value).startswith('cp-1: task "Create the PKI directory" failed: ')
    assert any("FAILED cp-1" in line for line in lines)


@pytest.mark.lab_teardown
def test_down_leaves_nothing(lab_up: LiveLab) -> None:
    machines = [f"{lab_up.name}-{n}" for n in ("esx-01", "cp-1", "lb-1", "depot")]
    nestlab("down", "--name", lab_up.name, timeout=600)
    links = proc.run(["ip", "-o", "link", "show"], timeout=30).stdout
    assert f"nl-{lab_up.name}:" not in links
    assert "vb-e2e" not in links  # nspawn's veth ends are named vb-<machine>
    assert str(lab_up.files.root) not in Path("/proc/self/mountinfo").read_text()
    processes = proc.run(["ps", "-eo", "args"], timeout=30).stdout
    assert not [line for line in processes.splitlines() if any(f"--machine={m}" in line for m in machines)]
    assert not LabFiles.named(lab_up.name).root.exists()
