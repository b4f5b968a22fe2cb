"""Running an exercise's commands (nestlab.exercises.runner) with a fake process runner and clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from nestlab.exercises.runner import Runner, StepError, lab_environment
from nestlab.runtime import proc

FENCE = "```"


class FakeProcesses:
    """Answers each bash command from a script: command text -> list of (code, stdout, stderr)."""

    def __init__(self, answers: dict[str, list[tuple[int, str, str]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[tuple[str, ...], float, dict[str, str], Path | None]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = True,
    ) -> proc.Result:
        assert check is False
        self.calls.append((tuple(argv), timeout, dict(env or {}), cwd))
        script = self.answers[argv[-1]]
        code, out, err = script.pop(0) if len(script) > 1 else script[0]
        if code == -1:
            raise proc.ProcessError(f"{argv[-1]} did not finish within {timeout:g}s")
        return proc.Result(tuple(argv), code, out, err)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def runner(fake: FakeProcesses, clock: Clock | None = None) -> Runner:
    clock = clock or Clock()
    return Runner({"PATH": "/bin"}, cwd=Path("/repo"), run=fake, clock=clock, sleep=clock.sleep)


def text(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_commands_run_in_bash_with_pipefail_in_the_repo_with_the_lab_env() -> None:
    fake = FakeProcesses({"kubectl get nodes": [(0, "NAME STATUS\nesx-01   Ready\n", "")]})
    env = lab_environment("e2e", Path("/labs/e2e/kubeconfig"), {"PATH": "/bin"})
    outcomes = Runner(env, cwd=Path("/repo"), run=fake).run_text(
        "x.md", text(FENCE + "console", "$ kubectl get nodes", "esx-01 Ready", FENCE)
    )
    argv, _timeout, seen_env, cwd = fake.calls[0]
    assert argv == ("bash", "-o", "pipefail", "-c", "kubectl get nodes")
    assert seen_env == {"PATH": "/bin", "NESTLAB_LAB": "e2e", "KUBECONFIG": "/labs/e2e/kubeconfig"}
    assert cwd == Path("/repo")
    assert [o.returncode for o in outcomes] == [0]


def test_stderr_counts_as_output() -> None:
    fake = FakeProcesses({"k": [(1, "", "Error from server (Forbidden): exceeded quota\n")]})
    doc = text("<!-- run: exit=1 -->", FENCE + "console", "$ k", "...exceeded quota...", FENCE)
    runner(fake).run_text("x.md", doc)


def test_a_pattern_that_matches_nothing_names_file_line_command_pattern_and_output() -> None:
    fake = FakeProcesses({"kubectl get pods": [(0, "web   0/1   Pending\n", "")]})
    doc = text("# T", FENCE + "console", "$ kubectl get pods", "web   1/1   Running", FENCE)
    with pytest.raises(StepError) as caught:
        runner(fake).run_text("docs/exercises/09-x.md", doc)
    message = str(caught.value)
    assert message.startswith("docs/exercises/09-x.md:3: `kubectl get pods`")
    assert "docs/exercises/09-x.md:4: 'web   1/1   Running'" in message
    assert "web   0/1   Pending" in message


def test_a_wrong_exit_status_fails_even_when_the_output_matches() -> None:
    fake = FakeProcesses({"false": [(1, "", "")]})
    with pytest.raises(StepError, match="exit status 1, expected 0"):
        runner(fake).run_text("x.md", text(FENCE + "console", "$ false", FENCE))


def test_retry_runs_again_every_two_seconds_until_it_fits() -> None:
    fake = FakeProcesses({"get": [(0, "Pending\n", ""), (0, "Pending\n", ""), (0, "Running\n", "")]})
    clock = Clock()
    doc = text("<!-- run: retry=10 -->", FENCE + "console", "$ get", "Running", FENCE)
    (outcome,) = runner(fake, clock).run_text("x.md", doc)
    assert (outcome.tries, clock.now) == (3, 4.0)


def test_retry_gives_up_at_its_deadline_with_the_last_output() -> None:
    fake = FakeProcesses({"get": [(0, "Pending\n", "")]})
    clock = Clock()
    doc = text("<!-- run: retry=10 -->", FENCE + "console", "$ get", "Running", FENCE)
    with pytest.raises(StepError, match=r"(?s)tried 6 times over 10s.*Pending"):
        runner(fake, clock).run_text("x.md", doc)


def test_a_command_that_times_out_is_a_failed_try() -> None:
    fake = FakeProcesses({"sleep 999": [(-1, "", "")]})
    with pytest.raises(StepError, match="exit status 124"):
        runner(fake).run_text("x.md", text(FENCE + "console", "$ sleep 999", FENCE))


def test_skipped_commands_are_not_run_and_a_failure_stops_the_run() -> None:
    fake = FakeProcesses({"a": [(3, "", "")], "b": [(0, "", "")]})
    doc = text(
        "<!-- run: skip (shell) -->", FENCE + "console", "$ b", FENCE, FENCE + "console", "$ a", "$ b", FENCE
    )
    with pytest.raises(StepError):
        runner(fake).run_text("x.md", doc)
    assert [call[0][-1] for call in fake.calls] == ["a"]


def test_format_errors_fail_before_anything_runs() -> None:
    fake = FakeProcesses({})
    with pytest.raises(StepError, match=r"x\.md: line 1: unknown run directive"):
        runner(fake).run_text("x.md", text("<!-- run: nope -->", FENCE + "console", "$ a", FENCE))
    assert fake.calls == []


def test_rewrite_changes_what_bash_runs() -> None:
    fake = FakeProcesses({"python -m x check 1": [(0, "", "")]})
    Runner({}, run=fake, rewrite=lambda t: t.replace("nestlab exercise", "python -m x")).run_text(
        "x.md", text(FENCE + "console", "$ nestlab exercise check 1", FENCE)
    )
    assert fake.calls[0][0][-1] == "python -m x check 1"


def test_run_file_names_the_file_relative_to_the_repo(tmp_path: Path) -> None:
    path = tmp_path / "01-x.md"
    path.write_text(text(FENCE + "console", "$ false", FENCE))
    with pytest.raises(StepError, match=f"^{path}:2:"):
        runner(FakeProcesses({"false": [(1, "", "")]})).run_file(path)
