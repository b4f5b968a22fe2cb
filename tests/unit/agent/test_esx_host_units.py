"""roles/esx_host's unit templates, rendered with the role's defaults: their ExecStart lines must be
command lines the agent and nestlab-trust accept, with the trust gate on and the interface's paths."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import jinja2
import yaml

from nestlab.agent import main as agent_main
from nestlab.agent import trustcli

ROLE = Path(__file__).resolve().parents[3] / "roles" / "esx_host"


def _render(template: str) -> str:
    defaults: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    # trim_blocks as Ansible's template module sets it
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True)  # noqa: S701 - unit files
    env.filters["comment"] = lambda text: f"# {text}"
    context = {
        key: value
        for key, value in defaults.items()
        if key not in {"esx_host_wheelhouse", "esx_host_api_server", "esx_host_pod_subnet"}
    }
    context |= {
        "ansible_managed": "managed by Ansible",
        "esx_host_api_server": "https://198.18.0.10:6443",
        "esx_host_pod_subnet": "198.18.64.0/24",
        "inventory_hostname": "esx-01",
        "ansible_host": "198.18.0.21",
        "groups": {"hosts": ["esx-01"]},
        "hostvars": {},
        "nestlab_cluster_dns_ip": "198.18.32.10",
        "nestlab_cluster_domain": "cluster.local",
    }
    return env.from_string((ROLE / "templates" / template).read_text()).render(context)


def _exec_start(unit: str) -> list[str]:
    lines = unit.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ExecStart="))
    command = []
    for line in lines[start:]:
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return shlex.split(" ".join(command).removeprefix("ExecStart="))


def test_the_agent_unit_turns_the_gate_on_with_the_packaged_kernel() -> None:
    unit = _render("nestlab-agent.service.j2")
    assert "Requires=nestlab-measured-boot.service" in unit
    assert "After=network-online.target nestlab-measured-boot.service" in unit
    argv = _exec_start(unit)
    assert argv[0] == "/opt/nestlab/bin/nestlab-agent"
    args = agent_main.parse_args(argv[1:])
    assert args.kernel is None
    assert args.kernel_image == Path("/usr/lib/nestlab/pod-kernel/vmlinux.efi")
    assert args.initrd == Path("/usr/lib/nestlab/pod-kernel/initramfs.cpio")
    assert args.kernel_cert == Path("/etc/nestlab/trust/db.crt")
    assert args.tpm == "swtpm:host=127.0.0.1,port=2321"
    assert args.measure_log == Path("/run/nestlab/measurements.json")
    assert args.attestation_dir == Path("/etc/nestlab/attestation")
    assert args.cluster_dns == ["198.18.32.10"]
    assert args.cluster_domain == "cluster.local"


def test_the_measured_boot_unit_measures_the_boot_components_before_the_agent() -> None:
    unit = _render("nestlab-measured-boot.service.j2")
    for line in (
        "Type=oneshot",
        "RemainAfterExit=yes",
        "After=nestlab-swtpm.service",
        "Before=nestlab-agent.service",
    ):
        assert line in unit.splitlines()
    argv = _exec_start(unit)
    assert argv[0] == "/opt/nestlab/bin/nestlab-trust"
    args = trustcli.parse_args(argv[1:])
    assert args.command == "measure-boot"
    assert args.package == [
        "nestlab-pod-kernel=/var/lib/nestlab/boot-components/nestlab-pod-kernel.deb",
        "nestlab=/var/lib/nestlab/boot-components/nestlab.whl",
    ]
    assert args.config == [Path("/etc/systemd/system/nestlab-agent.service")]
    assert args.log == Path("/run/nestlab/measurements.json")
