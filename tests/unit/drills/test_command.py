"""`nestlab drill`: the list, and bad input as one line with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nestlab.commands import drill as command
from nestlab.commands.drill import drill
from nestlab.drills import catalog

NAMES = [
    "host-failure",
    "host-restart",
    "control-plane-leader-loss",
    "control-plane-leader-kill",
    "vip-holder-loss",
    "quorum-loss",
    "kernel-tamper",
    "rogue-measurement",
    "maintenance",
]


def test_list_names_every_drill_with_what_it_measures() -> None:
    result = CliRunner().invoke(drill, ["--list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == NAMES
    assert catalog.names() == NAMES


def test_every_drill_explains_itself_in_a_few_lines() -> None:
    for item in catalog.DRILLS:
        assert 3 <= len(item.explanation) <= 6, item.name
        assert item.summary
        assert item.title


def test_an_unknown_drill_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(drill, ["host-explosion", "--name", "any"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: no drill named 'host-explosion'; drills: host-failure, ")


def test_no_drill_named_is_exit_2() -> None:
    result = CliRunner().invoke(drill, [])
    assert result.exit_code == 2
    assert "name a drill" in result.output


def test_a_lab_that_does_not_exist_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(drill, ["vip-holder-loss"], env={"NESTLAB_LAB": "nolab"})
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "no lab named 'nolab'" in result.output


def test_an_interrupted_drill_says_its_restore_ran_and_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "DrillLab", lambda _name: object())
    monkeypatch.setattr(command, "run", interrupted)
    monkeypatch.setattr(command, "_restore_on_signals", lambda: None)  # leave pytest's handlers alone
    result = CliRunner().invoke(drill, ["quorum-loss", "--name", "any"])
    assert result.exit_code == 130
    assert "drill quorum-loss: interrupted; its restore steps ran" in result.output


def test_sigterm_interrupts_like_ctrl_c() -> None:
    with pytest.raises(KeyboardInterrupt):
        command._interrupt(15, None)
