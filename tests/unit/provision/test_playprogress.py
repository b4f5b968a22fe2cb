"""ansible-runner events -> one progress step per play: tasks done (of the last run's count when
known), hosts that answered the running task, changed count; plays counted from the playbook."""

from __future__ import annotations

from typing import Any

from nestlab import paths
from nestlab.progress import PlainProgress
from nestlab.provision.playprogress import PlayProgress, count_plays, play_hosts

INVENTORY: dict[str, Any] = {
    "all": {
        "children": {
            "hosts": {"hosts": {"esx-01": {}, "esx-02": {}, "esx-03": {}}},
            "control_plane": {"hosts": {"cp-1": {}, "cp-2": {}, "cp-3": {}}},
            "depot": {"hosts": {"depot": {}}},
        }
    }
}


def event(kind: str, **data: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": data}


def ok(host: str, task: str, *, changed: bool = False) -> dict[str, Any]:
    return event("runner_on_ok", host=host, task=task, res={"changed": changed})


def run(events: list[dict[str, Any]], **kwargs: Any) -> tuple[list[str], PlayProgress]:
    lines: list[str] = []
    plays = PlayProgress(PlainProgress(lines.append, stamp=None), inventory=INVENTORY, **kwargs)
    for e in events:
        plays.feed(e)
    plays.finish()
    return lines, plays


RECORDED = [
    event("playbook_on_start"),
    event("playbook_on_play_start", play="Serve the lab depot", play_pattern="depot"),
    event("playbook_on_task_start", task="Install the registry"),
    ok("depot", "Install the registry", changed=True),
    event("playbook_on_task_start", task="Start the registry"),
    ok("depot", "Start the registry"),
    event("playbook_on_play_start", play="Run the control plane", play_pattern="control_plane"),
    *[e for t in ("Install etcd", "Start etcd") for e in (
        event("playbook_on_task_start", task=t), *[ok(h, t, changed=True) for h in ("cp-1", "cp-2", "cp-3")])],
    event("playbook_on_stats"),
]  # fmt: skip


def test_each_play_is_a_step_with_its_tasks_hosts_and_changes() -> None:
    lines, plays = run(RECORDED, plays=2)
    assert lines[0] == "play 1/2: Serve the lab depot ..."
    assert lines[1].startswith("play 1/2: Serve the lab depot: done, 2 tasks on 1 host(s), 1 changed (")
    assert lines[2] == "play 2/2: Run the control plane ..."
    assert lines[3].startswith("play 2/2: Run the control plane: done, 2 tasks on 3 host(s), 6 changed (")
    assert len(lines) == 4  # no line per task or host off a terminal
    assert plays.task_counts() == {"Serve the lab depot": 2, "Run the control plane": 2}


def test_last_runs_counts_are_the_totals() -> None:
    lines, _ = run(RECORDED, plays=2, estimates={"Run the control plane": 2})
    percent = [line for line in lines if "%" in line]
    assert percent[0] == "play 2/2: Run the control plane: 50% of 2 tasks (Install etcd (3/3 hosts))"
    assert percent[-1] == "play 2/2: Run the control plane: 100% of 2 tasks (Start etcd (3/3 hosts))"


def test_a_task_counts_as_done_only_when_every_host_answered() -> None:
    lines: list[str] = []
    plays = PlayProgress(
        PlainProgress(lines.append, stamp=None), plays=None, inventory=INVENTORY, estimates={"cp": 1}
    )
    plays.feed(event("playbook_on_play_start", play="cp", play_pattern="control_plane"))
    plays.feed(event("playbook_on_task_start", task="Install etcd"))
    plays.feed(ok("cp-1", "Install etcd"))
    plays.feed(ok("cp-2", "Install etcd"))
    assert lines == ["play 1: cp ..."]  # 2 of 3 hosts: the task is not done yet
    plays.feed(event("runner_on_failed", host="cp-3", task="Install etcd", res={"msg": "no"}))
    assert lines[-1] == "play 1: cp: 100% of 1 tasks (Install etcd (3/3 hosts))"
    plays.finish(failed=True)
    assert lines[-1].startswith("play 1: cp: FAILED: at task 'Install etcd' (")


def test_plays_of_the_real_site_playbook_are_counted() -> None:
    text = (paths.repo_root() / "playbooks" / "site.yml").read_text()
    assert count_plays(text) == text.count("\n- name:") + text.startswith("- name:")
    assert count_plays("- import_playbook: site.yml\n") is None
    assert count_plays(": not yaml: [") is None


def test_hosts_of_a_pattern() -> None:
    assert play_hosts("all", INVENTORY) == 7
    assert play_hosts("control_plane", INVENTORY) == 3
    assert play_hosts("esx-02", INVENTORY) == 1
    assert play_hosts("hosts:&control_plane", INVENTORY) is None
    assert play_hosts("all", {}) is None  # a limited run passes no inventory
