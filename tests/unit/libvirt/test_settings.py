"""Stack config -> StackSettings: every key checked, every problem reported at once, before resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.errors import EXIT_BAD_INPUT
from nestlab.spec.model import SubstrateType
from nestlab.substrate.libvirt.settings import DEFAULT_URI, StackConfigError, read_settings
from tests.unit.libvirt.harness import ROOT, TEST_KEY


def _config(**values: str) -> dict[str, object]:
    config: dict[str, object] = {
        "nestlab:spec": "stacks/default.lab.yaml",
        "nestlab:image": "/images/node.qcow2",
        "nestlab:sshPublicKey": TEST_KEY,
    }
    config.update({f"nestlab:{key}": value for key, value in values.items()})
    return {key: value for key, value in config.items() if value != ""}


def test_a_local_spec_becomes_one_local_hypervisor_and_defaults_apply(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    settings = read_settings(_config(), base_dir=ROOT)
    assert settings.spec_path == ROOT / "stacks" / "default.lab.yaml"
    assert settings.plan.lab.substrate.type is SubstrateType.LIBVIRT
    assert settings.uris == (DEFAULT_URI,)
    assert (settings.pool, settings.domain_type) == ("default", "kvm")
    assert settings.state_dir == tmp_path / "labs" / "default"
    assert settings.files.inventory == tmp_path / "labs" / "default" / "inventory.yml"


def test_relative_paths_start_at_the_project_directory_and_urls_stay(tmp_path: Path) -> None:
    settings = read_settings(_config(image="images/node.qcow2", stateDir="state"), base_dir=ROOT)
    assert settings.image == str(ROOT / "images" / "node.qcow2")
    assert settings.state_dir == ROOT / "state"
    url = read_settings(_config(image="https://depot.example/node.qcow2"), base_dir=ROOT)
    assert url.image == "https://depot.example/node.qcow2"


def test_the_key_defaults_to_the_labs_own_key_under_the_state_dir(tmp_path: Path) -> None:
    key = tmp_path / "ssh" / "id_ed25519.pub"
    key.parent.mkdir()
    key.write_text(TEST_KEY + "\n")
    settings = read_settings(_config(sshPublicKey="", stateDir=str(tmp_path)), base_dir=ROOT)
    assert settings.ssh_public_key == TEST_KEY


def test_a_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(StackConfigError, match=r"ssh-keygen -t ed25519 .*id_ed25519"):
        read_settings(_config(sshPublicKey="", stateDir=str(tmp_path)), base_dir=ROOT)


def test_every_problem_is_reported_at_once_with_exit_code_2() -> None:
    config = _config(image="", domainType="xen", flavour="big")
    with pytest.raises(StackConfigError) as caught:
        read_settings(config, base_dir=ROOT)
    lines = str(caught.value).splitlines()
    assert lines[0] == "bad stack configuration:"
    assert any(
        line.startswith("nestlab:flavour is not a setting") and "sshPublicKeyFile" in line for line in lines
    )
    assert any(line.startswith("nestlab:image is not set") and "pulumi config set" in line for line in lines)
    assert any(line.startswith("nestlab:domainType is 'xen'") for line in lines)
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_keys_of_other_namespaces_are_not_ours_to_refuse() -> None:
    settings = read_settings(
        {**_config(), "libvirt:uri": "qemu:///session", "aws:region": "x"}, base_dir=ROOT
    )
    assert settings.uris == (DEFAULT_URI,)


def test_both_key_settings_at_once_is_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(StackConfigError, match="both set"):
        read_settings(_config(sshPublicKeyFile=str(tmp_path / "k.pub")), base_dir=ROOT)


def test_a_key_that_is_not_an_openssh_line_is_refused() -> None:
    with pytest.raises(StackConfigError, match="OpenSSH public key"):
        read_settings(_config(sshPublicKey="-----BEGIN OPENSSH PRIVATE KEY-----"), base_dir=ROOT)


def test_a_spec_refused_by_validation_keeps_the_field_path(tmp_path: Path) -> None:
    spec = tmp_path / "x.lab.yaml"
    spec.write_text("apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nspec:\n  hosts: {count: 0}\n")
    with pytest.raises(StackConfigError, match=r"spec\.hosts\.count"):
        read_settings(_config(spec=str(spec)), base_dir=ROOT)


def test_the_multi_lab_spreads_over_its_three_uris() -> None:
    settings = read_settings(_config(spec="stacks/multi.lab.yaml"), base_dir=ROOT)
    assert len(settings.uris) == 3
    assert all(uri.startswith("qemu+ssh://") for uri in settings.uris)
    control_plane = [n for n in settings.plan.nodes if str(n.role) == "control-plane"]
    assert sorted(n.hypervisor for n in control_plane) == [0, 1, 2]
