"""`nestlab up --substrate libvirt` without the pulumi CLI: a clear message, exit 2, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.errors import EXIT_BAD_INPUT, NestlabError, UsageError
from nestlab.runtime.proc import Result
from nestlab.spec import SpecError
from nestlab.substrate.libvirt import automation
from tests.unit.libvirt.harness import ROOT


def _no_pulumi(name: str) -> str | None:
    assert name == "pulumi"
    return None


def _never_run(argv, **kwargs) -> Result:
    raise AssertionError(f"nothing may run without pulumi, but {argv} was started")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_without_pulumi_up_says_how_to_install_it_and_that_local_needs_none(home: Path) -> None:
    request = automation.LabRequest(spec=ROOT / "stacks" / "default.lab.yaml", image="/x.qcow2")
    with pytest.raises(automation.PulumiNotInstalledError) as caught:
        automation.up(request, which=_no_pulumi, run=_never_run)
    message = str(caught.value)
    assert "pulumi CLI is not on PATH" in message
    assert "get.pulumi.com" in message
    assert "local substrate needs no Pulumi" in message
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert not home.exists()  # nothing was created before refusing


def test_without_pulumi_destroy_refuses_the_same_way(home: Path) -> None:
    request = automation.LabRequest(spec=ROOT / "stacks" / "default.lab.yaml", image="/x.qcow2")
    with pytest.raises(automation.PulumiNotInstalledError):
        automation.destroy(request, which=_no_pulumi)
    assert not home.exists()


def test_a_bad_spec_is_refused_before_pulumi_or_ssh_keygen_run(home: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.lab.yaml"
    spec.write_text("apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nspec:\n  controlPlane: {count: 4}\n")
    request = automation.LabRequest(spec=spec, image="/x.qcow2")
    with pytest.raises(SpecError, match=r"spec\.controlPlane\.count"):
        automation.up(request, which=lambda _: "/usr/bin/pulumi", run=_never_run)
    assert not home.exists()


def test_the_lab_key_is_made_once_with_ssh_keygen(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def keygen(argv, *, timeout, **kwargs) -> Result:
        calls.append(list(argv))
        private = Path(argv[argv.index("-f") + 1])
        private.write_text("private")
        private.with_suffix(".pub").write_text("ssh-ed25519 AAAA nestlab")
        return Result(tuple(argv), 0, "", "")

    public = automation.ensure_lab_key(tmp_path, run=keygen)
    assert public == tmp_path / "ssh" / "id_ed25519.pub"
    automation.ensure_lab_key(tmp_path, run=keygen)
    assert len(calls) == 1
    assert calls[0][:4] == ["ssh-keygen", "-q", "-t", "ed25519"]


def test_nestlab_up_sets_absolute_paths_and_the_labs_own_state(tmp_path: Path) -> None:
    request = automation.LabRequest(spec=Path("stacks/default.lab.yaml"), image="https://d/node.qcow2")
    config = automation.stack_config(request, tmp_path)
    assert Path(config["nestlab:spec"]).is_absolute()
    assert config["nestlab:image"] == "https://d/node.qcow2"
    assert config["nestlab:stateDir"] == str(tmp_path)
    assert config["nestlab:sshPublicKeyFile"] == str(tmp_path / "ssh" / "id_ed25519.pub")


def test_a_failing_pulumi_step_becomes_a_nestlab_error_naming_step_cause_and_state(tmp_path: Path) -> None:
    from pulumi import automation as auto
    from pulumi.automation._cmd import CommandResult

    failure = auto.CommandError(CommandResult(stdout="", stderr="error: libvirt: cannot connect", code=255))
    with pytest.raises(NestlabError) as caught, automation._pulumi_errors("up", tmp_path):
        raise failure
    message = str(caught.value)
    assert message.startswith("pulumi up failed: ")
    assert "cannot connect" in message
    assert str(tmp_path / "pulumi") in message
    assert caught.value.__cause__ is failure
