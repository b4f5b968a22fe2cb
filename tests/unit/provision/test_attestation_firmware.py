"""The registrar records each host's firmware (PCR 0-7 values at enrollment) into the lab policy."""

from __future__ import annotations

import pytest

from nestlab.provision.attestation import recorded_firmware
from nestlab.trust import pcrs
from nestlab.trust.errors import PolicyError
from nestlab.trust.policy import Policy

BASE = Policy("lab-demo", {}, frozenset(), frozenset(), frozenset())
OVMF = {str(index): f"{index + 1:02x}" * 32 for index in pcrs.FIRMWARE}


def test_a_libvirt_host_adds_its_firmware_values() -> None:
    policy = recorded_firmware(BASE, {"ekPublic": "00", "firmwarePcrs": OVMF})
    assert policy.firmware == ({int(index): value for index, value in OVMF.items()},)


def test_an_nspawn_host_or_an_old_enrollment_adds_nothing() -> None:
    zeros = {str(index): pcrs.ZERO.hex() for index in pcrs.FIRMWARE}
    assert recorded_firmware(BASE, {"firmwarePcrs": zeros}) == BASE
    assert recorded_firmware(BASE, {"ekPublic": "00"}) == BASE


def test_sets_from_earlier_runs_are_kept() -> None:
    earlier = recorded_firmware(BASE, {"firmwarePcrs": OVMF})
    other = {**OVMF, "0": "ff" * 32}
    policy = recorded_firmware(BASE, {"firmwarePcrs": other}, previous=earlier)
    assert [values[0] for values in policy.firmware] == [OVMF["0"], "ff" * 32]


def test_an_incomplete_enrollment_is_refused_naming_the_pcr() -> None:
    with pytest.raises(PolicyError, match="lacks firmware PCR 7"):
        recorded_firmware(BASE, {"firmwarePcrs": {str(index): "00" * 32 for index in range(7)}})
