"""pod-init's probe, killing and hook events as the host parses them."""

from __future__ import annotations

import pytest

from nestlab.runtime import control


def test_probe_killing_and_hook_events_parse() -> None:
    line = (
        '{"event":"probe","container":"web","probe":"readiness","ok":false,"state":false,'
        '"message":"HTTP probe failed with statuscode: 500"}'
    )
    assert control.parse_event(line) == control.ProbeResult(
        "web", "readiness", False, False, "HTTP probe failed with statuscode: 500"
    )
    ok = '{"event":"probe","container":"web","probe":"startup","ok":true,"state":true,"message":""}'
    assert control.parse_event(ok) == control.ProbeResult("web", "startup", True, True, "")
    killing = '{"event":"killing","container":"web","reason":"liveness","restart":true}'
    assert control.parse_event(killing) == control.Killing("web", "liveness", True)
    hook = '{"event":"hook","container":"web","hook":"preStop","ok":false,"message":"a \\"quoted\\"\\u000a"}'
    assert control.parse_event(hook) == control.HookFailed("web", "preStop", 'a "quoted"\n')
    assert control.parse_event('{"event":"deadline","pod":"batch"}') == control.DeadlineExceeded("batch")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            '{"event":"probe","container":"w","probe":"sideways","ok":true,"state":true}',
            "probe must be liveness",
        ),
        (
            '{"event":"probe","container":"w","probe":"liveness","ok":1,"state":true}',
            "'ok' must be true or false",
        ),
        ('{"event":"killing","container":"w","reason":"liveness"}', "'restart' must be true or false"),
        ('{"event":"hook","container":"w","hook":"postStart"}', "'message' must be a string"),
        ('{"event":"deadline"}', "'pod' must be a string"),
    ],
)
def test_malformed_lifecycle_events_are_protocol_errors(line: str, words: str) -> None:
    with pytest.raises(control.ControlProtocolError, match=words):
        control.parse_event(line)
