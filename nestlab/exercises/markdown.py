"""Read an exercise's Markdown as a test reads it: console blocks, commands, expected-output
patterns and ``<!-- run: ... -->`` directives (the format is docs/exercises/README.md).

Pure: text in, frozen values out, so the whole format is unit-tested without a lab. The runner
(:mod:`nestlab.exercises.runner`) executes what this module finds; :func:`problems` is the
structure check every file in docs/exercises/ must pass (sections in order, a ``## Check`` that runs
``nestlab exercise check N``), so an author learns of a slip from a unit test, not from CI on a lab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECTIONS = ("Goal", "The vSphere idea", "Steps", "What just happened", "Break it", "Check")
"""The ``##`` sections every exercise has, in this order (others may sit between them)."""
CHECK_COMMAND = ".venv/bin/nestlab exercise check {number}"
FILE_NAME = re.compile(r"^(\d\d)-[a-z0-9]+(?:-[a-z0-9]+)*\.md$")
_TITLE = re.compile(r"^# Exercise (\d+): \S.*$")
_TIME = re.compile(r"^\*\*Time:\*\* about (\d+) minutes")
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([^\s`]*)")
_DIRECTIVE = re.compile(r"^\s*<!--\s*run:(?P<body>.*?)(?P<close>-->)?\s*$")
_HEREDOC = re.compile(r"(?<!<)<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")  # not <<< (a here-string)
_SPACES = re.compile(r"\s+")
ELLIPSIS = "..."


class FormatError(ValueError):
    """A directive the format does not know (the message names the line)."""


@dataclass(frozen=True)
class Directive:
    """What a ``<!-- run: ... -->`` comment asks of every command of the block after it."""

    exit: int = 0
    """The exit status each command must end with."""
    retry: float = 0.0
    """Seconds to keep re-running a command until it gives what is expected (0: run once)."""
    skip: str | None = None
    """Not run (an interactive shell); the text is why."""
    test_only: bool = False
    """Run by the test, not shown to the learner (the block sits in an HTML comment)."""


def parse_directive(body: str, line: int) -> Directive:
    """``exit=1 retry=120``, ``skip (why)``, ``test-only``: one Directive; FormatError otherwise."""
    values: dict[str, object] = {}
    rest = body.strip()
    while rest:
        word, _, tail = rest.partition(" ")
        if word == "skip":
            values["skip"] = tail.strip().removeprefix("(").removesuffix(")").strip() or "not run"
            break
        if word == "test-only":
            values["test_only"] = True
        elif word.startswith("exit=") and word[5:].isdigit():
            values["exit"] = int(word[5:])
        elif word.startswith("retry=") and word[6:].isdigit() and int(word[6:]) > 0:
            values["retry"] = float(word[6:])
        else:
            raise FormatError(
                f"line {line}: unknown run directive {word!r} "
                "(known: exit=N, retry=SECONDS, skip (why), test-only)"
            )
        rest = tail.strip()
    return Directive(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PatternLine:
    """One expected-output line and where it is written."""

    line: int
    text: str


@dataclass(frozen=True)
class Command:
    """One ``$ `` command of a console block, as bash will get it."""

    line: int
    """The file line of its ``$ ``."""
    text: str
    """Continuation lines and heredoc bodies included, newlines kept."""
    patterns: tuple[PatternLine, ...]
    directive: Directive

    @property
    def shown(self) -> str:
        """The command's first line, for messages."""
        return self.text.splitlines()[0] if self.text else ""


@dataclass(frozen=True)
class Block:
    """A ``console`` block."""

    line: int
    """The file line of its opening fence."""
    section: str
    """The ``##`` section it is in ("" before the first)."""
    directive: Directive
    hidden: bool
    """Inside an HTML comment: not shown to the learner."""
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class Document:
    """An exercise file, parsed."""

    title: str
    """The ``# `` line without its ``# ``."""
    sections: tuple[tuple[int, str], ...]
    """(line, name) of every ``## `` heading, in order."""
    blocks: tuple[Block, ...]
    errors: tuple[str, ...] = field(default=())
    """What the parser could not read (``line N: ...``); the structure check reports them."""

    def commands(self, *, include_skipped: bool = False) -> list[Command]:
        """Every command in file order (skipped ones only when asked)."""
        found = [c for b in self.blocks for c in b.commands]
        return found if include_skipped else [c for c in found if c.directive.skip is None]


def _heredoc_terminators(text: str) -> list[tuple[str, bool]]:
    """The heredoc terminators a command opens, in order, and whether each is ``<<-``."""
    return [(m.group(3), m.group(1) == "-") for m in _HEREDOC.finditer(text)]


def _console_block(
    lines: list[str], start: int, directive: Directive, errors: list[str]
) -> tuple[tuple[Command, ...], int]:
    """Commands of a console block whose body begins at index ``start``; and the index after its fence."""
    commands: list[Command] = []
    i = start
    current: tuple[int, list[str]] | None = None
    patterns: list[PatternLine] = []

    def finish() -> None:
        if current is not None:
            text = "\n".join(current[1])
            commands.append(Command(current[0], text, tuple(patterns), directive))

    while i < len(lines):
        raw = lines[i]
        if _is_fence_close(raw):
            finish()
            return tuple(commands), i + 1
        if raw.startswith("$ "):
            finish()
            number, parts = i + 1, [raw[2:]]
            while parts[-1].endswith("\\") and i + 1 < len(lines) and not _is_fence_close(lines[i + 1]):
                i += 1
                parts.append(lines[i])
            for terminator, strip_tabs in _heredoc_terminators("\n".join(parts)):
                while True:
                    i += 1
                    if i >= len(lines) or _is_fence_close(lines[i]):
                        errors.append(f"line {number}: heredoc {terminator!r} is never ended in its block")
                        i -= 1
                        break
                    parts.append(lines[i])
                    if (lines[i].lstrip("\t") if strip_tabs else lines[i]) == terminator:
                        break
            current, patterns = (number, parts), []
        elif raw.strip():
            if current is None:
                errors.append(f"line {i + 1}: output before the block's first `$ ` command")
            else:
                patterns.append(PatternLine(i + 1, raw.rstrip()))
        i += 1
    finish()
    errors.append(f"line {start}: console block is never closed")  # start: the fence's own line
    return tuple(commands), i


def _is_fence_close(raw: str) -> bool:
    stripped = raw.strip()
    return len(stripped) >= 3 and (stripped.strip("`") == "" or stripped.strip("~") == "")


@dataclass
class _Reading:
    """Where :func:`parse` is in the file."""

    title: str = ""
    section: str = ""
    in_comment: bool = False
    pending: Directive | None = None
    sections: list[tuple[int, str]] = field(default_factory=list)

    def prose(self, raw: str, number: int) -> None:
        """A line outside any fence: comments opening or closing, headings."""
        if raw.strip():
            self.pending = None
        if "<!--" in raw and "-->" not in raw.rsplit("<!--", maxsplit=1)[-1]:
            self.in_comment = True
        elif self.in_comment and "-->" in raw:
            self.in_comment = False
        if raw.startswith("# ") and not self.title and not self.in_comment:
            self.title = raw[2:].strip()
        elif raw.startswith("## ") and not self.in_comment:
            self.section = raw[3:].strip()
            self.sections.append((number, self.section))


def parse(text: str) -> Document:
    """The exercise ``text``: its title, sections, console blocks with their commands."""
    lines = text.splitlines()
    blocks: list[Block] = []
    errors: list[str] = []
    state = _Reading()
    i = 0
    while i < len(lines):
        raw = lines[i]
        fence = _FENCE.match(raw.strip())
        directive_match = _DIRECTIVE.match(raw)
        if directive_match is not None:
            try:
                state.pending = parse_directive(directive_match.group("body"), i + 1)
            except FormatError as exc:
                errors.append(str(exc))
                state.pending = None
            if directive_match.group("close") is None:
                state.in_comment = True  # `<!-- run: test-only` opens the comment that hides the block
        elif fence is not None:
            directive, state.pending = state.pending or Directive(), None
            if fence.group(2) != "console":
                i = _skip_fence(lines, i + 1, fence.group(1))
                continue
            opening = i + 1
            commands, i = _console_block(lines, i + 1, directive, errors)
            if directive.test_only and not state.in_comment:
                errors.append(f"line {opening}: a test-only block must sit inside an HTML comment")
            blocks.append(Block(opening, state.section, directive, state.in_comment, commands))
            continue
        else:
            state.prose(raw, i + 1)
        i += 1
    return Document(state.title, tuple(state.sections), tuple(blocks), tuple(errors))


def _skip_fence(lines: list[str], start: int, opener: str) -> int:
    """The index after the fence that closes a non-console block."""
    i = start
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(opener[0] * len(opener)) and stripped.strip(opener[0]) == "":
            return i + 1
        i += 1
    return i


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A pattern line as a regular expression: ``...`` any text, a whitespace run any whitespace run."""
    parts = []
    for literal in pattern.rstrip().split(ELLIPSIS):
        pieces = _SPACES.split(literal)
        parts.append(r"\s+".join(re.escape(piece) for piece in pieces))
    return re.compile(".*".join(parts))


def line_matches(pattern: str, line: str) -> bool:
    """Whether one output line is what one pattern line expects (the whole line, trailing blanks aside)."""
    return compile_pattern(pattern).fullmatch(line.rstrip().rstrip("\r")) is not None


def first_unmatched(patterns: tuple[PatternLine, ...], output: str) -> PatternLine | None:
    """The first pattern with no output line for it (each in order, on its own line); None: all match."""
    lines = output.splitlines()
    position = 0
    for pattern in patterns:
        regex = compile_pattern(pattern.text)
        while position < len(lines) and regex.fullmatch(lines[position].rstrip().rstrip("\r")) is None:
            position += 1
        if position >= len(lines):
            return pattern
        position += 1
    return None


def problems(text: str, file_name: str) -> list[str]:
    """What keeps ``text`` (file ``NN-slug.md``) from being an exercise; empty when it is one."""
    found: list[str] = []
    name_match = FILE_NAME.match(file_name)
    number = int(name_match.group(1)) if name_match else None
    if number is None:
        found.append(f"{file_name}: the file name must be NN-slug.md (two digits, lower-case words)")
    document = parse(text)
    found.extend(f"{file_name}: {error}" for error in document.errors)
    lines = text.splitlines()
    title = _TITLE.match(lines[0]) if lines else None
    if title is None:
        found.append(f"{file_name}: line 1 must be `# Exercise N: Title`")
    elif number is not None and int(title.group(1)) != number:
        found.append(f"{file_name}: the title says exercise {title.group(1)}, the file name {number}")
    if not any(_TIME.match(line) for line in lines[:6]):
        found.append(
            f"{file_name}: no `**Time:** about N minutes · **vSphere idea:** ... · **Before:** ...` line"
        )
    names = [name for _, name in document.sections]
    position = -1
    for wanted in SECTIONS:
        if names.count(wanted) != 1:
            found.append(f"{file_name}: needs exactly one `## {wanted}` section (has {names.count(wanted)})")
            continue
        if names.index(wanted) < position:
            found.append(f"{file_name}: `## {wanted}` is out of order (order: {', '.join(SECTIONS)})")
        position = names.index(wanted)
    if number is not None:
        wanted_command = CHECK_COMMAND.format(number=number)
        checks = [c for b in document.blocks if b.section == "Check" for c in b.commands]
        if not any(c.text.strip() == wanted_command for c in checks):
            found.append(f"{file_name}: `## Check` has no console block running `{wanted_command}`")
    if not any(b.commands for b in document.blocks if b.section == "Steps"):
        found.append(f"{file_name}: `## Steps` has no console block with a `$ ` command")
    return found


def shown_text(text: str) -> str:
    """The Markdown a learner reads: run directives and test-only blocks (HTML comments) removed."""
    kept: list[str] = []
    in_comment = False
    for raw in text.splitlines():
        directive_match = _DIRECTIVE.match(raw)
        if directive_match is not None:
            if directive_match.group("close") is None:
                in_comment = True
            continue
        if in_comment:
            if "-->" in raw:
                in_comment = False
            continue
        if raw.strip().startswith("<!--"):
            if "-->" not in raw:
                in_comment = True
            continue
        kept.append(raw)
    return "\n".join(kept) + "\n"
