"""SSH options and the readiness wait, with a fake runner and clock."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from nestlab.runtime.proc import Result
from nestlab.substrate.local import ssh
from nestlab.substrate.local.errors import NodeUnreachableError
from nestlab.substrate.local.layout import LabLayout

LAYOUT = LabLayout(name="a", root=Path("/labs/a"))
CP = IPv4Address("198.18.7.21")
LB = IPv4Address("198.18.7.11")


def test_ssh_argv_is_strict_and_non_interactive() -> None:
    argv = ssh.ssh_argv(LAYOUT, CP, ["tpm2_getcap", "properties-fixed"])
    assert argv[0] == "ssh"
    assert argv[-3:] == ["root@198.18.7.21", "tpm2_getcap", "properties-fixed"]
    assert "BatchMode=yes" in argv
    assert "StrictHostKeyChecking=yes" in argv
    assert "UserKnownHostsFile=/labs/a/ssh/known_hosts" in argv
    assert argv[argv.index("-i") + 1] == "/labs/a/ssh/id_ed25519"
    assert argv[argv.index("-F") + 1] == "/dev/null"  # the user's ~/.ssh/config cannot interfere


def test_ssh_config_names_every_node() -> None:
    text = ssh.ssh_config(LAYOUT, {"cp-1": CP, "lb-1": LB})
    assert "Host cp-1\n    HostName 198.18.7.21\n" in text
    assert "Host lb-1\n    HostName 198.18.7.11\n" in text
    assert text.count("StrictHostKeyChecking yes") == 2


class _Fleet:
    """Answers SSH for addresses in ``up`` after ``after`` tries; a fake clock ticks per sleep."""

    def __init__(self, up: set[IPv4Address], after: int = 0) -> None:
        self.up, self.after, self.tries, self.now = up, after, 0, 0.0

    def run(self, argv: list[str], *, timeout: float, check: bool = True, **_: object) -> Result:
        self.tries += 1
        target = IPv4Address(next(a for a in argv if a.startswith("root@")).split("@")[1])
        ok = target in self.up and self.tries > self.after
        return Result(tuple(argv), 0 if ok else 255, "", "" if ok else "Connection refused")

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_returns_once_all_answer() -> None:
    fleet = _Fleet({CP, LB}, after=3)
    ssh.wait_reachable(
        fleet.run, LAYOUT, {"cp-1": CP, "lb-1": LB}, timeout=60, clock=lambda: fleet.now, sleep=fleet.sleep
    )
    assert fleet.tries >= 4


def test_wait_names_the_silent_node() -> None:
    fleet = _Fleet({CP})
    with pytest.raises(NodeUnreachableError, match=r"sshd did not answer on lb-1 within 30s"):
        ssh.wait_reachable(
            fleet.run,
            LAYOUT,
            {"cp-1": CP, "lb-1": LB},
            timeout=30,
            clock=lambda: fleet.now,
            sleep=fleet.sleep,
        )


def test_wait_fails_at_once_when_the_node_died() -> None:
    fleet = _Fleet(set())
    with pytest.raises(
        NodeUnreachableError, match=r"node cp-1 stopped while booting; see .*console-cp-1\.log"
    ):
        ssh.wait_reachable(
            fleet.run,
            LAYOUT,
            {"cp-1": CP},
            timeout=300,
            alive=lambda _name: False,
            clock=lambda: fleet.now,
            sleep=fleet.sleep,
        )
    assert fleet.now == 0.0
