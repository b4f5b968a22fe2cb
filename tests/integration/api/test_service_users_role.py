"""roles/control_plane runs nestlab-apiserver and nestlab-controller as their own system users, and
gives each the files it reads (REAL ansible-playbook: the role's syntax, its units rendered).

Every file the API server's unit names must be readable by its user: the node's certificate and
key from the API server's own copy (the common one stays root's 0600), the signing keys and the
encryption configuration owned by it; the controller's key owned by the controller's user.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nestlab.runtime import proc

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "control_plane"
PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: ["{defaults}"]
  tasks:
    - name: Render the units
      ansible.builtin.template:
        src: "{templates}/{{{{ item }}}}.service.j2"
        dest: "{dest}/{{{{ item }}}}.service"
        mode: "0644"
      loop: [nestlab-apiserver, nestlab-controller]
"""
SYNTAX = """\
- hosts: control_plane
  roles: [control_plane]
"""


def ansible(tmp_path: Path, *args: str) -> proc.Result:
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
    }
    return proc.run([str(Path(sys.executable).parent / "ansible-playbook"), *args], timeout=300, env=env)


def exec_args(unit: Path) -> list[str]:
    text = unit.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))[1:]


def tasks(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((ROLE / "tasks" / name).read_text()))


def test_the_role_passes_ansible_syntax_check(tmp_path: Path) -> None:
    playbook = tmp_path / "syntax.yml"
    playbook.write_text(SYNTAX)
    ansible(tmp_path, "--syntax-check", "-i", "localhost,", str(playbook))


def test_units_run_as_their_users_and_read_only_their_files(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        PLAYBOOK.format(defaults=ROLE / "defaults" / "main.yml", templates=ROLE / "templates", dest=tmp_path)
    )
    variables = {
        "control_plane_etcd_endpoints": "https://198.18.0.21:2379",
        "nestlab_services_cidr": "198.18.32.0/20",
        "nestlab_vip": "198.18.0.10",
        "nestlab_lab_name": "test",
        "nestlab_ingress_cidr": "198.18.8.0/24",
        "inventory_hostname": "cp-1",
        "ansible_python_interpreter": sys.executable,
    }
    ansible(tmp_path, "-i", "localhost,", str(playbook), "-e", json.dumps(variables))
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    apiserver, controller = (
        defaults["control_plane_apiserver_user"],
        defaults["control_plane_controller_user"],
    )
    api_unit = (tmp_path / "nestlab-apiserver.service").read_text()
    assert f"User={apiserver}\n" in api_unit
    assert f"Group={apiserver}\n" in api_unit
    ctl_unit = (tmp_path / "nestlab-controller.service").read_text()
    assert f"User={controller}\n" in ctl_unit
    assert f"Group={controller}\n" in ctl_unit

    own_dir = defaults["control_plane_apiserver_pki_dir"]
    files = {
        flag: value
        for flag, _, value in (a.partition("=") for a in exec_args(tmp_path / "nestlab-apiserver.service"))
        if value.startswith("/") and flag != "--audit-log-path"
    }
    for flag in ("--etcd-certfile", "--etcd-keyfile", "--tls-cert-file", "--tls-private-key-file"):
        assert files[flag].startswith(own_dir + "/"), flag  # its own copy, not root's
    # every key or secret the unit names from the common PKI directory is installed for its user
    owned = {
        str(task["ansible.builtin.copy"]["dest"]).replace("{{ item }}", str(item))
        for task in tasks("services.yml")
        if "ansible.builtin.copy" in task
        and task["ansible.builtin.copy"].get("owner") == "{{ control_plane_apiserver_user }}"
        for item in task.get("loop") or [""]
    }
    for flag in (
        "--encryption-provider-config",
        "--identity-signing-key",
        "--service-account-signing-key-file",
        "--registry-token-signing-key-file",
    ):
        wanted = files[flag].replace(defaults["control_plane_pki_dir"], "{{ control_plane_pki_dir }}")
        if flag == "--encryption-provider-config":
            wanted = "{{ control_plane_encryption_config }}"
        assert wanted in owned, (flag, owned)
    (controller_cert,) = [t for t in tasks("services.yml") if "client certificate" in t["name"]]
    assert controller_cert["ansible.builtin.copy"]["owner"] == "{{ control_plane_controller_user }}"
    assert defaults["control_plane_audit_log_owner"] == "{{ control_plane_apiserver_user }}"


def test_users_exist_before_the_tasks_that_give_them_files() -> None:
    order = [str(task.get("ansible.builtin.import_tasks") or "") for task in tasks("main.yml")]
    assert order.index("users.yml") < order.index("audit.yml") < order.index("services.yml")
    (create,) = [t for t in tasks("users.yml") if "ansible.builtin.user" in t]
    assert create["loop"] == ["{{ control_plane_apiserver_user }}", "{{ control_plane_controller_user }}"]
    assert create["ansible.builtin.user"]["system"] is True
