"""The trust gate in front of every pod launch: verify the kernel's signature, then measure.

The node agent calls :func:`admit_pod_launch` right before it starts a pod microVM. A kernel that
is not signed by the lab's db certificate raises SignatureError before anything is extended, so it
is never booted and never appears in the log; a signed one is measured (kernel, initramfs, command
line into PCR 11) and the events are returned for the agent's own records.
"""

from __future__ import annotations

from pathlib import Path

from nestlab.runtime import proc
from nestlab.trust.eventlog import Event
from nestlab.trust.kernelsign import require_signed
from nestlab.trust.measure import Measurer, PodLaunch


def admit_pod_launch(
    db_cert: Path, launch: PodLaunch, measurer: Measurer, runner: proc.Runner = proc.run
) -> tuple[Event, Event, Event]:
    """SignatureError unless ``launch.kernel`` is signed by ``db_cert``; else its three measurements."""
    require_signed(db_cert, launch.kernel, runner)
    return measurer.measure_pod_launch(launch)
