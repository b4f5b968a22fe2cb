"""Each node's own cgroups: which hierarchies, the command line that enters them, their removal."""

from __future__ import annotations

from pathlib import Path

from nestlab.runtime import proc
from nestlab.spec import NodeName
from nestlab.substrate.local import cgroups

MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def test_the_hierarchies_systemd_tracks_processes_in() -> None:
    assert cgroups.hierarchies(MOUNTS) == [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]
    unified_only = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
    assert cgroups.hierarchies(unified_only) == [Path("/sys/fs/cgroup")]
    assert cgroups.hierarchies("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\nbad line\n") == []


def test_each_node_and_lab_has_its_own_directory() -> None:
    roots = [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]
    assert cgroups.node_dirs(roots, "e2e", NodeName("lb-1")) == [
        Path("/sys/fs/cgroup/systemd/nestlab/e2e/lb-1"),
        Path("/sys/fs/cgroup/unified/nestlab/e2e/lb-1"),
    ]
    assert cgroups.node_dirs(roots, "e2e", NodeName("lb-1")) != cgroups.node_dirs(
        roots, "e2e", NodeName("lb-2")
    )
    assert cgroups.lab_dirs(roots, "e2e") == [
        Path("/sys/fs/cgroup/systemd/nestlab/e2e"),
        Path("/sys/fs/cgroup/unified/nestlab/e2e"),
    ]


def test_two_lab_directories_of_one_name_get_different_cgroups(tmp_path: Path) -> None:
    here, there = cgroups.lab_key("e2e", tmp_path / "a"), cgroups.lab_key("e2e", tmp_path / "b")
    assert here.startswith("e2e-")
    assert there.startswith("e2e-")
    assert here != there
    assert cgroups.lab_key("e2e", tmp_path / "a") == here  # stable: boot and down agree


def test_the_shell_moves_itself_then_execs_the_command_with_its_pid(tmp_path: Path) -> None:
    """Run for real with plain files standing in for cgroup.procs: the PID written is the command's."""
    dirs = [tmp_path / "a", tmp_path / "b"]
    for directory in dirs:
        directory.mkdir()
    argv = cgroups.enter_argv(dirs, ["sh", "-c", 'echo "$$ $0 $1"', "with spaces", "two words"])
    out = proc.run(argv, timeout=30).stdout.split()
    pid = out[0]
    assert out[1:] == ["with", "spaces", "two", "words"]  # the arguments arrive intact
    assert [(d / "cgroup.procs").read_text().strip() for d in dirs] == [pid, pid]
    assert cgroups.enter_argv([], ["true"]) == ["sh", "-c", 'exec "$@"', "sh", "true"]


def test_remove_takes_the_tree_deepest_first_and_is_idempotent(tmp_path: Path) -> None:
    lab = tmp_path / "nestlab" / "e2e"
    (lab / "cp-1" / "payload" / "system.slice" / "etcd.service").mkdir(parents=True)
    (lab / "lb-1" / "supervisor").mkdir(parents=True)
    assert cgroups.remove([lab], wait=0) == []
    assert not lab.exists()
    assert (tmp_path / "nestlab").is_dir()  # other labs' directories live here
    assert cgroups.remove([lab], wait=0) == []


def test_remove_reports_what_stays_busy(tmp_path: Path) -> None:
    node = tmp_path / "nestlab" / "e2e" / "cp-1"
    node.mkdir(parents=True)
    (node / "cgroup.procs").write_text(
        "4242\n"
    )  # a plain directory with a file: rmdir refuses, as for a busy cgroup
    assert cgroups.remove([node], wait=0.3) == [node]
