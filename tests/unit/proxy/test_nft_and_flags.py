"""The nft runner (stdin, prefix, errors, counts), the proxy's flags, and its systemd unit."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from nestlab.errors import UsageError
from nestlab.proxy import hostroute
from nestlab.proxy import main as proxy_main
from nestlab.proxy.nft import Counts, Nft, NftError, count
from nestlab.runtime import proc

ROLE = Path(__file__).resolve().parents[3] / "roles" / "esx_host"


class Recorder:
    def __init__(self, stdout: str = "", fail: bool = False) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.stdout = stdout
        self.fail = fail

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        check: bool = True,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = True,
    ) -> proc.Result:
        self.calls.append((list(argv), stdin))
        if self.fail:
            raise proc.ProcessError(
                "nft -f - exited 1: Error: Could not process rule: No such file or directory"
            )
        return proc.Result(tuple(argv), 0, self.stdout, "")


def test_apply_sends_one_transaction_on_stdin_behind_the_prefix() -> None:
    run = Recorder()
    Nft(run=run, prefix=["ip", "netns", "exec", "x"]).apply(
        ["add table ip nestlab", "flush chain ip nestlab c"]
    )
    assert run.calls == [
        (["ip", "netns", "exec", "x", "nft", "-f", "-"], "add table ip nestlab\nflush chain ip nestlab c\n")
    ]
    Nft(run=run).apply([])
    assert len(run.calls) == 1  # nothing to commit: nft is not run


def test_a_refused_transaction_says_what_nft_said() -> None:
    with pytest.raises(NftError, match=r"transaction of 1 commands refused: .*No such file"):
        Nft(run=Recorder(fail=True)).apply(["delete chain ip nestlab gone"])


def test_counts_from_the_json_listing() -> None:
    listing: list[dict[str, Any]] = [
        {"metainfo": {"json_schema_version": 1}},
        {"table": {"name": "nestlab"}},
        {
            "map": {
                "name": "service-ips",
                "elem": [[{"concat": ["1.2.3.4", "tcp", 80]}, {"goto": {"target": "s"}}]],
            }
        },
        {"set": {"name": "aff-x", "elem": [{"elem": {"val": "198.19.1.2", "timeout": 60}}]}},
        {"set": {"name": "aff-y"}},
        {"chain": {"name": "s"}},
        {"chain": {"name": "e"}},
        {"rule": {"chain": "s"}},
    ]
    assert count(listing) == Counts(chains=2, rules=1, sets=3, elements=2)
    run = Recorder(stdout=json.dumps({"nftables": listing}))
    assert Nft(run=run).counts() == Counts(chains=2, rules=1, sets=3, elements=2)
    assert run.calls[0][0] == ["nft", "-j", "list", "table", "ip", "nestlab"]


def test_bad_cidr_flags_are_usage_errors_naming_the_flag() -> None:
    args = proxy_main.parse_args(
        [
            "--api-server=https://v:6443",
            "--node-name=esx-01",
            "--pods-cidr=198.19.0.0/16",
            "--management-cidr=nope",
        ]
    )
    with pytest.raises(UsageError, match="--management-cidr='nope'"):
        proxy_main.host_network(args)


def _render(template: str) -> str:
    defaults: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True)  # noqa: S701 - unit files
    env.filters["comment"] = lambda text: f"# {text}"
    context = {k: v for k, v in defaults.items() if not isinstance(v, str) or "{{" not in v}
    context |= {
        "ansible_managed": "managed by Ansible",
        "esx_host_api_server": "https://198.18.0.10:6443",
        "esx_host_pod_subnet": "198.19.1.0/24",
        "esx_host_proxy_pods_cidr": "198.19.0.0/16",
        "esx_host_proxy_management_cidr": "198.18.0.0/24",
        "esx_host_proxy_services_cidr": "198.18.32.0/20",
        "inventory_hostname": "esx-01",
    }
    return env.from_string((ROLE / "templates" / template).read_text()).render(context)


def test_the_unit_runs_the_proxy_as_the_node_with_the_plans_networks() -> None:
    unit = _render("nestlab-proxy.service.j2")
    lines = unit.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ExecStart="))
    command = []
    for line in lines[start:]:
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    argv = shlex.split(" ".join(command).removeprefix("ExecStart="))
    assert argv[0] == "/opt/nestlab/bin/nestlab-proxy"
    args = proxy_main.parse_args(argv[1:])
    assert (args.cert, args.key) == (Path("/etc/nestlab/pki/agent.crt"), Path("/etc/nestlab/pki/agent.key"))
    assert args.node_name == "esx-01"
    assert args.network_policy is True
    assert args.services_cidr == "198.18.32.0/20"
    network = proxy_main.host_network(args)
    assert (network.pods_cidr, network.management_cidr, network.pod_subnet) == (
        "198.19.0.0/16",
        "198.18.0.0/24",
        "198.19.1.0/24",
    )
    assert "Restart=always" in lines


def test_every_proxy_default_is_documented() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    proxy_defaults = [name for name in defaults if name.startswith("esx_host_proxy_")]
    assert proxy_defaults
    assert [name for name in proxy_defaults if name not in specs] == []


def test_the_services_route_goes_to_a_port_less_bridge_idempotently() -> None:
    run = Recorder()
    hostroute.ensure("198.18.32.7/20", run=run)
    assert [argv for argv, _ in run.calls] == [
        ["ip", "link", "show", "dev", "nlsvc"],  # exists (the recorder answers 0): not created again
        ["ip", "link", "set", "nlsvc", "up"],
        ["ip", "route", "replace", "198.18.32.0/20", "dev", "nlsvc"],
    ]
    with pytest.raises(hostroute.RouteError, match=r"198\.18\.32\.0/20"):
        hostroute.ensure("198.18.32.0/20", run=Recorder(fail=True))
