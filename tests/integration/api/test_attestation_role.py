"""roles/control_plane's attestation tasks, run by REAL ansible-playbook on this machine (into a temp dir).

They must install the policy and the CA, write a verifier.conf that nestlab-attest reads with no
flags (same paths the controller unit gets), link the command, and change nothing on a second run.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from nestlab.controller import attestcli
from nestlab.runtime import proc
from tests.integration.api.conftest import Pki

pytestmark = pytest.mark.integration
ROLES = Path(__file__).resolve().parents[3] / "roles"
PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Install the verifier's files
      ansible.builtin.include_role:
        name: control_plane
        tasks_from: attestation.yml
"""


def run_playbook(tmp_path: Path, variables: dict[str, str]) -> str:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook),
            "-e", json.dumps(variables)]  # fmt: skip
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
    }
    result = proc.run(argv, timeout=300, env=env)
    return result.stdout


def test_role_installs_policy_ca_config_and_command_idempotently(pki: Pki, tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "policy.json").write_text('{"name": "lab-default"}\n')
    (outer / "attest-ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    node = tmp_path / "node"
    (node / "venv" / "bin").mkdir(parents=True)
    (node / "venv" / "bin" / "nestlab-attest").write_text("#!/bin/sh\n")
    variables = {
        "control_plane_attestation_policy": str(outer / "policy.json"),
        "control_plane_attestation_ca": str(outer / "attest-ca.crt"),
        "control_plane_attestation_dir": str(node / "etc" / "attestation"),
        "control_plane_trust_dir": str(node / "etc" / "trust"),
        "control_plane_pki_dir": str(node / "etc" / "pki"),
        "control_plane_venv": str(node / "venv"),
        "control_plane_attest_command": str(node / "bin" / "nestlab-attest"),
        "ansible_python_interpreter": sys.executable,  # this machine's python3 may be a pyenv shim
    }
    (node / "bin").mkdir()
    (node / "etc" / "pki").mkdir(parents=True)  # what roles/common and services.yml put there
    for source, name in (
        (pki.ca, "ca.crt"),
        (pki.alice_cert, "controller.crt"),
        (pki.alice_key, "controller.key"),
    ):
        shutil.copy(source, node / "etc" / "pki" / name)
    first = run_playbook(tmp_path, variables)
    assert "changed=5" in first, first
    assert (node / "etc" / "attestation" / "policy.json").read_text() == '{"name": "lab-default"}\n'
    assert (node / "etc" / "trust" / "attest-ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (node / "bin" / "nestlab-attest").readlink() == node / "venv" / "bin" / "nestlab-attest"

    config = node / "etc" / "attestation" / "verifier.conf"
    options = attestcli.parse_args([], environ={attestcli.CONFIG_ENV: str(config)})
    assert options.credentials.server == "https://127.0.0.1:6443"
    assert options.credentials.ca == node / "etc" / "pki" / "ca.crt"
    assert options.credentials.cert == node / "etc" / "pki" / "controller.crt"
    assert options.credentials.key == node / "etc" / "pki" / "controller.key"
    assert options.settings.policy == node / "etc" / "attestation" / "policy.json"
    assert options.settings.attestation_ca == node / "etc" / "trust" / "attest-ca.crt"

    second = run_playbook(tmp_path, variables)
    assert "changed=0" in second, second
