"""The resource pre-check compares the plan's totals with a given machine."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.spec import make_plan, parse_spec
from nestlab.spec.precheck import Capacity, Verdict, precheck
from tests.unit.spec.helpers import spec_yaml


def machine(cpus: int = 2, memory_gib: int = 24, disk_gib: int = 80) -> Capacity:
    return Capacity(cpus, memory_gib * 1024, disk_gib * 1024, "tcg", "test")


def verdicts(section: dict[str, Any], capacity: Capacity) -> dict[str, Verdict]:
    return {
        line.resource: line.verdict for line in precheck(make_plan(parse_spec(spec_yaml(section))), capacity)
    }


def test_teaching_lab_totals() -> None:
    lines = {line.resource: line for line in precheck(make_plan(parse_spec(spec_yaml())), machine())}
    assert lines["cpu"].wanted == 3 * 2 + 3 + 2 + 1
    assert lines["memory"].wanted == 3 * 4096 + 3 * 1024 + 2 * 256 + 512
    assert lines["disk"].wanted == 3 * 10240 + 3 * 4096 + 2 * 2048 + 8192
    assert lines["cpu"].verdict is Verdict.WARN  # 12 vCPU on 2 cores: shared, not refused
    assert lines["memory"].verdict is Verdict.OK


@pytest.mark.parametrize(
    ("section", "capacity", "expected"),
    [
        (
            {},
            machine(cpus=16, memory_gib=64, disk_gib=500),
            {"cpu": Verdict.OK, "memory": Verdict.OK, "disk": Verdict.OK},
        ),
        ({}, machine(memory_gib=17), {"memory": Verdict.WARN}),
        ({}, machine(memory_gib=8), {"memory": Verdict.FAIL}),
        ({}, machine(disk_gib=10), {"disk": Verdict.WARN}),
        ({"substrate": {"type": "libvirt"}}, machine(disk_gib=10), {"disk": Verdict.FAIL}),
        ({"substrate": {"type": "libvirt"}}, machine(memory_gib=17), {"memory": Verdict.FAIL}),
    ],
    ids=[
        "roomy",
        "tight memory local",
        "too little memory",
        "little disk local",
        "little disk libvirt",
        "tight memory libvirt",
    ],
)
def test_verdicts(section: dict[str, Any], capacity: Capacity, expected: dict[str, Verdict]) -> None:
    got = verdicts(section, capacity)
    assert {key: got[key] for key in expected} == expected
