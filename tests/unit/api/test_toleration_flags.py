"""nestlab-apiserver's DefaultTolerationSeconds flags: upstream's names and default, refused when negative."""

from __future__ import annotations

import pytest

from nestlab.api.main import parse_args
from nestlab.errors import UsageError

BASE = ["--etcd-servers", "http://127.0.0.1:2379"]


def test_default_is_upstreams_300_seconds() -> None:
    config = parse_args(BASE)
    assert config.default_not_ready_toleration_seconds == 300
    assert config.default_unreachable_toleration_seconds == 300


def test_flags_reach_the_config() -> None:
    config = parse_args(
        [*BASE, "--default-not-ready-toleration-seconds=30", "--default-unreachable-toleration-seconds", "45"]
    )
    assert (config.default_not_ready_toleration_seconds, config.default_unreachable_toleration_seconds) == (
        30,
        45,
    )


@pytest.mark.parametrize(
    "flag", ["--default-not-ready-toleration-seconds", "--default-unreachable-toleration-seconds"]
)
def test_negative_seconds_are_refused_naming_the_flag(flag: str) -> None:
    with pytest.raises(UsageError, match=f"{flag} must be 0 or more seconds, not -1"):
        parse_args([*BASE, f"{flag}=-1"])
