"""Every node: sshd serving, its own TPM answering, its name and planned address, every other node reachable."""

from __future__ import annotations

import lab
import pytest
from testinfra.host import Host

testinfra_hosts = lab.hosts()


def _me(host: Host) -> dict[str, str]:
    return lab.node(host.backend.hostname)


def test_sshd_is_running(host: Host) -> None:
    assert host.service("ssh").is_running


def test_tpm_answers(host: Host) -> None:
    out = host.run("tpm2_getcap -T swtpm:host=127.0.0.1,port=2321 properties-fixed")
    assert out.rc == 0, out.stderr
    assert "TPM2_PT_FAMILY_INDICATOR" in out.stdout


def test_hostname_is_the_node_name(host: Host) -> None:
    assert host.check_output("hostname") == host.backend.hostname


def test_has_its_planned_address(host: Host) -> None:
    addresses = host.check_output("ip -o -4 addr show")
    assert f" {_me(host)['address']}/" in addresses


def test_has_no_route_out_of_the_lab(host: Host) -> None:
    assert host.run("ip -4 route show default").stdout.strip() == ""


@pytest.mark.parametrize("other", [n["name"] for n in lab.nodes()])
def test_reaches_every_other_node(host: Host, other: str) -> None:
    address = lab.node(other)["address"]
    assert host.run(f"ping -c1 -W2 {address}").rc == 0, (
        f"{host.backend.hostname} cannot reach {other} ({address})"
    )
