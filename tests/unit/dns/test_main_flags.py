"""nestlab-dns's flags, and the role's unit: its ExecStart must be a command line nestlab-dns accepts."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from nestlab.dns.main import parse_args
from nestlab.errors import UsageError

ROLE = Path(__file__).resolve().parents[3] / "roles" / "control_plane"
CERTS = ["--client-certificate", "c.crt", "--client-key", "c.key"]


def test_flags_build_the_options() -> None:
    options = parse_args(
        ["--server", "https://127.0.0.1:6443", *CERTS, "--address", "198.18.0.11", "--identity", "cp-1"]
    )
    assert options.presence.address == "198.18.0.11"
    assert options.presence.identity == "cp-1"
    assert (options.presence.duration, options.presence.interval) == (6, 2.0)
    assert (options.feeder.domain, options.feeder.ttl) == ("cluster.local", 5)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--address", "cp-1"], "--address"),
        (["--address", "198.18.0.11", "--cluster-domain", "bad..zone"], "not a valid DNS name"),
        (["--address", "198.18.0.11", "--ttl", "-1"], "--ttl"),
        (["--address", "198.18.0.11", "--renew-interval", "6"], "--renew-interval"),
    ],
)
def test_bad_flags_say_what_to_change(extra: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(["--server", "https://127.0.0.1:6443", *CERTS, *extra])


def test_credentials_are_required() -> None:
    with pytest.raises(UsageError, match="requires a user"):
        parse_args(["--server", "https://127.0.0.1:6443", "--address", "198.18.0.11"])


def test_the_roles_unit_starts_nestlab_dns_with_flags_it_accepts() -> None:
    defaults: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True)  # noqa: S701 - unit file
    env.filters["comment"] = lambda text: f"# {text}"
    context = {k: v for k, v in defaults.items() if "{{" not in str(v)}
    context |= {"ansible_managed": "x", "inventory_hostname": "cp-1", "ansible_host": "198.18.0.11"}
    context["control_plane_dns_domain"] = "cluster.local"
    unit = env.from_string((ROLE / "templates" / "nestlab-dns.service.j2").read_text()).render(context)
    lines = unit.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ExecStart="))
    command = []
    for line in lines[start:]:
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    argv = shlex.split(" ".join(command).removeprefix("ExecStart="))
    assert argv[0] == "/opt/nestlab/bin/nestlab-dns"
    options = parse_args(argv[1:])
    assert options.presence == type(options.presence)("cp-1", "198.18.0.11", 6, 2.0)
    # its own identity (system:nestlab-dns, installed by tasks/dns.yml), not the controller's
    assert (options.credentials.cert, options.credentials.key) == (
        Path("/etc/nestlab/pki/dns.crt"),
        Path("/etc/nestlab/pki/dns.key"),
    )
    tasks = (ROLE / "tasks" / "dns.yml").read_text()
    assert 'src: "system:nestlab-dns.key", dest: dns.key, mode: "0600"' in tasks
    assert "PartOf=unbound.service" in lines
