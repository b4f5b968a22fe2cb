"""The nspawn command line: the flags the outer machine needs and the devices each role gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.spec import NodeName
from nestlab.substrate.local.cgroups import enter_argv
from nestlab.substrate.local.layout import BridgeName, MachineName, bridge_name, machine_name
from nestlab.substrate.local.nspawn import is_node_process, nspawn_argv


def _argv(*, tun: bool, kvm: bool) -> list[str]:
    return nspawn_argv(
        root=Path("/labs/a/nodes/esx-01/root"),
        machine=MachineName("a-esx-01"),
        hostname=NodeName("esx-01"),
        bridge=BridgeName("nl-a"),
        tun=tun,
        kvm=kvm,
    )


def test_boots_without_systemd_on_the_outer_machine() -> None:
    argv = _argv(tun=False, kvm=False)
    assert argv[0] == "systemd-nspawn"
    for flag in ("--boot", "--register=no", "--keep-unit"):
        assert flag in argv
    assert "--directory=/labs/a/nodes/esx-01/root" in argv
    assert "--machine=a-esx-01" in argv
    assert "--hostname=esx-01" in argv
    assert "--network-bridge=nl-a" in argv
    assert "--timezone=off" in argv  # roles/common owns /etc/localtime across reboots


def test_devices_only_where_asked() -> None:
    plain = _argv(tun=False, kvm=False)
    assert not [arg for arg in plain if arg.startswith("--bind=")]
    host = _argv(tun=True, kvm=False)
    assert "--bind=/dev/net/tun" in host
    assert "--bind=/dev/kvm" not in host
    assert "--bind=/dev/kvm" in _argv(tun=True, kvm=True)


def test_pid_reuse_is_not_mistaken_for_the_node() -> None:
    argv = _argv(tun=False, kvm=False)
    assert is_node_process(argv, MachineName("a-esx-01"))
    assert not is_node_process(argv, MachineName("b-esx-01"))
    assert not is_node_process(["sleep", "--machine=a-esx-01"], MachineName("a-esx-01"))
    assert not is_node_process([], MachineName("a-esx-01"))
    # spawned, the node is a shell entering its cgroups for a moment, then (same PID) the nspawn
    wrapped = enter_argv([Path("/sys/fs/cgroup/systemd/nestlab/a-1234/esx-01")], argv)
    assert is_node_process(wrapped, MachineName("a-esx-01"))
    assert not is_node_process(wrapped, MachineName("b-esx-01"))
    assert not is_node_process(["sh", "-c", "sleep 1", "--machine=a-esx-01"], MachineName("a-esx-01"))


def test_names_keep_labs_apart_and_fit_interface_limits() -> None:
    assert bridge_name("default") == "nl-default"
    assert len(bridge_name("abcdefghijkl")) == 15
    with pytest.raises(ValueError, match="too long"):
        bridge_name("abcdefghijklm")
    assert machine_name("a", NodeName("cp-1")) != machine_name("b", NodeName("cp-1"))
