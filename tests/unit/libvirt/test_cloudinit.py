"""cloud-init documents: the address, hostname and key a node boots with."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import yaml

from nestlab.spec import PlannedNode, Role
from nestlab.spec.model import NodeName, Size
from nestlab.substrate.libvirt import cloudinit

NODE = PlannedNode(
    name=NodeName("cp-2"),
    role=Role.CONTROL_PLANE,
    address=IPv4Address("198.18.0.22"),
    placed_on=NodeName("esx-02"),
    hypervisor=1,
    size=Size(cpu=1, memory_mib=1024, disk_mib=4096),
)
KEY = "ssh-ed25519 AAAAC3Nza test"


def test_mac_follows_the_address_and_differs_per_address() -> None:
    assert cloudinit.mac_for(IPv4Address("198.18.0.22")) == "52:54:00:12:00:16"
    macs = {cloudinit.mac_for(IPv4Address("198.18.0.0") + i) for i in range(1, 255)}
    assert len(macs) == 254


def test_network_config_sets_the_static_address_on_the_nic_with_that_mac_and_no_route_out() -> None:
    document = yaml.safe_load(cloudinit.network_config(NODE, IPv4Network("198.18.0.0/24")))
    assert document["version"] == 2
    (ethernet,) = document["ethernets"].values()
    assert ethernet["match"] == {"macaddress": "52:54:00:12:00:16"}
    assert ethernet["addresses"] == ["198.18.0.22/24"]
    assert ethernet["dhcp4"] is False
    assert "gateway4" not in ethernet
    assert "routes" not in ethernet


def test_user_data_names_the_host_and_authorizes_the_key_without_password_ssh() -> None:
    text = cloudinit.user_data(NODE, KEY)
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert document["hostname"] == "cp-2"
    assert document["ssh_pwauth"] is False
    assert document["disable_root"] is False  # the inventory logs in as root
    assert document["ssh_authorized_keys"] == [KEY]
    (user,) = document["users"]
    assert user["ssh_authorized_keys"] == [KEY]
    assert user["lock_passwd"] is True
    assert "chpasswd" not in document


def test_a_console_password_unlocks_the_console_only() -> None:
    document = yaml.safe_load(cloudinit.user_data(NODE, KEY, console_password="pw"))  # noqa: S106 - a test value
    assert document["users"][0]["lock_passwd"] is False
    assert document["chpasswd"]["users"] == [{"name": "nestlab", "password": "pw", "type": "text"}]
    assert document["ssh_pwauth"] is False


def test_meta_data_instance_id_is_stable_per_lab_and_node() -> None:
    document = yaml.safe_load(cloudinit.meta_data("default", NODE))
    assert document == {"instance-id": "default-cp-2", "local-hostname": "cp-2"}
