"""spec.controlPlane.podEvictionSeconds: 30 by default (the teaching lab), a whole number of seconds
in 1..3600, refused otherwise with the field path; the plan shows it."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.spec import SpecError, parse_spec
from nestlab.spec.plan import make_plan
from tests.unit.spec.helpers import spec_yaml


def test_default_is_the_teaching_labs_30_seconds() -> None:
    lab = parse_spec(spec_yaml({}))
    assert lab.control_plane.pod_eviction_seconds == 30
    assert make_plan(lab).to_dict()["controlPlane"] == {"podEvictionSeconds": 30}


@pytest.mark.parametrize("seconds", [1, 30, 300, 3600])
def test_good_values(seconds: int) -> None:
    lab = parse_spec(spec_yaml({"controlPlane": {"podEvictionSeconds": seconds}}))
    assert lab.control_plane.pod_eviction_seconds == seconds
    assert make_plan(lab).to_dict()["controlPlane"]["podEvictionSeconds"] == seconds


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "must be between 1 and 3600, got 0"),
        (-30, "must be between 1 and 3600, got -30"),
        (3601, "must be between 1 and 3600, got 3601"),
        ("30s", "must be an integer, got string '30s'"),
        (30.5, "must be an integer, got number 30.5"),
        (True, "must be an integer, got boolean True"),
        ([30], "must be an integer, got list"),
    ],
    ids=["zero", "negative", "above-an-hour", "with-unit", "fraction", "boolean", "list"],
)
def test_bad_values_name_the_field(value: Any, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_yaml({"controlPlane": {"podEvictionSeconds": value}}))
    messages = [str(i) for i in caught.value.issues]
    assert [i.path for i in caught.value.issues] == ["spec.controlPlane.podEvictionSeconds"], messages
    assert fragment in messages[0]


def test_misspelt_field_gets_did_you_mean() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_yaml({"controlPlane": {"podEvictionSecond": 30}}))
    assert "did you mean 'podEvictionSeconds'" in str(caught.value)
