"""Provisioning triggers: the digests change exactly when the plan or the roles change."""

from __future__ import annotations

import shlex
from pathlib import Path

from nestlab.spec import make_plan, parse_spec
from nestlab.substrate.libvirt import provisioning
from tests.unit.spec.helpers import spec_yaml


def test_plan_digest_is_stable_and_follows_the_plan() -> None:
    first = provisioning.plan_digest(make_plan(parse_spec(spec_yaml())))
    again = provisioning.plan_digest(make_plan(parse_spec(spec_yaml())))
    bigger = provisioning.plan_digest(make_plan(parse_spec(spec_yaml({"hosts": {"count": 4}}))))
    assert first == again
    assert bigger != first


def test_roles_digest_follows_content_and_names_under_roles_and_playbooks(tmp_path: Path) -> None:
    (tmp_path / "roles" / "etcd" / "tasks").mkdir(parents=True)
    (tmp_path / "playbooks").mkdir()
    task = tmp_path / "roles" / "etcd" / "tasks" / "main.yml"
    task.write_text("- name: a\n")
    (tmp_path / "playbooks" / "site.yml").write_text("- hosts: all\n")
    before = provisioning.roles_digest(tmp_path)
    (tmp_path / "README.md").write_text("not provisioned\n")
    assert provisioning.roles_digest(tmp_path) == before
    task.write_text("- name: b\n")
    changed = provisioning.roles_digest(tmp_path)
    assert changed != before
    task.rename(task.with_name("other.yml"))
    assert provisioning.roles_digest(tmp_path) not in {before, changed}


def test_command_line_quotes_paths_and_verifies_after_provisioning() -> None:
    line = provisioning.command_line(Path("/s p/lab.yaml"), Path("/state/inventory.yml"))
    provision, verify = line.split(" && ")
    assert shlex.split(provision) == [
        "nestlab", "provision", "--inventory", "/state/inventory.yml", "--spec", "/s p/lab.yaml",
    ]  # fmt: skip
    assert shlex.split(verify) == ["nestlab", "verify", "--inventory", "/state/inventory.yml"]
