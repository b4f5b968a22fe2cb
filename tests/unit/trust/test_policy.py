"""Policy: parsing, identity digest, and the judgement of each kind of event."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nestlab.trust.errors import PolicyError
from nestlab.trust.eventlog import Event, parse
from nestlab.trust.policy import check_event, parse_policy

from .helpers import FIXTURES, recorded_policy


def recorded_events() -> tuple[Event, ...]:
    return parse((FIXTURES / "events.json").read_text()).events


def test_recorded_events_are_allowed_by_their_policy() -> None:
    policy = recorded_policy()
    assert [check_event(policy, event) for event in recorded_events()] == [None] * 5


def test_policy_round_trips_and_its_digest_is_stable() -> None:
    policy = recorded_policy()
    again = parse_policy(json.dumps(policy.to_json()))
    assert again == policy
    assert again.digest() == policy.digest()
    assert replace(policy, kernels=frozenset()).digest() != policy.digest()


def test_unknown_kernel_is_refused_naming_the_pod() -> None:
    kernel = recorded_events()[2]
    reason = check_event(recorded_policy(), replace(kernel, data={**kernel.data, "sha256": "00" * 32}))
    assert (
        reason
        == "pod demo/web kernel: pod-kernel digest 0000000000000000… is not known to policy lab-default"
    )


def test_unknown_package_version_is_refused() -> None:
    package = recorded_events()[0]
    newer = replace(package, data={**package.data, "sha256": "11" * 32})
    assert "is not known to policy lab-default" in (check_event(recorded_policy(), newer) or "")
    renamed = replace(package, data={**package.data, "name": "evil-agent"})
    assert "is not known to policy lab-default" in (check_event(recorded_policy(), renamed) or "")
    bare = replace(package, data={"name": "nestlab-agent"})
    assert "no content digest in data.sha256" in (check_event(recorded_policy(), bare) or "")


def test_event_in_the_wrong_pcr_is_refused() -> None:
    kernel = replace(recorded_events()[2], pcr=9)
    assert check_event(recorded_policy(), kernel) == (
        "pod-kernel events belong in PCR 11, this one was extended into PCR 9"
    )


def test_unknown_event_type_is_refused() -> None:
    event = replace(recorded_events()[2], type="firmware")
    assert "unknown event type 'firmware'" in (check_event(recorded_policy(), event) or "")


def test_forbidden_cmdline_argument_is_refused() -> None:
    event = replace(recorded_events()[4], data={"pod": "demo/web", "cmdline": "console=hvc0 rdinit=/bin/sh"})
    assert "'rdinit=/bin/sh' is forbidden" in (check_event(recorded_policy(), event) or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "string 'name'"),
        ('{"name": "p", "kernel": []}', "unknown fields: kernel"),
        ('{"name": "p", "kernels": ["abc"]}', "policy.kernels must be a list of sha256"),
        ('{"name": "p", "packages": []}', "policy.packages must map"),
        ('{"name": "p", "packages": {"a": "ff"}}', "policy.packages.a must be a list"),
        ('{"name": "p", "forbidden_cmdline_args": [""]}', "forbidden_cmdline_args"),
    ],
)
def test_malformed_policy_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)
