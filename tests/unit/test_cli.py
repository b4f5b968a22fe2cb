"""The nestlab command: plan output, exit codes, and one clear line per problem for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nestlab.cli import COMMANDS, LazyGroup, cli
from nestlab.runtime import proc
from tests.unit.spec.helpers import spec_yaml


@pytest.fixture(autouse=True)
def _no_kvm_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NESTLAB_ACCEL", "tcg")
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))


def write(tmp_path: Path, section: dict[str, object]) -> str:
    path = tmp_path / "lab.yaml"
    path.write_text(spec_yaml(section))
    return str(path)


def test_plan_default_spreads_control_plane() -> None:
    result = CliRunner().invoke(cli, ["plan", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    hosts = {n["name"]: n["placedOn"] for n in document["nodes"] if n["role"] == "control-plane"}
    assert sorted(hosts) == ["cp-1", "cp-2", "cp-3"]
    assert len(set(hosts.values())) == 3
    assert document["precheck"]["accelerator"] == {"name": "tcg", "reason": "NESTLAB_ACCEL=tcg"}
    assert {r["resource"] for r in document["precheck"]["resources"]} == {"cpu", "memory", "disk"}


def test_plan_table_shows_nodes_domains_and_precheck() -> None:
    result = CliRunner().invoke(cli, ["plan"])
    assert result.exit_code == 0, result.output
    for text in ("cp-1", "198.18.0.21", "Failure domains", "Pre-check", "accelerator for pod microVMs: tcg"):
        assert text in result.output


def test_unsatisfiable_anti_affinity_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", write(tmp_path, {"hosts": {"count": 2}})])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "spec.controlPlane.count" in lines[0]
    assert "set spec.hosts.count: 3, or set spec.controlPlane.antiAffinity: false" in lines[0]
    assert "Traceback" not in result.output


def test_anti_affinity_off_succeeds_with_warning(tmp_path: Path) -> None:
    spec = write(tmp_path, {"hosts": {"count": 2}, "controlPlane": {"antiAffinity": False}})
    result = CliRunner().invoke(cli, ["plan", spec])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output
    assert "share the failure domain of esx-01" in result.output


def test_missing_spec_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the spec" in result.output


def test_version_and_help() -> None:
    runner = CliRunner()
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0
    assert version.output.startswith("nestlab, version ")
    help_text = runner.invoke(cli, ["--help"]).output
    assert "plan" in help_text
    assert "attest" in help_text
    assert "Benchmarks are scripts in bench/" in help_text


def test_attest_names_the_hosts_when_given_a_node_that_is_not_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    lab = tmp_path / "labs" / "t1"
    lab.mkdir(parents=True)
    (lab / "spec.yaml").write_text("apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t1}\n")
    result = CliRunner().invoke(cli, ["attest", "cp-1", "--name", "t1"])
    assert result.exit_code == 2
    assert "'cp-1' is not a host of lab t1 (hosts: esx-01, esx-02, esx-03)" in result.output


def test_attest_without_a_lab_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["attest", "--name", "nolab"])
    assert result.exit_code == 2
    assert "no lab named 'nolab'" in result.output


def test_up_on_libvirt_without_pulumi_stops_before_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no pulumi CLI anywhere on PATH
    result = CliRunner().invoke(
        cli, ["up", "--substrate", "libvirt", "--image", str(tmp_path / "node.qcow2")]
    )
    assert result.exit_code == 2
    assert "the pulumi CLI is not on PATH" in result.output
    assert "The local substrate needs no Pulumi" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "home" / "labs").exists(), "nothing was created"


def test_plan_exits_non_zero_when_the_precheck_fails(tmp_path: Path) -> None:
    spec = write(tmp_path, {"hosts": {"count": 3, "memory": "64TiB"}})
    result = CliRunner().invoke(cli, ["plan", spec])
    assert result.exit_code == 2
    assert "Pre-check" in result.output
    assert "the pre-check fails (memory)" in result.output
    assert "--force" in result.output


def test_a_spec_with_a_key_twice_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nspec:\n  hosts: {count: 3}\n  hosts: {count: 2}\n"
    )
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.exit_code == 2
    assert "line 5: key 'hosts' appears twice in one mapping (first on line 4)" in result.output
    assert "Traceback" not in result.output


def test_a_spec_that_is_not_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_bytes(b"apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata:\n  name: caf\xe9\n")
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.exit_code == 2
    assert "line 4: is not UTF-8 (byte 0xe9" in result.output
    assert "save the file as UTF-8" in result.output


def test_every_command_of_the_table_loads_under_its_name_and_help_lists_them() -> None:
    context = click.Context(cli)
    assert cli.list_commands(context) == sorted(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None
        assert command.name == name
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:")[1]
    assert all(f"\n  {name} " in listed for name in COMMANDS)
    assert cli.get_command(context, "no-such-command") is None


def test_a_table_entry_that_is_not_its_command_is_refused() -> None:
    group = LazyGroup(name="t", lazy={"up": "nestlab.commands.lab:down"})
    with pytest.raises(TypeError, match="is not the click command 'up'"):
        group.get_command(click.Context(group), "up")


@pytest.mark.parametrize(
    ("argv", "kept_out"),
    [
        (["ssh", "--help"], {"nestlab.lifecycle", "nestlab.maintenance", "nestlab.api.client"}),
        (["node", "stop", "--help"], {"nestlab.lifecycle", "nestlab.api.client"}),
        (["credential", "--help"], {"nestlab.lifecycle", "nestlab.provision.pki", "nestlab.dashboard.app"}),
    ],
)
def test_a_command_loads_only_its_own_modules(argv: list[str], kept_out: set[str]) -> None:
    """`nestlab ssh` and kubectl's credential plugin run hundreds of times: they must not load the
    lifecycle (the API client, provisioning, image builders) nor the other commands."""
    script = (
        "import sys; from nestlab.cli import cli; "
        f"cli.main({argv!r}, prog_name='nestlab', standalone_mode=False); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('nestlab'))))"
    )
    result = proc.run([sys.executable, "-c", script], timeout=60)
    loaded = set(result.stdout.split())
    assert "nestlab.cli" in loaded
    assert loaded & kept_out == set(), f"{argv} loaded {sorted(loaded & kept_out)}"
