"""The compile progress on a REAL (tiny) make run: objects counted from its output as it runs, the
count becomes the next build's total, failures and timeouts name the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.progress import PlainProgress
from nestlab.runtime import kbuild
from nestlab.runtime.proc import ProcessError

pytestmark = pytest.mark.integration

OBJECTS = ["init/main.o", "kernel/fork.o", "mm/slab.o", "fs/open.o", "arch/x86/entry.o"]
# kbuild-style quiet output: one "  CC      <object>" line per object, other lines in between
MAKEFILE = """\
OBJS := {objects}
all: $(OBJS)
\t@echo "  LD      vmlinux"
%.o:
\t@mkdir -p $(dir $@)
\t@echo "  CC      $@"
\t@touch $@
broken:
\t@echo "  CC      broken.o"
\t@echo "broken.c:1: error: expected ';'" >&2
\t@false
slow:
\t@sleep 60
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text(MAKEFILE.format(objects=" ".join(OBJECTS)))
    return tree


def compile_(tree: Path, tmp_path: Path, lines: list[str], target: str = "all", timeout: float = 120) -> int:
    return kbuild.compile_counting(
        ["make", "-C", str(tree), "-j2", target],
        timeout=timeout,
        log=tmp_path / "build.log",
        estimate=tmp_path / kbuild.ESTIMATE_FILE,
        progress=PlainProgress(lines.append, stamp=None),
        title="pod kernel: compiling",
    )


def test_first_build_counts_without_a_total_then_the_next_has_one(tree: Path, tmp_path: Path) -> None:
    first: list[str] = []
    assert compile_(tree, tmp_path, first) == len(OBJECTS)
    assert not any("%" in line for line in first)  # no total known: no made-up percentage
    assert first[-1].startswith("pod kernel: compiling: done, 5 objects compiled (")
    assert kbuild.read_estimate(tmp_path / kbuild.ESTIMATE_FILE) == len(OBJECTS)
    log = (tmp_path / "build.log").read_text()
    assert "  CC      mm/slab.o" in log
    assert "  LD      vmlinux" in log
    for name in OBJECTS:
        (tree / name).unlink()
    second: list[str] = []
    compile_(tree, tmp_path, second)
    assert "pod kernel: compiling: 100% of 5 objects" in [line.split(" (")[0] for line in second]


def test_a_failing_compile_names_the_error_and_the_log(tree: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    with pytest.raises(ProcessError) as caught:
        compile_(tree, tmp_path, lines, target="broken")
    message = str(caught.value)
    assert "expected ';'" in message
    assert "CC      broken.o" not in message  # progress lines are not the error
    assert f"full log: {tmp_path / 'build.log'}" in message
    assert lines[-1].startswith(
        f"pod kernel: compiling: FAILED: after 1 objects; see {tmp_path / 'build.log'} ("
    )
    assert kbuild.read_estimate(tmp_path / kbuild.ESTIMATE_FILE) is None  # a failed build is no estimate


def test_a_compile_past_its_timeout_is_killed(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match="did not finish within 1s"):
        compile_(tree, tmp_path, [], target="slow", timeout=1)
