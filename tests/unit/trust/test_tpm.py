"""TPM chokepoint: TCTI on every call, a flush after every command, errors that name the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime.proc import Result
from nestlab.trust.errors import SignatureError, TpmError
from nestlab.trust.tpm import Tpm, check_quote_signature, swtpm_tcti

from .fakes import FakeRunner

TCTI = swtpm_tcti("127.0.0.1", 2321)
PCRREAD = """  sha256:
    8 : 0x0000000000000000000000000000000000000000000000000000000000000000
    11: 0x9851312028952521510E8EAAB5BE94E7DC24B5FC292B2E9781173CF11FFA9878
"""


def test_tcti_names_the_swtpm_socket() -> None:
    assert TCTI == "swtpm:host=127.0.0.1,port=2321"


def test_every_command_gets_the_tcti_and_is_followed_by_a_flush() -> None:
    runner = FakeRunner()
    tpm = Tpm(TCTI, runner)
    tpm.pcr_extend(11, bytes.fromhex("ab" * 32))
    tpm.startup()
    assert runner.calls == [
        ("tpm2_pcrextend", "11:sha256=" + "ab" * 32, "-T", TCTI),
        ("tpm2_flushcontext", "-t", "-T", TCTI),
        ("tpm2_startup", "-c", "-T", TCTI),
        ("tpm2_flushcontext", "-t", "-T", TCTI),
    ]


def test_pcr_values_are_parsed_from_tpm2_output() -> None:
    def answer(argv: tuple[str, ...], cwd: Path | None) -> Result | None:
        return Result(argv, 0, PCRREAD, "") if argv[0] == "tpm2_pcrread" else None

    values = Tpm(TCTI, FakeRunner(answer)).pcr_read([8, 11])
    assert values == {
        8: bytes(32),
        11: bytes.fromhex("9851312028952521510e8eaab5be94e7dc24b5fc292b2e9781173cf11ffa9878"),
    }


def test_failed_command_reports_its_error_and_still_flushes() -> None:
    def answer(argv: tuple[str, ...], cwd: Path | None) -> Result | None:
        if argv[0] == "tpm2_pcrextend":
            return Result(
                argv, 1, "", "ERROR: Esys_PCR_Extend(0x184) - tpm:parameter(1):value is out of range"
            )
        return None

    runner = FakeRunner(answer)
    with pytest.raises(TpmError, match="out of range") as caught:
        Tpm(TCTI, runner).pcr_extend(24, bytes(32))
    assert TCTI in str(caught.value)
    assert runner.tools() == ["tpm2_pcrextend", "tpm2_flushcontext"]


def test_existing_persistent_ek_is_reused() -> None:
    def answer(argv: tuple[str, ...], cwd: Path | None) -> Result | None:
        if argv[0] == "tpm2_getcap":
            return Result(argv, 0, "- 0x81010001\n- 0x81010002\n", "")
        if argv[0] == "tpm2_readpublic":
            Path(argv[argv.index("-o") + 1]).write_bytes(b"public")
        return None

    runner = FakeRunner(answer)
    assert Tpm(TCTI, runner).ensure_ek() == b"public"
    assert "tpm2_createek" not in runner.tools()


def test_signature_check_failure_is_a_signature_error() -> None:
    def answer(argv: tuple[str, ...], cwd: Path | None) -> Result | None:
        assert cwd is not None
        assert (cwd / "quote.msg").read_bytes() == b"message"
        return Result(argv, 1, "", "ERROR: Verify signature failed!")

    with pytest.raises(SignatureError, match="Verify signature failed"):
        check_quote_signature(b"ak", b"message", b"sig", b"\x01", FakeRunner(answer))
