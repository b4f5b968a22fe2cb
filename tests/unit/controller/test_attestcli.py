"""nestlab-attest's settings (flags over a config file) and its human report."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.controller import attestcli
from nestlab.controller.verifier import Outcome
from nestlab.errors import UsageError
from nestlab.trust.verdict import EventVerdict, HostName, Verdict


def config(tmp_path: Path, extra: str = "") -> Path:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    path = tmp_path / "verifier.conf"
    path.write_text(
        "# a comment\n\nserver = https://127.0.0.1:6443\n"
        f"token-file = {token}\nattestation-policy = /p.json\nattestation-ca = /ca.crt\n{extra}"
    )
    return path


def test_config_file_gives_everything_and_flags_override(tmp_path: Path) -> None:
    options = attestcli.parse_args(["--config", str(config(tmp_path)), "esx-02", "--json"], environ={})
    assert options.host == "esx-02"
    assert options.as_json
    assert options.credentials.server == "https://127.0.0.1:6443"
    assert options.credentials.token == "secret-token"  # noqa: S105
    assert options.settings.policy == Path("/p.json")
    overridden = attestcli.parse_args(
        ["--attestation-policy", "/other.json"], environ={attestcli.CONFIG_ENV: str(config(tmp_path))}
    )
    assert overridden.settings.policy == Path("/other.json")
    assert overridden.host is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "missing --server, --attestation-policy, --attestation-ca"),
        (["--server", "https://x", "--attestation-policy", "p", "--attestation-ca", "c"], "requires a user"),
        (
            [
                "--server",
                "https://x",
                "--attestation-policy",
                "p",
                "--attestation-ca",
                "c",
                "--client-certificate",
                "c.crt",
            ],
            "go together",
        ),
        (["--bogus"], "invalid command line"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        attestcli.parse_args(argv, environ={})


def test_bad_config_lines_are_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"verifier.conf:7: expected 'key = value'"):
        attestcli.parse_args(["--config", str(config(tmp_path, "polcy = /x\n"))], environ={})
    with pytest.raises(UsageError, match="cannot read the config file"):
        attestcli.parse_args(["--config", str(tmp_path / "absent.conf")], environ={})


def test_report_shows_verdict_pcrs_events_and_reasons() -> None:
    refused = EventVerdict(1, 11, "pod-kernel", "pod evil/miner kernel", "c" * 64, False, "unknown kernel")
    allowed = EventVerdict(0, 8, "package", "nestlab-agent 0.1.0", "a" * 64, True, None)
    good = Verdict(HostName("esx-01"), "T1", {8: "0" * 64}, (allowed,), "d" * 64, True, ())
    bad = Verdict(HostName("esx-02"), "T2", {}, (allowed, refused), "d" * 64, False, ("unknown kernel",))
    text = attestcli.report(
        [Outcome("esx-01", good, "verified", None), Outcome("esx-02", bad, "verified", "API down")]
    )
    assert text.startswith("esx-01: PASSED\n  time:           T1\n")
    assert f"  PCR  8:         {'0' * 64}\n" in text
    assert "esx-02: FAILED" in text
    assert "  events:         2 (1 refused)" in text
    assert "  reason:         unknown kernel" in text
    assert "  NOT RECORDED on the Node: API down" in text
    assert text.endswith("1 of 2 host(s) passed attestation\n")


def test_main_exits_2_on_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert attestcli.main(["--config", "/nonexistent/verifier.conf"]) == 2
    assert "nestlab-attest: cannot read the config file" in capsys.readouterr().err


def test_unreadable_tls_files_are_a_usage_error(tmp_path: Path) -> None:
    extra = f"certificate-authority = {tmp_path / 'absent-ca.crt'}\n"
    with pytest.raises(UsageError, match="cannot load the TLS files"):
        attestcli.parse_args(["--config", str(config(tmp_path, extra))], environ={})
