"""unbound's configuration (Python and the role's template render the same text) and its control calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from nestlab.dns.records import Change, Record
from nestlab.dns.unbound import Unbound, UnboundConfig, UnboundError, render_config, reverse_zones
from nestlab.runtime.proc import ProcessError, Result

ROLE = Path(__file__).resolve().parents[3] / "roles" / "control_plane"


def test_reverse_zones_cover_exactly_the_network() -> None:
    zones = reverse_zones("198.18.32.0/20")
    assert len(zones) == 16
    assert zones[0] == "32.18.198.in-addr.arpa."
    assert zones[-1] == "47.18.198.in-addr.arpa."
    assert reverse_zones("198.19.0.0/16") == ["19.198.in-addr.arpa."]
    assert reverse_zones("198.18.132.0/22") == [f"{n}.18.198.in-addr.arpa." for n in range(132, 136)]
    assert reverse_zones("fd00::/64")[0] == "0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."


def test_config_refuses_outside_names_and_makes_the_zones_static() -> None:
    text = render_config(
        UnboundConfig(
            listen=("198.18.0.11", "127.0.0.1", "127.0.0.1"),
            allow=("198.19.0.0/16",),
            reverse=("198.18.132.0/22",),
        )
    )
    lines = [line.strip() for line in text.splitlines()]
    assert lines.count("interface: 127.0.0.1") == 1
    assert 'local-zone: "." refuse' in lines
    assert 'local-zone: "cluster.local." static' in lines
    assert 'local-zone: "133.18.198.in-addr.arpa." static' in lines
    assert "access-control: 198.19.0.0/16 allow" in lines
    assert "control-interface: /run/unbound.ctl" in lines
    assert "control-use-cert: no" in lines
    assert "local-data: 'dns-version.cluster.local. 5 IN TXT \"1.1.0\"'" in lines


def _render_template(inventory: dict[str, Any]) -> str:
    defaults: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    # trim_blocks and the trailing newline as Ansible's template module renders
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)  # noqa: S701
    env.filters["comment"] = lambda text: f"# {text}"
    context = {
        k: v
        for k, v in defaults.items()
        if k.startswith("control_plane_dns_") and k != "control_plane_dns_domain"
    }
    context |= {
        "ansible_managed": "managed by Ansible",
        "control_plane_dns_domain": "cluster.local",
        **inventory,
    }
    return env.from_string((ROLE / "templates" / "unbound-nestlab.conf.j2").read_text()).render(context)


@pytest.mark.parametrize(
    ("services", "pods"), [("198.18.32.0/20", "198.19.0.0/16"), ("198.18.132.0/22", "198.18.64.0/18")]
)
def test_the_roles_template_renders_what_render_config_renders(services: str, pods: str) -> None:
    inventory = {
        "ansible_host": "198.18.0.11",
        "nestlab_services_cidr": services,
        "nestlab_pods_cidr": pods,
        "nestlab_management_cidr": "198.18.0.0/24",
    }
    rendered = _render_template(inventory)
    body = "".join(line for line in rendered.splitlines(keepends=True) if not line.startswith("#"))
    expected = render_config(
        UnboundConfig(
            listen=("198.18.0.11", "127.0.0.1"),
            allow=("127.0.0.0/8", pods, "198.18.0.0/24"),
            reverse=(services, pods),
        )
    )
    assert body == expected


class FakeRunner:
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
    ) -> Result:
        self.calls.append((list(argv), stdin))
        if self.fail:
            raise ProcessError("unbound-control exited 1: error: connect: No such file or directory")
        return Result(tuple(argv), 0, self.stdout, "")


def test_apply_removes_names_then_adds_records_in_two_bulk_calls() -> None:
    runner = FakeRunner()
    unbound = Unbound(Path("/etc/unbound/unbound.conf"), runner=runner)
    a = Record("web.a.svc.cluster.local.", "A", "198.18.32.5")
    unbound.apply(Change(frozenset({"old.a.svc.cluster.local."}), frozenset({a})))
    assert runner.calls == [
        (
            ["unbound-control", "-c", "/etc/unbound/unbound.conf", "local_datas_remove"],
            "old.a.svc.cluster.local.\n",
        ),
        (
            ["unbound-control", "-c", "/etc/unbound/unbound.conf", "local_datas"],
            "web.a.svc.cluster.local. 5 IN A 198.18.32.5\n",
        ),
    ]
    runner.calls.clear()
    unbound.apply(Change())
    assert runner.calls == []


def test_listing_parses_and_failures_say_what_to_check() -> None:
    listing = "\ncluster.local.\t5\tIN\tSOA\tns.dns.cluster.local. h.cluster.local. 1 7200 1800 86400 5\n\nweb.a.svc.cluster.local.\t5\tIN\tA\t198.18.32.5\n"
    assert Unbound(runner=FakeRunner(listing)).listing()[1] == Record(
        "web.a.svc.cluster.local.", "A", "198.18.32.5"
    )
    with pytest.raises(UnboundError, match="is unbound running"):
        Unbound(runner=FakeRunner(fail=True)).status()
