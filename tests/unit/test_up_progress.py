"""`nestlab up`'s progress plumbing: what the user sees is also appended, as plain time-stamped
lines, to logs/up.log, and the run opens with the line naming its log files."""

from __future__ import annotations

from pathlib import Path

from nestlab import lifecycle
from nestlab.paths import LabFiles
from nestlab.progress import stepping


def test_messages_and_steps_go_to_the_screen_and_to_up_log(tmp_path: Path) -> None:
    files = LabFiles(tmp_path / "lab")
    shown: list[str] = []
    emit = lifecycle._logging(files, shown.append)
    emit(lifecycle.log_line(files))
    with stepping(emit, "wheelhouse", total=2, unit="wheels") as step:
        step.advance(2)
    logged = (files.logs / "up.log").read_text().splitlines()
    assert shown[0] == f"logs: {files.logs / 'up.log'} (this run); {files.logs / 'ansible.log'} " + (
        f"(provisioning); {files.logs}/console-<node>.log (node consoles)"
    )
    assert shown[1:3] == ["wheelhouse ...", "wheelhouse: 100% of 2 wheels"]
    assert shown[3].startswith("wheelhouse: done (")
    assert [line.split(" ", 1)[1] for line in logged] == shown  # each log line: an ISO time, the text
    assert logged[0][:4].isdigit()
    assert logged[0][10] == "T"
