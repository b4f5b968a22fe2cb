"""ansible-runner events become progress lines, changed counts and failures naming host/task/message."""

from __future__ import annotations

from typing import Any

from nestlab.provision.events import ProvisionError, Tally


def event(kind: str, **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": data}


RECORDED = [
    event("playbook_on_play_start", play="Configure every lab node"),
    event("playbook_on_task_start", task="Write the node's hostname"),
    event("runner_on_ok", host="esx-01", task="Write the node's hostname", res={"changed": True}),
    event("runner_on_ok", host="cp-1", task="Write the node's hostname", res={"changed": False}),
    event("playbook_on_task_start", task="Install the node's certificate"),
    event("runner_on_failed", host="cp-1", task="Install the node's certificate",
          res={"msg": "Could not find or access '/state/pki/cp-1.crt'\non the Ansible Controller."}),
    event("runner_on_failed", host="esx-01", task="Probe", ignore_errors=True, res={"msg": "ignored"}),
    event("runner_on_unreachable", host="lb-1", task="Write the node's hostname",
          res={"msg": "Failed to connect to the host via ssh: Connection refused"}),
]  # fmt: skip


def test_tally_of_a_recorded_run() -> None:
    tally = Tally()
    lines = [line for e in RECORDED if (line := tally.feed(e)) is not None]
    assert lines[0] == "play: Configure every lab node"
    assert "    changed: esx-01" in lines
    assert tally.total_changed == 1
    assert [(f.host, f.task, f.unreachable) for f in tally.failures] == [
        ("cp-1", "Install the node's certificate", False),
        ("lb-1", "Write the node's hostname", True),
    ]
    assert (
        tally.failures[0].message
        == "Could not find or access '/state/pki/cp-1.crt' on the Ansible Controller."
    )


def test_error_names_host_task_message_and_log() -> None:
    tally = Tally()
    for e in RECORDED:
        tally.feed(e)
    text = str(ProvisionError(tally.failures, "/state/logs/ansible.log"))
    assert text.splitlines() == [
        "cp-1: task \"Install the node's certificate\" failed: Could not find or access '/state/pki/cp-1.crt' on the Ansible Controller.",
        'lb-1: task "Write the node\'s hostname" unreachable: Failed to connect to the host via ssh: Connection refused',
        "full log: /state/logs/ansible.log",
    ]


def test_failure_without_message_points_at_the_log() -> None:
    tally = Tally()
    tally.feed(event("runner_on_failed", host="depot", task="x", res={}))
    assert tally.failures[0].message == "no message (see the full log)"


def test_a_failed_command_shows_its_own_error_output_not_ansibles_summary() -> None:
    tally = Tally()
    res = {
        "msg": "non-zero return code",
        "rc": 100,
        "stderr": "W: GPG error: ...\nNO_PUBKEY 52C2972E8582C9EC\n",
    }
    tally.feed(event("runner_on_failed", host="esx-01", task="Fetch the index", res=res))
    assert tally.failures[0].message == "exit 100: W: GPG error: ... NO_PUBKEY 52C2972E8582C9EC"
