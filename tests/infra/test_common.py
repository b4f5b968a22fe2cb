"""What the common role configures, on every node."""

from __future__ import annotations

import json

import lab
from testinfra.host import Host

testinfra_hosts = lab.hosts()


def test_hosts_file_names_every_node_and_the_vip(host: Host) -> None:
    hosts = host.file("/etc/hosts").content_string
    for node in lab.nodes():
        assert f"{node['address']} {node['name']} " in hosts
    assert f"{lab.plan()['vip']} api " in hosts


def test_timezone_is_utc(host: Host) -> None:
    assert host.check_output("readlink /etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert host.check_output("date +%Z") == "UTC"


def test_journald_is_limited(host: Host) -> None:
    assert host.file("/etc/systemd/journald.conf.d/nestlab.conf").contains("SystemMaxUse=64M")


def test_lab_ca_is_trusted_and_signs_the_node_certificate(host: Host) -> None:
    name = host.backend.hostname
    assert host.file(f"/etc/ssl/certs/nestlab-{lab.plan()['name']}.pem").exists
    out = host.run("openssl verify -CAfile /etc/nestlab/pki/ca.crt /etc/nestlab/pki/node.crt")
    assert out.rc == 0, out.stderr
    subject = host.check_output("openssl x509 -noout -subject -in /etc/nestlab/pki/node.crt")
    assert f"CN = {name}" in subject


def test_node_key_is_private(host: Host) -> None:
    key = host.file("/etc/nestlab/pki/node.key")
    assert key.mode == 0o600
    assert key.user == "root"


def test_node_description(host: Host) -> None:
    described = json.loads(host.file("/etc/nestlab/node.json").content_string)
    assert described["name"] == host.backend.hostname
    assert described["role"] == lab.node(host.backend.hostname)["role"]
