"""The VXLAN mesh's pure parts: SSH targets from libvirt URIs, ids, and the scripts' shape."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from nestlab.errors import UsageError
from nestlab.substrate.libvirt import overlay
from nestlab.substrate.libvirt.settings import StackConfigError, read_settings
from tests.unit.libvirt.harness import ROOT, TEST_KEY


def test_ssh_target_takes_user_host_and_port_from_the_uri() -> None:
    target = overlay.ssh_target("qemu+ssh://admin@hv-2.example:2222/system?keyfile=/k")
    assert target == overlay.SshTarget("hv-2.example", "admin", 2222)
    assert target.argv("true") == ["ssh", "-o", "BatchMode=yes", "-p", "2222", "admin@hv-2.example", "true"]
    assert overlay.ssh_target("qemu+ssh://hv-3/system").argv() == ["ssh", "-o", "BatchMode=yes", "hv-3"]


def test_a_uri_without_a_host_cannot_join_a_mesh() -> None:
    with pytest.raises(UsageError, match="names no host"):
        overlay.ssh_target("qemu:///system")


def test_vni_is_24_bit_stable_and_differs_between_labs() -> None:
    assert overlay.vni("multi") == overlay.vni("multi")
    assert 1 <= overlay.vni("multi") < 1 << 24
    assert len({overlay.vni(f"lab{i}") for i in range(50)}) == 50


def test_ssh_line_survives_both_shells() -> None:
    script = overlay.join_script("multi", "lv-multi", ["hv-2", "hv 3"])
    line = overlay.ssh_line(overlay.SshTarget("hv-1", "root"), script)
    local = shlex.split(line)
    assert local[:4] == ["ssh", "-o", "BatchMode=yes", "root@hv-1"]
    remote = shlex.split(local[4])
    assert remote == ["sh", "-c", script]
    assert "for peer in hv-2 'hv 3'; do" in script


def test_a_multi_hypervisor_spec_with_a_local_uri_is_refused_before_resources(tmp_path: Path) -> None:
    spec = tmp_path / "mixed.lab.yaml"
    spec.write_text(
        "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: mixed}\nspec:\n"
        "  substrate: {type: libvirt, uris: ['qemu:///system', 'qemu+ssh://root@hv-2/system']}\n"
        "  controlPlane: {antiAffinity: false}\n"
    )
    config = {"nestlab:spec": str(spec), "nestlab:image": "/i.qcow2", "nestlab:sshPublicKey": TEST_KEY}
    with pytest.raises(StackConfigError, match=r"qemu:///system names no host"):
        read_settings(config, base_dir=ROOT)
