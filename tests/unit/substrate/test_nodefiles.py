"""Node identity files: a static address without a gateway, keys with safe modes, idempotent."""

from __future__ import annotations

import configparser
import stat
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from nestlab.spec import NodeName
from nestlab.substrate.local.nodefiles import (
    NETWORK_FILE,
    NodeIdentity,
    known_hosts_line,
    network_file,
    new_machine_id,
    write_node_files,
)

NET = IPv4Network("198.18.7.0/24")


def _identity() -> NodeIdentity:
    return NodeIdentity(
        name=NodeName("cp-1"),
        address=IPv4Address("198.18.7.21"),
        network=NET,
        authorized_key="ssh-ed25519 AAAAC3Nza lab",
        host_key=b"-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
        host_key_pub="ssh-ed25519 AAAAHOST root@cp-1\n",
        machine_id=new_machine_id(),
    )


def test_network_file_is_static_and_has_no_route_out() -> None:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(network_file(IPv4Address("198.18.7.21"), NET))
    assert parser["Match"]["Name"] == "host0"
    assert parser["Network"]["Address"] == "198.18.7.21/24"
    assert "Gateway" not in parser["Network"]
    assert parser["Network"]["LinkLocalAddressing"] == "no"


def test_known_hosts_names_address_and_hostname() -> None:
    line = known_hosts_line(NodeName("lb-1"), IPv4Address("198.18.7.11"), "ssh-ed25519 AAAAKEY root@lb-1\n")
    assert line == "198.18.7.11,lb-1 ssh-ed25519 AAAAKEY\n"


def test_machine_ids_are_distinct_hex() -> None:
    first, second = new_machine_id(), new_machine_id()
    assert first != second
    assert len(first) == 32
    int(first, 16)


def test_write_node_files(tmp_path: Path) -> None:
    node = _identity()
    write_node_files(tmp_path, node)
    write_node_files(tmp_path, node)  # idempotent: a restart rewrites the same files
    assert (tmp_path / "etc/hostname").read_text() == "cp-1\n"
    assert "198.18.7.21\tcp-1" in (tmp_path / "etc/hosts").read_text()
    assert (tmp_path / "etc/machine-id").read_text() == node.machine_id + "\n"
    assert "Address=198.18.7.21/24" in (tmp_path / NETWORK_FILE).read_text()
    keys = tmp_path / "root/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAAC3Nza lab\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "root/.ssh").stat().st_mode) == 0o700
    host_key = tmp_path / "etc/ssh/ssh_host_ed25519_key"
    assert host_key.read_bytes() == node.host_key
    assert stat.S_IMODE(host_key.stat().st_mode) == 0o600
    assert not list(tmp_path.rglob("*.nestlab-tmp"))


def test_a_reboot_keeps_the_provisioned_hosts_file(tmp_path: Path) -> None:
    node = _identity()
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hosts").write_text("127.0.0.1 localhost\n")  # the image's own: replaced
    write_node_files(tmp_path, node)
    assert "198.18.7.21\tcp-1" in (tmp_path / "etc/hosts").read_text()
    lab_wide = "127.0.0.1 localhost\n198.18.7.21 cp-1 cp-1.lab.nestlab\n198.18.7.22 cp-2\n"
    (tmp_path / "etc/hosts").write_text(lab_wide)  # what roles/common writes
    write_node_files(tmp_path, node)
    assert (tmp_path / "etc/hosts").read_text() == lab_wide
