"""The probes' summaries (pure) and a probe against an address where nothing listens."""

from __future__ import annotations

import socket
import time

from nestlab.api.client import Credentials
from nestlab.drills.probe import ReadProbe, Sample, acknowledged, availability


def test_availability_over_a_window() -> None:
    samples = [
        Sample(1.0, True, 200),
        Sample(2.0, False, 503, "ServiceUnavailable: unreachable"),
        Sample(3.0, False, 503),
        Sample(6.0, True, 200),
        Sample(20.0, False, 503),  # outside the window
    ]
    seen = availability(samples, 0.0, 7.0)
    assert seen.longest_gap_s == 5.0
    assert (seen.failed, seen.total) == (2, 4)


def test_acknowledged_writes_are_the_successful_ones_with_their_value() -> None:
    samples = [
        Sample(1.0, True, 201, name="write-0"),
        Sample(2.0, False, 503, "no quorum", name="write-1"),
        Sample(3.0, True, 201, name="write-2"),
    ]
    assert acknowledged(samples) == {"write-0": "0", "write-2": "2"}


def test_a_probe_where_nothing_listens_records_failures_as_503() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    probe = ReadProbe(Credentials(f"http://127.0.0.1:{port}"))
    probe.start()
    deadline = time.monotonic() + 30
    while len(probe.snapshot()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    samples = probe.stop()
    assert len(samples) >= 3
    assert not any(s.ok for s in samples)
    assert {s.code for s in samples} == {503}
    assert "unreachable" in samples[0].message
    assert not probe.is_alive()
