"""nestlab-controller's attestation flags: both trust anchors or none, a positive interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.controller.main import parse_args
from nestlab.errors import UsageError

BASE = ["--server", "https://127.0.0.1:6443", "--client-certificate", "c.crt", "--client-key", "c.key"]


def test_attestation_is_off_by_default_and_on_with_both_flags() -> None:
    options = parse_args(BASE)
    assert options.attestation_policy is None
    assert options.attest_interval == 30.0
    on = parse_args(
        [*BASE, "--attestation-policy", "p.json", "--attestation-ca", "ca.crt", "--attest-interval", "5"]
    )
    assert on.attestation_policy == Path("p.json")
    assert on.attestation_ca == Path("ca.crt")
    assert on.attest_interval == 5.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attestation-policy", "p.json"], "go together"),
        (["--attestation-ca", "ca.crt"], "go together"),
        (
            ["--attestation-policy", "p", "--attestation-ca", "c", "--attest-interval", "0"],
            "must be positive",
        ),
    ],
)
def test_inconsistent_attestation_flags_are_refused(extra: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args([*BASE, *extra])
