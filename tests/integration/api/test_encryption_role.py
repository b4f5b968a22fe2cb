"""roles/control_plane's API server unit, rendered by REAL ansible-playbook, passes the lab's encryption key.

The unit's ExecStart must be a command line nestlab-apiserver accepts, and its
``--encryption-provider-config`` must name the file the role installs: the config that
``nestlab up`` makes with the lab PKI (:func:`nestlab.provision.pki.ensure_encryption_config`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from nestlab.api import main
from nestlab.provision.pki import ENCRYPTION_CONFIG, ensure_encryption_config
from nestlab.runtime import proc

pytestmark = pytest.mark.integration
ROLE = Path(__file__).resolve().parents[3] / "roles" / "control_plane"
PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: ["{defaults}"]
  tasks:
    - name: Render the API server unit
      ansible.builtin.template:
        src: "{template}"
        dest: "{dest}"
        mode: "0644"
    - name: Render the audit policy the unit names
      ansible.builtin.template:
        src: "{policy_template}"
        dest: "{policy}"
        mode: "0644"
"""


def test_the_unit_passes_the_installed_encryption_config(tmp_path: Path) -> None:
    pki = tmp_path / "node" / "etc" / "pki"
    ensure_encryption_config(pki)  # where the role's copy task puts the lab's file
    unit = tmp_path / "nestlab-apiserver.service"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(
        defaults=ROLE / "defaults" / "main.yml", template=ROLE / "templates" / "nestlab-apiserver.service.j2", dest=unit,
        policy_template=ROLE / "templates" / "audit-policy.yaml.j2", policy=tmp_path / "audit-policy.yaml",
    ))  # fmt: skip
    variables = {
        "control_plane_pki_dir": str(pki),
        "control_plane_etcd_endpoints": "https://198.18.0.21:2379",
        "nestlab_services_cidr": "198.18.32.0/20",
        "nestlab_vip": "198.18.0.10",
        "nestlab_lab_name": "test",
        "control_plane_audit_policy": str(tmp_path / "audit-policy.yaml"),
        "ansible_python_interpreter": sys.executable,
    }
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", json.dumps(variables)]  # fmt: skip
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    proc.run(argv, timeout=300, env=env)

    text = unit.read_text().replace("\\\n", " ")
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    args = shlex.split(exec_start.removeprefix("ExecStart="))[1:]
    assert f"--encryption-provider-config={pki / ENCRYPTION_CONFIG}" in args
    _config, at_rest = main.parse(args)
    assert at_rest.describe() == "secrets -> aesgcm:key1"
    assert at_rest.source == str(pki / ENCRYPTION_CONFIG)
