"""Provisioning progress from REAL ansible-runner events: a two-play playbook run on this machine
(connection local, into a temp dir) becomes one step per play with its tasks and hosts."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nestlab.progress import PlainProgress
from nestlab.provision.events import Tally
from nestlab.provision.playprogress import PlayProgress, count_plays

pytestmark = pytest.mark.integration

PLAYBOOK = """\
- name: Prepare the scratch directory
  hosts: all
  gather_facts: false
  tasks:
    - name: Make the directory
      ansible.builtin.file: {{path: "{scratch}/d", state: directory, mode: "0755"}}
    - name: Write a file
      ansible.builtin.copy: {{dest: "{scratch}/d/f", content: "x\\n", mode: "0644"}}
- name: Check it
  hosts: local
  gather_facts: false
  tasks:
    - name: Read the file
      ansible.builtin.slurp: {{src: "{scratch}/d/f"}}
"""


def run(tmp_path: Path, estimates: dict[str, int] | None = None) -> tuple[list[str], PlayProgress, Tally]:
    import ansible_runner

    scratch = tmp_path / "scratch"
    text = PLAYBOOK.format(scratch=scratch)
    (tmp_path / "project").mkdir(exist_ok=True)
    (tmp_path / "runner").mkdir(exist_ok=True)
    playbook = tmp_path / "project" / "play.yml"
    playbook.write_text(text)
    inventory: dict[str, Any] = {
        "all": {"children": {"local": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}
    }  # fmt: skip
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    lines: list[str] = []
    plays = PlayProgress(
        PlainProgress(lines.append, stamp=None),
        plays=count_plays(text),
        inventory=inventory,
        estimates=estimates,
    )
    tally = Tally()

    def on_event(event: dict[str, Any]) -> bool:
        tally.feed(event)
        plays.feed(event)
        return True

    result = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        project_dir=str(tmp_path / "project"),
        playbook=str(playbook),
        inventory=str(tmp_path / "inventory.yml"),
        envvars={
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_NOCOLOR": "True",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        },
        event_handler=on_event,
        quiet=True,
        timeout=300,
    )
    plays.finish(failed=result.status != "successful")
    assert result.status == "successful", lines
    return lines, plays, tally


def test_real_events_become_one_step_per_play(tmp_path: Path) -> None:
    lines, plays, tally = run(tmp_path)
    assert lines[0] == "play 1/2: Prepare the scratch directory ..."
    assert lines[1].startswith(
        "play 1/2: Prepare the scratch directory: done, 2 tasks on 1 host(s), 2 changed ("
    )
    assert lines[2] == "play 2/2: Check it ..."
    assert lines[3].startswith("play 2/2: Check it: done, 1 tasks on 1 host(s), 0 changed (")
    assert plays.task_counts() == {"Prepare the scratch directory": 2, "Check it": 1}
    assert tally.total_changed == 2
    again, _, _ = run(tmp_path, estimates=plays.task_counts())  # the second run knows its totals
    assert "play 1/2: Prepare the scratch directory: 100% of 2 tasks (Write a file (1/1 hosts))" in again
    done = [line for line in again if "Prepare the scratch directory: done" in line]
    assert done[0].startswith(
        "play 1/2: Prepare the scratch directory: done, 2 tasks on 1 host(s), 0 changed ("
    )
