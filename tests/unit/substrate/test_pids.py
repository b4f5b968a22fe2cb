"""Finding a node's init under its nspawn (what `nestlab node stop --hard` kills)."""

from __future__ import annotations

from pathlib import Path

from nestlab.substrate.local import pids


def test_children_are_read_from_every_task_of_the_process(tmp_path: Path) -> None:
    for task, kids in (("100", "101 102 "), ("103", "104")):
        directory = tmp_path / "100" / "task" / task
        directory.mkdir(parents=True)
        (directory / "children").write_text(kids)
    assert sorted(pids.children(100, tmp_path)) == [101, 102, 104]


def test_a_gone_process_has_no_children(tmp_path: Path) -> None:
    assert pids.children(4242, tmp_path) == []
