"""Run playbooks/site.yml against a lab through ansible-runner, streaming per-task progress.

ansible-runner owns the ansible-playbook process; this module gives it the inventory, the roles
path and a private data directory under the lab's state, and turns its events into progress (one
step per play: tasks done, hosts answered; :mod:`nestlab.provision.playprogress`), a line per failed
task, and a :class:`~nestlab.provision.events.ProvisionError` that names host, task and message.
Every task's full output is in ``logs/ansible.log``.

Tasks run through Mitogen for Ansible (strategy ``mitogen_linear``): one persistent Python
interpreter per node receives the modules over one SSH connection, where stock Ansible starts a
Python process and sends the module for every task on every host. On this machine's two cores that
overhead was most of the provisioning time: the ``common`` role on the nine nodes (16 tasks, nothing
to change) took 54-61 s with the stock ``linear`` strategy and 16 s with Mitogen, side by side.
``NESTLAB_ANSIBLE_STRATEGY=linear`` runs stock Ansible instead (to compare, or to rule Mitogen out).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nestlab import paths
from nestlab.errors import UsageError
from nestlab.paths import LabFiles
from nestlab.progress import as_progress
from nestlab.provision.events import ProvisionError, Tally
from nestlab.provision.inventory import inventory, ssh_config
from nestlab.provision.playprogress import PlayProgress, count_plays
from nestlab.spec.plan import Plan

Progress = Callable[[str], None]
TASK_COUNTS = "task-counts.json"  # per playbook and play: tasks of the last run, the next run's totals
PLAYBOOK_TIMEOUT_S = 3600  # a cold provisioning of nine nodes on two cores; normally minutes
STRATEGY_ENV = "NESTLAB_ANSIBLE_STRATEGY"
STRATEGIES = ("mitogen_linear", "linear")
"""The strategies ``NESTLAB_ANSIBLE_STRATEGY`` may name; the first is the default."""


def strategy_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The ansible-playbook environment that selects the task strategy (Mitogen unless told otherwise).

    Raises UsageError for an unknown strategy, or when Mitogen is wanted and not installed."""
    environ = dict(os.environ) if environ is None else environ
    wanted = environ.get(STRATEGY_ENV, "") or STRATEGIES[0]
    if wanted not in STRATEGIES:
        raise UsageError(
            f"{STRATEGY_ENV}={wanted!r} is not a strategy nestlab runs; use one of {', '.join(STRATEGIES)}"
        )
    if wanted == "linear":
        return {"ANSIBLE_STRATEGY": "linear"}
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        raise UsageError(
            f"Mitogen for Ansible is not installed: run `make bootstrap` (or set {STRATEGY_ENV}=linear)"
        )
    plugins = Path(spec.origin).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": wanted}


def write_inventory(plan: Plan, files: LabFiles) -> Path:
    """Write inventory.yml and ssh/config for the lab; returns the inventory path."""
    files.ssh_dir.mkdir(parents=True, exist_ok=True)
    files.inventory.write_text(yaml.safe_dump(inventory(plan, files), sort_keys=False), encoding="utf-8")
    files.ssh_config.write_text(ssh_config(plan, files), encoding="utf-8")
    return files.inventory


def run_playbook(
    plan: Plan,
    files: LabFiles,
    progress: Progress,
    *,
    playbook: str = "site.yml",
    limit: str | None = None,
    extravars: dict[str, Any] | None = None,
) -> Tally:
    """Run a playbook from playbooks/ on the lab; raise ProvisionError when any task fails.

    ``progress`` gets a step per play and a line per failed task (a :class:`~nestlab.progress.Progress`,
    or a plain callback that receives them as lines)."""
    import ansible_runner  # noqa: PLC0415 - heavy import (all of ansible), needed only here

    strategy = strategy_env()
    root = paths.repo_root()
    write_inventory(plan, files)
    data_dir = files.root / "ansible"
    if data_dir.exists():
        shutil.rmtree(data_dir / "artifacts", ignore_errors=True)
        # ansible-runner prefers env/ files of an earlier run over this run's envvars and extravars:
        # a checkout moved or cloned elsewhere would otherwise provision with the old roles path
        shutil.rmtree(data_dir / "env", ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    files.logs.mkdir(parents=True, exist_ok=True)
    log = files.logs / "ansible.log"
    tally = Tally()
    shown = as_progress(progress)
    counts_file = data_dir / TASK_COUNTS
    counts = _read_counts(counts_file)
    plays = PlayProgress(
        shown,
        plays=count_plays((root / "playbooks" / playbook).read_text(encoding="utf-8")),
        inventory={} if limit else inventory(plan, files),  # a limit makes the play's hosts unknown
        estimates=counts.get(playbook, {}),
    )
    shown(f"ansible log: {log}")

    def on_event(event: dict[str, Any]) -> bool:
        line = tally.feed(event)
        if line is not None and line.lstrip().startswith(("FAILED", "UNREACHABLE")):
            shown(line)  # plays, tasks and changes are the steps' business; the log has every line
        plays.feed(event)
        return True

    result = ansible_runner.run(
        private_data_dir=str(data_dir),
        project_dir=str(root / "playbooks"),
        playbook=str(root / "playbooks" / playbook),
        inventory=str(files.inventory),
        limit=limit,
        extravars={"nestlab_state_dir": str(files.root), **(extravars or {})},
        envvars={
            # the venv's ansible-playbook, whether or not the venv is on PATH
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_ROLES_PATH": str(root / "roles"),
            "ANSIBLE_LOG_PATH": str(log),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_FORKS": "10",
            "ANSIBLE_PIPELINING": "True",
            # ansible's default minus -C: compressing already-zipped modules and archives over a
            # local bridge only costs the two shared cores
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
            "ANSIBLE_NOCOLOR": "True",
            **strategy,
        },
        event_handler=on_event,
        quiet=True,
        timeout=PLAYBOOK_TIMEOUT_S,
    )
    failed = result.status != "successful" or bool(tally.failures)
    plays.finish(failed=failed)
    if failed:
        with result.stdout as output:
            raise ProvisionError(tally.failures, str(log), _tail(output.read()))
    if not limit:  # a limited run's counts are not the whole playbook's
        counts_file.write_text(
            json.dumps({**counts, playbook: plays.task_counts()}, indent=1) + "\n", encoding="utf-8"
        )
    return tally


def _read_counts(path: Path) -> dict[str, dict[str, int]]:
    try:
        counts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return counts if isinstance(counts, dict) else {}


def _tail(output: str) -> str:
    """The last lines of ansible-playbook's own output, for failures that happen before any task."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-500:]
