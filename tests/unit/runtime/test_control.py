"""The control-channel protocol: pod-init's JSON event lines, parsed strictly."""

from __future__ import annotations

import pytest

from nestlab.runtime import control
from nestlab.runtime.control import ControlProtocolError, Exited, Failed, Init, LineSplitter, PodDone, Started


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ('{"event":"init","version":1}', Init(1)),
        ('{"event":"started","container":"web","pid":42,"restarts":0}', Started("web", 42, 0)),
        ('{"event":"exited","container":"web","code":137,"signal":9,"restarts":2}', Exited("web", 137, 9, 2)),
        ('{"event":"failed","container":"web","reason":"rootfs"}', Failed("web", "rootfs")),
        ('{"event":"pod","pod":"p","phase":"Succeeded"}', PodDone("p", "Succeeded")),
        (
            '{"event":"pod","pod":"p","phase":"Failed","reason":"description"}',
            PodDone("p", "Failed", "description"),
        ),
    ],
)
def test_parses_every_event_pod_init_sends(line: str, event: control.Event) -> None:
    assert control.parse_event(line) == event


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"event":"reboot"}', "unknown event type 'reboot'"),
        (
            '{"event":"exited","container":"web","code":"0","signal":0,"restarts":0}',
            "'code' must be an integer",
        ),
        ('{"event":"started","container":"web","pid":true,"restarts":0}', "'pid' must be an integer"),
        ('{"event":"started","pid":1,"restarts":0}', "'container' must be a string"),
        ('{"event":"pod","pod":"p","phase":"Running"}', "phase must be Succeeded or Failed"),
        ('{"event":"init","version":1,"pad":"' + "x" * 5000 + '"}', "exceeds 4096"),
    ],
)
def test_rejects_malformed_lines_saying_why(line: str, message: str) -> None:
    with pytest.raises(ControlProtocolError, match=message):
        control.parse_event(line)


def test_line_splitter_joins_chunks_and_keeps_the_tail() -> None:
    split = LineSplitter()
    assert split.feed(b'{"event":"init",') == []
    assert split.feed(b'"version":1}\n{"event"') == ['{"event":"init","version":1}']
    assert split.feed(b':"x"}\n\n') == ['{"event":"x"}']


def test_line_splitter_refuses_an_endless_line() -> None:
    with pytest.raises(ControlProtocolError, match="without a newline"):
        LineSplitter().feed(b"x" * (control.MAX_LINE + 1))
