"""The exercise format, read as the test suite reads it (nestlab.exercises.markdown)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.exercises import markdown
from nestlab.exercises.markdown import Directive, FormatError, PatternLine
from nestlab.paths import repo_root

FENCE = "```"


def doc(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_commands_and_their_patterns_with_lines() -> None:
    text = doc(
        "# Exercise 9: X",
        "",
        FENCE + "console",
        "$ kubectl get pods",
        "NAME  READY",
        "",
        "web ...",
        "$ true",
        FENCE,
    )
    parsed = markdown.parse(text)
    (block,) = parsed.blocks
    assert block.line == 3
    first, second = block.commands
    assert (first.line, first.text) == (4, "kubectl get pods")
    assert first.patterns == (PatternLine(5, "NAME  READY"), PatternLine(7, "web ..."))
    assert (second.line, second.text, second.patterns) == (8, "true", ())
    assert parsed.title == "Exercise 9: X"


def test_continuation_lines_belong_to_the_command() -> None:
    text = doc(
        FENCE + "console",
        "$ kubectl create cm a \\",
        "    --from-literal=x=1 \\",
        "    --from-literal=y=2",
        "configmap/a created",
        FENCE,
    )
    (command,) = markdown.parse(text).commands()
    assert command.text == "kubectl create cm a \\\n    --from-literal=x=1 \\\n    --from-literal=y=2"
    assert command.patterns == (PatternLine(5, "configmap/a created"),)
    assert command.shown == "kubectl create cm a \\"


@pytest.mark.parametrize("opener", ["<<'EOF'", '<<"EOF"', "<<EOF", "<< EOF"])
def test_a_heredoc_is_input_not_output(opener: str) -> None:
    text = doc(
        FENCE + "console",
        f"$ kubectl apply -f - {opener}",
        "kind: Pod",
        "$ not a command",
        "EOF",
        "pod/web created",
        FENCE,
    )
    (command,) = markdown.parse(text).commands()
    assert command.text.splitlines()[1:] == ["kind: Pod", "$ not a command", "EOF"]
    assert command.patterns == (PatternLine(6, "pod/web created"),)


def test_a_dash_heredoc_ends_at_a_tab_indented_terminator() -> None:
    text = doc(FENCE + "console", "$ cat <<-END", "\tx", "\tEND", "x", FENCE)
    (command,) = markdown.parse(text).commands()
    assert command.patterns == (PatternLine(5, "x"),)


def test_an_unterminated_heredoc_is_an_error() -> None:
    parsed = markdown.parse(doc(FENCE + "console", "$ cat <<EOF", "x", FENCE, "## After"))
    assert any("heredoc 'EOF' is never ended" in e for e in parsed.errors)
    assert parsed.sections == ((5, "After"),)


def test_output_before_any_command_is_an_error() -> None:
    parsed = markdown.parse(doc(FENCE + "console", "stray", "$ true", FENCE))
    assert parsed.errors == ("line 2: output before the block's first `$ ` command",)


def test_an_unclosed_block_is_an_error() -> None:
    assert "never closed" in markdown.parse(doc(FENCE + "console", "$ true")).errors[0]


def test_other_fences_are_not_run_even_with_dollar_lines() -> None:
    text = doc(
        FENCE + "sh",
        "$ rm -rf /",
        FENCE,
        FENCE + "yaml",
        "## not a heading",
        FENCE,
        FENCE + "console",
        "$ true",
        FENCE,
    )
    parsed = markdown.parse(text)
    assert [c.text for c in parsed.commands()] == ["true"]
    assert parsed.sections == ()


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ("exit=1", Directive(exit=1)),
        ("retry=120", Directive(retry=120.0)),
        ("retry=60 exit=1", Directive(exit=1, retry=60.0)),
        ("skip (an interactive shell)", Directive(skip="an interactive shell")),
        ("skip", Directive(skip="not run")),
        ("test-only", Directive(test_only=True)),
        ("test-only retry=5", Directive(test_only=True, retry=5.0)),
    ],
)
def test_directives(body: str, wanted: Directive) -> None:
    assert markdown.parse_directive(body, 1) == wanted


@pytest.mark.parametrize("body", ["exit=x", "retry=0", "retry=-1", "again", "exit = 1"])
def test_unknown_directives_are_refused_with_the_line(body: str) -> None:
    with pytest.raises(FormatError, match="line 7: unknown run directive"):
        markdown.parse_directive(body, 7)


def test_a_directive_applies_to_every_command_of_the_next_block_only() -> None:
    text = doc(
        "<!-- run: retry=30 exit=1 -->",
        "",
        FENCE + "console",
        "$ a",
        "$ b",
        FENCE,
        FENCE + "console",
        "$ c",
        FENCE,
    )
    a, b, c = markdown.parse(text).commands()
    assert a.directive == b.directive == Directive(exit=1, retry=30.0)
    assert c.directive == Directive()


def test_prose_between_a_directive_and_a_block_cancels_it() -> None:
    text = doc("<!-- run: exit=1 -->", "Some words.", FENCE + "console", "$ a", FENCE)
    assert markdown.parse(text).commands()[0].directive == Directive()


def test_skipped_commands_are_not_run_unless_asked() -> None:
    text = doc(
        "<!-- run: skip (a shell) -->",
        FENCE + "console",
        "$ nestlab ssh esx-01",
        FENCE,
        FENCE + "console",
        "$ b",
        FENCE,
    )
    parsed = markdown.parse(text)
    assert [c.text for c in parsed.commands()] == ["b"]
    assert [c.text for c in parsed.commands(include_skipped=True)] == ["nestlab ssh esx-01", "b"]


@pytest.mark.parametrize(
    "lines",
    [
        (
            "<!--",
            "<!-- run: test-only -->",
            FENCE + "console",
            "$ setup",
            FENCE,
            "-->",
        ),  # as SESSION8 words it
        ("<!-- run: test-only", FENCE + "console", "$ setup", FENCE, "-->"),  # valid HTML: one comment
    ],
)
def test_test_only_blocks_inside_comments_run_hidden(lines: tuple[str, ...]) -> None:
    text = doc("## Steps", *lines, FENCE + "console", "$ shown", FENCE)
    parsed = markdown.parse(text)
    assert parsed.errors == ()
    hidden, shown = parsed.blocks
    assert (hidden.hidden, hidden.directive.test_only, hidden.section) == (True, True, "Steps")
    assert shown.hidden is False
    assert [c.text for c in parsed.commands()] == ["setup", "shown"]
    assert "setup" not in markdown.shown_text(text)
    assert "$ shown" in markdown.shown_text(text)


def test_a_test_only_block_outside_a_comment_is_an_error() -> None:
    parsed = markdown.parse(doc("<!-- run: test-only -->", FENCE + "console", "$ a", FENCE))
    assert parsed.errors == ("line 2: a test-only block must sit inside an HTML comment",)


def test_shown_text_drops_directives_and_keeps_the_rest() -> None:
    text = doc("# T", "<!-- run: exit=1 -->", FENCE + "console", "$ false", FENCE, "<!-- a note -->", "end")
    assert markdown.shown_text(text) == doc("# T", FENCE + "console", "$ false", FENCE, "end")


@pytest.mark.parametrize(
    ("pattern", "line", "matches"),
    [
        ("web    1/1     Running   0          ...", "web   1/1   Running   0     12s", True),
        ("web 1/1 Running", "web 1/1 Running extra", False),  # the whole line
        (
            "... Started ... pod VM started (QEMU pid ...)",
            "2s  Normal  Started  pod/web  pod VM started (QEMU pid 42)",
            True,
        ),
        ("...", "", True),
        ("...", "anything", True),
        ("a...b", "ab", True),
        ("a...b", "a", False),
        ("3", "3", True),
        ("3", "33", False),
        ("a.b", "axb", False),  # literal dot
        ("[x] (y)", "[x]\t(y)", True),  # brackets literal, a tab is whitespace
        ("ok", "ok   ", True),  # trailing blanks aside
        ("ok", "ok\r", True),
        ("  indented", " indented", True),
        ("  indented", "indented", False),
    ],
)
def test_line_patterns(pattern: str, line: str, matches: bool) -> None:
    assert markdown.line_matches(pattern, line) is matches


def test_patterns_match_lines_in_order_each_on_its_own_line() -> None:
    patterns = (PatternLine(1, "a ..."), PatternLine(2, "b ..."), PatternLine(3, "a ..."))
    assert markdown.first_unmatched(patterns, "a 1\nnoise\nb 2\na 3\n") is None
    assert markdown.first_unmatched(patterns, "a 1\nb 2\n") == patterns[2]
    assert markdown.first_unmatched(patterns, "b 2\na 1\n") == patterns[1]
    assert markdown.first_unmatched((PatternLine(1, "x"), PatternLine(2, "x")), "x\n") == PatternLine(2, "x")
    assert markdown.first_unmatched((), "") is None


GOOD = doc(
    "# Exercise 7: Thing",
    "",
    "**Time:** about 15 minutes · **vSphere idea:** x · **Before:** exercise 6",
    "## Goal",
    "## The vSphere idea",
    "## Steps",
    FENCE + "console",
    "$ kubectl get pods",
    FENCE,
    "## What just happened",
    "## Break it",
    "## Check",
    FENCE + "console",
    "$ .venv/bin/nestlab exercise check 7",
    "exercise 7: passed",
    FENCE,
)


def test_structure_of_a_good_file() -> None:
    assert markdown.problems(GOOD, "07-thing.md") == []


@pytest.mark.parametrize(
    ("text", "name", "wanted"),
    [
        (GOOD, "7-thing.md", "the file name must be NN-slug.md"),
        (GOOD, "08-thing.md", "the title says exercise 7, the file name 8"),
        (GOOD.replace("# Exercise 7: Thing", "# Thing"), "07-thing.md", "line 1 must be"),
        (
            GOOD.replace("**Time:** about 15 minutes", "Time: 15"),
            "07-thing.md",
            "no `**Time:** about N minutes",
        ),
        (GOOD.replace("## Goal\n", ""), "07-thing.md", "needs exactly one `## Goal`"),
        (
            GOOD.replace("## Goal\n## The vSphere idea\n", "## The vSphere idea\n## Goal\n"),
            "07-thing.md",
            "out of order",
        ),
        (GOOD.replace("check 7", "check 6"), "07-thing.md", "has no console block running"),
        (GOOD.replace("$ kubectl get pods\n", ""), "07-thing.md", "`## Steps` has no console block"),
        (GOOD.replace("## Goal\n", "## Goal\n<!-- run: bogus -->\n"), "07-thing.md", "unknown run directive"),
    ],
)
def test_structure_problems(text: str, name: str, wanted: str) -> None:
    assert any(wanted in problem for problem in markdown.problems(text, name)), markdown.problems(text, name)


EXERCISE_FILES = sorted((repo_root() / "docs" / "exercises").glob("[0-9][0-9]-*.md"))


@pytest.mark.parametrize("path", EXERCISE_FILES, ids=[p.name for p in EXERCISE_FILES])
def test_every_exercise_file_has_the_structure(path: Path) -> None:
    assert markdown.problems(path.read_text(encoding="utf-8"), path.name) == []


def test_there_are_exercise_files() -> None:
    assert len(EXERCISE_FILES) >= 4


@pytest.mark.parametrize("path", EXERCISE_FILES, ids=[p.name for p in EXERCISE_FILES])
def test_the_front_door_links_every_exercise(path: Path) -> None:
    front = (repo_root() / "docs" / "README.md").read_text(encoding="utf-8")
    assert f"(exercises/{path.name})" in front, f"docs/README.md does not link exercises/{path.name}"


def test_a_here_string_is_not_a_heredoc() -> None:
    (command,) = markdown.parse(doc(FENCE + "console", "$ grep x <<< 'x'", "x", FENCE)).commands()
    assert command.patterns == (PatternLine(3, "x"),)


def test_tilde_fences() -> None:
    parsed = markdown.parse(doc("~~~console", "$ true", "~~~", "## After"))
    assert ([c.text for c in parsed.commands()], parsed.errors, parsed.sections) == (
        ["true"],
        (),
        ((4, "After"),),
    )
