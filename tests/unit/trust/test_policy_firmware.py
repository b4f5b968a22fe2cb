"""Policy: the firmware field (allowed PCR 0-7 value sets) and the check of a host's PCR 0-7 values."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nestlab.trust import pcrs
from nestlab.trust.errors import PolicyError
from nestlab.trust.policy import check_firmware, firmware_values, parse_policy, with_firmware

from .helpers import recorded_policy

OVMF = {index: f"{index:02x}" * 32 for index in pcrs.FIRMWARE}
ZEROS = dict.fromkeys(pcrs.FIRMWARE, pcrs.ZERO)


def as_bytes(values: dict[int, str]) -> dict[int, bytes]:
    return {index: bytes.fromhex(value) for index, value in values.items()}


def test_an_old_policy_without_the_field_expects_no_firmware_and_keeps_its_digest() -> None:
    old = recorded_policy().to_json()
    assert "firmware" not in old
    policy = parse_policy(json.dumps(old))
    assert policy.firmware == ()
    assert policy.digest() == recorded_policy().digest()
    assert check_firmware(policy, ZEROS) is None


def test_firmware_sets_round_trip_and_change_the_digest() -> None:
    policy = replace(recorded_policy(), firmware=(OVMF,))
    document = json.loads(json.dumps(policy.to_json()))
    assert document["firmware"] == [{str(index): value for index, value in OVMF.items()}]
    assert parse_policy(json.dumps(document)) == policy
    assert policy.digest() != recorded_policy().digest()


def test_listed_values_pass_and_other_values_name_the_first_differing_pcr() -> None:
    policy = replace(recorded_policy(), firmware=(OVMF,))
    assert check_firmware(policy, as_bytes(OVMF)) is None
    changed = as_bytes({**OVMF, 4: "ee" * 32, 7: "ee" * 32})
    reason = check_firmware(policy, changed)
    assert reason is not None
    assert reason.startswith("PCR 4 value eeeeeeeeeeeeeeee… is not among the firmware values of policy")


def test_a_policy_without_firmware_names_the_first_nonzero_pcr() -> None:
    reason = check_firmware(recorded_policy(), {**ZEROS, 2: b"\x01" * 32})
    assert reason is not None
    assert reason.startswith("PCR 2 is 0101010101010101… but policy lab-default expects no firmware")


def test_with_firmware_accumulates_sets_and_ignores_a_host_without_firmware() -> None:
    policy = recorded_policy()
    assert with_firmware(policy, firmware_values(ZEROS)) == policy  # an nspawn host: nothing to record
    once = with_firmware(policy, OVMF)
    assert once.firmware == (OVMF,)
    assert with_firmware(once, OVMF) == once
    other = {**OVMF, 0: "aa" * 32}
    assert with_firmware(once, other).firmware == (OVMF, other)
    with pytest.raises(PolicyError, match="firmware value of PCR 3 is not a sha256"):
        with_firmware(policy, {**OVMF, 3: "ZZ"})


@pytest.mark.parametrize(
    ("firmware", "message"),
    [
        ({}, "policy.firmware must be a list"),
        ([{"0": "00" * 32}], r"policy.firmware\[0\] must map each of PCRs 0-7"),
        ([{str(i): "00" * 32 for i in range(9)}], r"policy.firmware\[0\] must map each of PCRs 0-7"),
        ([{str(i): "XY" * 32 for i in range(8)}], r"policy.firmware\[0\] values must be sha256"),
    ],
)
def test_malformed_firmware_field_is_refused_naming_it(firmware: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(json.dumps({"name": "p", "firmware": firmware}))
