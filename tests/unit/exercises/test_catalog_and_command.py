"""The catalog (every exNN module, in order, each with its Markdown) and ``nestlab exercise``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from nestlab.commands import exercise as command
from nestlab.errors import UsageError
from nestlab.exercises import catalog
from nestlab.exercises.base import Exercise, Lab
from nestlab.paths import repo_root


def test_the_catalog_is_sorted_and_unique() -> None:
    numbers = [e.number for e in catalog.EXERCISES]
    assert numbers == sorted(set(numbers))
    assert {1, 2, 3, 4} <= set(numbers)


@pytest.mark.parametrize("exercise", catalog.EXERCISES, ids=[f"ex{e.number:02d}" for e in catalog.EXERCISES])
def test_every_exercise_has_its_markdown_with_its_title(exercise: Exercise) -> None:
    path = catalog.markdown_path(exercise)
    assert path.is_file(), f"exercise {exercise.number}: {path} is missing"
    assert path.read_text(encoding="utf-8").startswith(f"# Exercise {exercise.number}: {exercise.title}\n")


def test_find_takes_one_or_two_digits_and_refuses_others() -> None:
    assert catalog.find("3").number == 3
    assert catalog.find("03").number == 3
    for bad in ("99", "x", "-1"):
        with pytest.raises(UsageError, match=f"no exercise '{bad}'"):
            catalog.find(bad)


class Link:
    """The lab as the command sees it: up or not."""

    name = "fake"
    up = True

    def __init__(self, lab: str) -> None:
        self.lab = lab

    def require_up(self) -> None:
        if not self.up:
            raise UsageError("lab fake does not answer at https://x:6443 (refused): is it up?")


RESETS: list[int] = []


def fake(number: int, missing: list[str]) -> Exercise:
    def check(lab: Lab) -> list[str]:
        return missing

    def reset(lab: Lab) -> None:
        RESETS.append(number)

    return Exercise(number=number, slug="x", title=f"Title {number}", minutes=15, check=check, reset=reset)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(
        catalog, "EXERCISES", (fake(1, []), fake(2, ["pod web is missing", "quota is wrong"]))
    )
    monkeypatch.setattr(command, "LabLink", Link)
    Link.up = True
    RESETS.clear()
    return CliRunner()


def test_check_passed(cli: CliRunner) -> None:
    result = cli.invoke(command.exercise, ["check", "1", "--lab", "e2e"])
    assert (result.exit_code, result.output) == (0, "exercise 1: passed\n")


def test_check_not_done_lists_what_is_missing(cli: CliRunner) -> None:
    result = cli.invoke(command.exercise, ["check", "02"])
    assert result.exit_code == 1
    assert result.output == "- pod web is missing\n- quota is wrong\nexercise 2: not done yet\n"


@pytest.mark.parametrize("verb", ["check", "reset"])
def test_unknown_exercise_is_one_line_exit_2(cli: CliRunner, verb: str) -> None:
    result = cli.invoke(command.exercise, [verb, "14"])
    assert result.exit_code == 2
    assert result.output == "error: no exercise '14' (exercises: 1, 2; `nestlab exercise list`)\n"


@pytest.mark.parametrize("verb", ["check", "reset"])
def test_a_lab_that_is_not_up_is_one_line_exit_2(cli: CliRunner, verb: str) -> None:
    Link.up = False
    result = cli.invoke(command.exercise, [verb, "1"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "is it up?" in result.output
    assert RESETS == []


def test_reset(cli: CliRunner) -> None:
    result = cli.invoke(command.exercise, ["reset", "2"])
    assert (result.exit_code, result.output, RESETS) == (0, "exercise 2: reset\n", [2])


def test_list_without_and_with_checks(cli: CliRunner) -> None:
    plain = cli.invoke(command.exercise, ["list"])
    assert plain.exit_code == 0
    assert "Title 1" in plain.output
    assert "not checked" in plain.output
    checked = cli.invoke(command.exercise, ["list", "--check"])
    assert "done" in checked.output
    assert "not done" in checked.output


def test_show_prints_the_markdown_without_test_only_parts() -> None:
    result = CliRunner().invoke(command.exercise, ["show", "2"])
    assert result.exit_code == 0
    assert "A pod is a VM" in result.output
    assert "run: retry" not in result.output


def test_the_module_entry_point_runs_the_group() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nestlab.commands.exercise", "check", "77"],
        capture_output=True, text=True, cwd=repo_root(), check=False, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr.strip()) == (2, done.stderr.strip().splitlines()[0])
    assert "no exercise '77'" in done.stderr
