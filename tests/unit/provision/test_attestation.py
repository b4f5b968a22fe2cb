"""Install-time attestation set-up: the lab policy (pure) and the SSH conversation with hosts (fake ssh)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nestlab.paths import LabFiles
from nestlab.provision import attestation
from nestlab.provision.attestation import KnownDigests, lab_policy
from nestlab.provision.remote import Remote, RemoteError
from nestlab.runtime.proc import Result
from nestlab.trust.policy import parse_policy
from tests.fakes import FakeRunner

A, B, C, D, E, F = (c * 64 for c in "abcdef")


def test_policy_lists_what_this_up_installed() -> None:
    policy = lab_policy("t1", KnownDigests(A, B, C, D), {"esx-01": E})
    assert policy.name == "lab-t1"
    assert policy.packages == {"nestlab": {A}, "nestlab-pod-kernel": {B}}
    assert (policy.kernels, policy.initramfs, policy.configs) == ({C}, {D}, {E})
    assert policy.forbidden_cmdline_args == ("init=", "rdinit=")


def test_policy_keeps_what_an_earlier_up_allowed() -> None:
    first = lab_policy("t1", KnownDigests(A, B, C, D), {"esx-01": E})
    second = lab_policy("t1", KnownDigests(F, B, F, D), {"esx-01": F}, first)
    assert second.packages["nestlab"] == {A, F}
    assert second.kernels == {C, F}
    assert second.configs == {E, F}
    assert second.digest() != first.digest()


def test_written_policy_parses_back_and_a_rewrite_is_a_no_op(tmp_path: Path) -> None:
    policy = lab_policy("t1", KnownDigests(A, B, C, D), {"esx-01": E})
    path = tmp_path / "policy.json"
    assert attestation.write_policy(path, policy)
    assert parse_policy(path.read_text()) == policy
    assert not attestation.write_policy(path, policy)


def test_a_corrupt_policy_file_says_how_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text("{not json")
    with pytest.raises(Exception, match=r"policy.json: .*delete it and run `nestlab up` again"):
        attestation.load_policy(path)


def _remote(tmp_path: Path, answers: dict[str, Result]) -> tuple[Remote, FakeRunner]:
    def answer(args: tuple[str, ...], _cwd: Path | None) -> Result | None:
        for needle, result in answers.items():
            if needle in args[-1]:
                return Result(args, result.returncode, result.stdout, result.stderr)
        return None

    runner = FakeRunner(answer)
    return Remote(LabFiles(tmp_path), runner), runner


def test_remote_commands_go_through_the_labs_ssh_config(tmp_path: Path) -> None:
    remote, runner = _remote(tmp_path, {"sha256sum": Result((), 0, f"{E}  /etc/x\n", "")})
    assert attestation.config_digests(remote, ["esx-01"]) == {"esx-01": E}
    assert runner.calls[0][:4] == ("ssh", "-F", str(tmp_path / "ssh" / "config"), "esx-01")


def test_unreachable_node_is_named(tmp_path: Path) -> None:
    remote, _ = _remote(tmp_path, {"enroll": Result((), 255, "", "Connection refused")})
    with pytest.raises(RemoteError, match=r"esx-01: .*unreachable over SSH \(exit 255\): Connection refused"):
        remote.run("esx-01", ["/opt/nestlab/bin/nestlab-trust", "enroll"])


def test_write_skips_a_file_already_in_place(tmp_path: Path) -> None:
    remote, runner = _remote(tmp_path, {"cat /etc/f": Result((), 0, "same\n", "")})
    assert not remote.write("cp-1", "/etc/f", "same\n")
    assert len(runner.calls) == 1
    assert remote.write("cp-1", "/etc/g", json.dumps({"x": 1}))
    assert "mv" in runner.calls[-1][-1]


def test_policy_keeps_the_firmware_values_recorded_at_an_earlier_registration() -> None:
    firmware = dict.fromkeys(range(8), F)
    first = attestation.recorded_firmware(
        lab_policy("t1", KnownDigests(A, B, C, D), {}), {"firmwarePcrs": {str(i): F for i in range(8)}}
    )
    assert first.firmware == (firmware,)
    second = lab_policy("t1", KnownDigests(A, B, C, D), {"esx-01": E}, first)
    assert second.firmware == (firmware,)
