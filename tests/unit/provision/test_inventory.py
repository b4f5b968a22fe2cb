"""Inventory and ssh_config come from the plan: groups by role, addresses and placement per node."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from nestlab.paths import LabFiles
from nestlab.provision.inventory import inventory, ssh_config
from nestlab.spec import make_plan, parse_spec
from nestlab.spec.model import SubstrateType
from tests.unit.spec.helpers import spec_yaml


def test_groups_and_host_vars(tmp_path: Path) -> None:
    files = LabFiles(tmp_path)
    document = inventory(make_plan(parse_spec(spec_yaml())), files)
    children = document["all"]["children"]
    assert sorted(children["hosts"]["hosts"]) == ["esx-01", "esx-02", "esx-03"]
    assert sorted(children["control_plane"]["hosts"]) == ["cp-1", "cp-2", "cp-3"]
    assert sorted(children["load_balancers"]["hosts"]) == ["lb-1", "lb-2"]
    assert list(children["depot"]["hosts"]) == ["depot"]
    cp2 = children["control_plane"]["hosts"]["cp-2"]
    assert cp2 == {
        "ansible_host": "198.18.0.22",
        "nestlab_role": "control-plane",
        "nestlab_placed_on": "esx-02",
    }
    assert children["hosts"]["hosts"]["esx-03"]["nestlab_pod_subnet"] == "198.19.2.0/24"
    lab_vars = document["all"]["vars"]
    assert lab_vars["nestlab_vip"] == "198.18.0.5"
    assert lab_vars["ansible_ssh_private_key_file"] == str(files.ssh_key)
    assert f"UserKnownHostsFile={files.known_hosts}" in lab_vars["ansible_ssh_common_args"]
    assert len(lab_vars["nestlab_nodes"]) == 9
    # Service networking (issue 12): the ranges and the well-known addresses in them.
    assert lab_vars["nestlab_cluster_dns_ip"] == "198.18.32.10"
    assert lab_vars["nestlab_cluster_domain"] == "cluster.local"
    assert lab_vars["nestlab_services_cidr"] == "198.18.32.0/20"
    assert lab_vars["nestlab_ingress_cidr"] == "198.18.8.0/24"
    assert lab_vars["nestlab_kubernetes_service_ip"] == "198.18.32.1"


def test_host_tpm_is_the_swtpm_on_local_labs_and_the_vtpm_on_libvirt(tmp_path: Path) -> None:
    local = make_plan(parse_spec(spec_yaml()))
    assert local.lab.substrate.type is SubstrateType.LOCAL
    libvirt = replace(
        local, lab=replace(local.lab, substrate=replace(local.lab.substrate, type=SubstrateType.LIBVIRT))
    )
    tcti = {
        plan.lab.substrate.type: inventory(plan, LabFiles(tmp_path))["all"]["children"]["hosts"]["vars"][
            "esx_host_tpm_tcti"
        ]
        for plan in (local, libvirt)
    }
    assert tcti == {
        SubstrateType.LOCAL: "swtpm:host=127.0.0.1,port=2321",  # the node's nestlab-swtpm.service
        SubstrateType.LIBVIRT: "device:/dev/tpmrm0",  # the vTPM OVMF measured into
    }
    for plan in (local, libvirt):  # only hosts run the agent and measured boot
        children = inventory(plan, LabFiles(tmp_path))["all"]["children"]
        assert all("vars" not in children[group] for group in ("control_plane", "load_balancers", "depot"))


def test_ssh_config_names_every_node(tmp_path: Path) -> None:
    text = ssh_config(
        make_plan(parse_spec(spec_yaml({"hosts": {"count": 1}, "controlPlane": {"count": 1}}))),
        LabFiles(tmp_path),
    )
    assert text.count("Host ") == 5  # esx-01, depot, lb-1, lb-2, cp-1
    assert "Host cp-1\n  HostName 198.18.0.21\n  User root\n" in text
    assert f"IdentityFile {tmp_path}/ssh/id_ed25519" in text
