"""nestlab-datastore's flags, and nestlab-controller's --datastore-url."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.controller.main import parse_args as controller_args
from nestlab.datastore.client import DatastoreConfig
from nestlab.datastore.main import parse_args, parse_ports
from nestlab.errors import UsageError


def test_port_range() -> None:
    assert parse_ports("10809-10811") == range(10809, 10812)
    assert parse_ports("10809") == range(10809, 10810)
    for bad in ("a-b", "10811-10809", "80-90", "10809-70000"):
        with pytest.raises(UsageError, match="--port-range"):
            parse_ports(bad)


def test_datastore_flags(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--export-address", "198.18.0.5", "--allow-client", "controller"])
    assert (args.port, args.allow_client, args.state_dir) == (
        9443,
        ["controller"],
        Path("/var/lib/nestlab/datastore"),
    )
    with pytest.raises(SystemExit):
        parse_args(["--export-address", "depot"])
    assert "is not an IP address" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--export-address", "198.18.0.5", "--tls-cert", "c.crt", "--tls-key", "c.key"])
    assert "go together (mutual TLS)" in capsys.readouterr().err


def test_controller_datastore_flag() -> None:
    base = ["--server", "https://127.0.0.1:6443", "--certificate-authority", "ca.crt"]
    certs = ["--client-certificate", "controller.crt", "--client-key", "controller.key"]
    options = controller_args([*base, *certs, "--datastore-url", "https://198.18.0.5:9443"])
    assert options.datastore == DatastoreConfig(
        "https://198.18.0.5:9443", Path("ca.crt"), Path("controller.crt"), Path("controller.key")
    )
    assert controller_args([*base, *certs]).datastore is None
    with pytest.raises(UsageError, match="https:// URL"):
        controller_args([*base, *certs, "--datastore-url", "http://198.18.0.5:9443"])
