"""The Pulumi program (__main__.py) under Pulumi's mocks: the resource graph of the dev and multi stacks.

Each test runs the real program with a stack file from stacks/ and inspects what it declared:
resource types and counts from the recording monitor, values through Output.all(...).apply(...).
"""

from __future__ import annotations

import shlex
from collections import Counter
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from nestlab.spec import load_spec, make_plan
from nestlab.substrate.libvirt.settings import as_libvirt
from tests.unit.libvirt.harness import ROOT, TEST_KEY, ProgramRun, execute, prepare, run_program, stack_config

NETWORK = "libvirt:index/network:Network"
VOLUME = "libvirt:index/volume:Volume"
CLOUD_INIT = "libvirt:index/cloudInitDisk:CloudInitDisk"
DOMAIN = "libvirt:index/domain:Domain"
PROVIDER = "pulumi:providers:libvirt"
COMMAND = "command:local:Command"


def _plan(stack: str) -> Any:
    spec = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]["nestlab:spec"]
    return make_plan(as_libvirt(load_spec(ROOT / spec)))


def _run(stack: str, tmp_path: Path, checks: Any = None, **overrides: str) -> ProgramRun:
    config = stack_config(stack, sshPublicKey=TEST_KEY, stateDir=str(tmp_path), **overrides)
    return run_program(config, stack=stack, checks=checks)


@pytest.mark.parametrize(("stack", "hypervisors"), [("dev", 1), ("multi", 3)])
def test_graph_has_one_network_and_base_image_per_hypervisor_and_a_full_node_per_planned_node(
    stack: str, hypervisors: int, tmp_path: Path
) -> None:
    plan = _plan(stack)
    run = _run(stack, tmp_path)
    counts = Counter(r.type for r in run.monitor.registrations)
    assert counts[PROVIDER] == hypervisors
    assert counts[NETWORK] == hypervisors
    assert counts[VOLUME] == hypervisors + len(plan.nodes)  # base images + one overlay per node
    assert counts[CLOUD_INIT] == len(plan.nodes)
    assert counts[DOMAIN] == len(plan.nodes)
    assert counts[COMMAND] == 1 + (hypervisors if hypervisors > 1 else 0)  # provisioning + bridge links
    domains = {r.inputs["name"] for r in run.monitor.of_type(DOMAIN)}
    assert domains == {f"{plan.lab.name}-{node.name}" for node in plan.nodes}
    uris = sorted(r.inputs["uri"] for r in run.monitor.of_type(PROVIDER))
    assert uris == sorted(plan.lab.substrate.uris)


def test_dev_stack_runs_the_default_lab_on_the_local_system_libvirt(tmp_path: Path) -> None:
    run = _run("dev", tmp_path)
    (provider,) = run.monitor.of_type(PROVIDER)
    assert provider.inputs["uri"] == "qemu:///system"
    assert len(run.monitor.of_type(DOMAIN)) == 9  # 3 hosts, 3 control plane, 2 load balancers, depot


def test_management_network_is_isolated_without_dhcp_and_holds_the_gateway_once(tmp_path: Path) -> None:
    run = _run("multi", tmp_path)
    networks = run.monitor.of_type(NETWORK)
    assert all(n.inputs["mode"] == "none" for n in networks)  # no forward, no NAT
    assert all(n.inputs["dhcp"] == {"enabled": False} for n in networks)
    assert all(n.inputs["dns"] == {"enabled": False} for n in networks)
    with_address = [n for n in networks if n.inputs.get("addresses")]
    assert [n.inputs["addresses"] for n in with_address] == [["198.18.0.0/24"]]  # bridge gets .1


def test_every_domain_has_ovmf_an_emulated_tpm2_crb_and_its_planned_address(tmp_path: Path) -> None:
    plan = _plan("dev")
    seen: list[str] = []

    def checks(run: ProgramRun) -> pulumi.Output[None]:
        lab = run.namespace["lab"]
        outputs = []
        for name, node in lab.nodes.items():
            planned = plan.node(name)
            outputs.append(
                pulumi.Output.all(
                    node.domain.name,
                    node.domain.tpm,
                    node.domain.firmware,
                    node.domain.network_interfaces,
                    node.cloud_init.network_config,
                    node.domain.memory,
                    node.domain.vcpu,
                    node.domain.cpu,
                ).apply(lambda values, planned=planned: _check_domain(planned, values, seen))
            )
        return pulumi.Output.all(*outputs).apply(lambda _: None)

    _run("dev", tmp_path, checks=checks)
    assert sorted(seen) == sorted(node.name for node in plan.nodes)


def _check_domain(planned: Any, values: list[Any], seen: list[str]) -> None:
    name, tpm, firmware, interfaces, network_config, memory, vcpu, cpu = values
    assert name.endswith(f"-{planned.name}")
    assert (tpm["model"], tpm["backend_type"], tpm["backend_version"]) == ("tpm-crb", "emulator", "2.0")
    assert firmware == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert (memory, vcpu) == (planned.size.memory_mib, planned.size.cpu)
    assert (cpu["mode"] if cpu is not None else None) == (
        "host-passthrough" if str(planned.role) == "host" else None
    )
    config = yaml.safe_load(network_config)
    (ethernet,) = config["ethernets"].values()
    assert ethernet["addresses"] == [f"{planned.address}/24"]
    (interface,) = interfaces
    assert interface["mac"] == ethernet["match"]["macaddress"]  # the address lands on this NIC
    assert IPv4Address(planned.address).packed[-1] == int(interface["mac"].split(":")[-1], 16)
    seen.append(planned.name)


def test_multi_stack_places_control_plane_nodes_on_distinct_hypervisors(tmp_path: Path) -> None:
    run = _run("multi", tmp_path)
    providers = {r.urn: r.inputs["uri"] for r in run.monitor.of_type(PROVIDER)}
    by_domain = {r.inputs["name"]: r.provider for r in run.monitor.of_type(DOMAIN)}
    control_plane = [name for name in by_domain if name.startswith("multi-cp-")]
    assert len(control_plane) == 3
    uris = {providers[by_domain[name].rsplit("::", 1)[0]] for name in control_plane}
    assert len(uris) == 3
    # Every node's children sit on the provider of the hypervisor its plan placed it on.
    plan = _plan("multi")
    for node in plan.nodes:
        provider_urn = by_domain[f"multi-{node.name}"].rsplit("::", 1)[0]
        assert providers[provider_urn] == plan.lab.substrate.uris[node.hypervisor]


def test_provisioning_command_depends_on_every_domain_and_triggers_on_the_digests(tmp_path: Path) -> None:
    run = _run("multi", tmp_path)
    (provision,) = [r for r in run.monitor.of_type(COMMAND) if r.name == "lab-provision"]
    domain_urns = {r.urn for r in run.monitor.of_type(DOMAIN)}
    link_urns = {r.urn for r in run.monitor.of_type(COMMAND) if r.name.endswith("-link")}
    assert domain_urns <= set(provision.dependencies)
    assert link_urns <= set(provision.dependencies)  # nodes on other hypervisors must be reachable
    assert len(domain_urns) == 9
    assert len(link_urns) == 3
    assert provision.inputs["create"].startswith("nestlab provision --inventory ")
    assert " && nestlab verify --inventory " in provision.inputs["create"]
    assert len(provision.inputs["triggers"]) == 2
    assert all(len(digest) == 64 for digest in provision.inputs["triggers"])


def test_exports_vip_files_and_addresses(tmp_path: Path) -> None:
    run = _run("dev", tmp_path)
    settings = run.namespace["settings"]
    assert settings.state_dir == tmp_path
    plan = _plan("dev")
    from nestlab.substrate.libvirt import outputs

    exported = outputs(settings)
    assert exported["vip"] == "198.18.0.5"
    assert exported["inventory"] == str(tmp_path / "inventory.yml")
    assert exported["kubeconfig"] == str(tmp_path / "kubeconfig")
    assert exported["addresses"] == {node.name: str(node.address) for node in plan.nodes}


def test_console_password_is_a_secret_in_user_data(tmp_path: Path) -> None:
    config = stack_config("dev", sshPublicKey=TEST_KEY, stateDir=str(tmp_path), consolePassword="s3cret")
    secrets: list[bool] = []

    def checks(run: ProgramRun) -> pulumi.Output[None]:
        node = run.namespace["lab"].nodes["cp-1"]
        user_data = node.cloud_init.user_data
        return pulumi.Output.all(pulumi.Output.is_secret(user_data), user_data).apply(
            lambda values: secrets.append(values[0] and "s3cret" in values[1])
        )

    run_program(config, secret_keys=["nestlab:consolePassword"], checks=checks)
    assert secrets == [True]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spec": ""}, "nestlab:spec is not set"),
        ({"spec": "stacks/no-such.lab.yaml"}, "cannot read the spec"),
        ({"imagee": "/x.qcow2"}, "nestlab:imagee is not a setting of this program"),
        ({"domainType": "xen"}, "nestlab:domainType is 'xen'"),
    ],
)
def test_bad_stack_config_fails_with_a_message_before_any_resource(
    overrides: dict[str, str], message: str, tmp_path: Path
) -> None:
    config = stack_config("dev", sshPublicKey=TEST_KEY, stateDir=str(tmp_path))
    config.update({f"nestlab:{k}": v for k, v in overrides.items()})
    config = {k: v for k, v in config.items() if v}
    run = prepare(config)
    with pytest.raises(pulumi.RunError, match=message) as caught:
        execute(run)
    assert "Traceback" not in str(caught.value)
    assert run.monitor.registrations == []  # refused before any resource was declared


def test_a_spec_that_fails_validation_is_refused_with_its_field_path(tmp_path: Path) -> None:
    spec = tmp_path / "bad.lab.yaml"
    spec.write_text(
        "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: bad}\nspec:\n  controlPlane: {count: 2}\n"
    )
    config = stack_config("dev", sshPublicKey=TEST_KEY, stateDir=str(tmp_path), spec=str(spec))
    run = prepare(config)
    with pytest.raises(pulumi.RunError, match=r"spec\.controlPlane\.count"):
        execute(run)
    assert run.monitor.registrations == []


def test_multi_stack_joins_each_hypervisor_bridge_to_the_others_after_its_network(tmp_path: Path) -> None:
    run = _run("multi", tmp_path)
    networks = {r.urn: r for r in run.monitor.of_type(NETWORK)}
    links = [r for r in run.monitor.of_type(COMMAND) if r.name.endswith("-link")]
    hosts = ["hv-1.lab.internal", "hv-2.lab.internal", "hv-3.lab.internal"]
    assert len(links) == 3
    for index, link in enumerate(sorted(links, key=lambda r: r.name)):
        (network_urn,) = [urn for urn in link.dependencies if urn in networks]
        assert networks[network_urn].name == f"lab-h{index}-mgmt-net"
        assert link.inputs["triggers"] == [f"lab-h{index}-mgmt-net-id"]  # re-join a re-created bridge
        remote = shlex.split(link.inputs["create"])
        assert remote[:4] == ["ssh", "-o", "BatchMode=yes", f"root@{hosts[index]}"]
        script = shlex.split(remote[4])[2]
        peers = [h for i, h in enumerate(hosts) if i != index]
        assert f"for peer in {' '.join(peers)}; do" in script
        assert "ip link set vx-multi master lv-multi" in script
        assert shlex.split(link.inputs["delete"])[-1] == "sh -c 'ip link del vx-multi 2>/dev/null || true\n'"
    assert all(n.inputs["mtu"] == 1450 for n in networks.values())


def test_a_single_hypervisor_lab_has_no_links_and_the_default_mtu(tmp_path: Path) -> None:
    run = _run("dev", tmp_path)
    assert [r.name for r in run.monitor.of_type(COMMAND)] == ["lab-provision"]
    assert all("mtu" not in n.inputs for n in run.monitor.of_type(NETWORK))
