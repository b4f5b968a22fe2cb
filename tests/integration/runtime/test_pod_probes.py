"""Real pod microVMs exercising pod-init's probes, init containers, hooks and deadline (TCG).

Probe outcomes are made deterministic inside the guest rather than by timing: an exec probe counts
its own runs in a file of the container's writable layer and starts failing at a known attempt, and
a restarted container gets a fresh layer (so the count starts over). The test only reads events.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from nestlab.runtime import pod
from nestlab.runtime.control import DeadlineExceeded, Event, Exited, Killing, PodDone, ProbeResult, Started
from nestlab.runtime.poddesc import Action, Container, ContainerName, PodDescription, Probe
from tests.integration.runtime.conftest import IMAGE, LaunchPod

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 240.0  # generous: two cores shared with every other job; never asserted on


def counting(name: str, passes: int) -> Action:
    """An exec action that passes its first ``passes`` runs, then fails (counting in /tmp/NAME)."""
    script = f"n=$(cat /tmp/{name} 2>/dev/null || echo 0); echo $((n+1)) > /tmp/{name}; [ $n -lt {passes} ]"
    return Action("exec", ("sh", "-c", script))


WEB = (
    "trap 'cat /tmp/prestop; exit 0' TERM; "
    "mkdir -p /tmp/www; echo ok > /tmp/www/index.html; "
    "until [ -f /tmp/poststart ]; do sleep 0.1; done; echo saw poststart; "
    "busybox httpd -p 8080 -h /tmp/www; echo serving; sleep 600 & wait"
)


def wait_for_console(vm: pod.PodVm, line: str) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while line not in vm.console_log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{line!r} never appeared on the console"
        time.sleep(0.05)


def events_until(vm: pod.PodVm, done: Callable[[list[Event]], bool], seen: list[Event]) -> None:
    """Read events into ``seen`` until ``done(seen)`` holds."""
    while not done(seen):
        event = vm.next_event(BOOT_TIMEOUT_S)
        assert event is not None, f"the VM closed the control channel; events so far: {seen}"
        seen.append(event)


def test_init_then_probes_gate_restart_and_hooks(launch_pod: LaunchPod) -> None:
    web = Container(
        ContainerName("web"),
        IMAGE,
        ("sh", "-c", WEB),
        probes=(
            Probe("startup", Action("http", port=8080, path="/index.html"), period_s=1, failure_threshold=60),
            Probe("readiness", counting("ready", 2), period_s=1, failure_threshold=1),
            Probe("liveness", counting("live", 4), period_s=1, failure_threshold=1),
        ),
        post_start=Action("exec", ("sh", "-c", "echo hook > /tmp/poststart")),
        pre_stop=Action("exec", ("sh", "-c", "echo prestop-ran > /tmp/prestop")),
    )
    side = Container(
        ContainerName("side"),
        IMAGE,
        ("sleep", "600"),
        probes=(Probe("readiness", Action("tcp", port=9), period_s=1, failure_threshold=1),),
    )
    prep = Container(ContainerName("prep"), IMAGE, ("sh", "-c", "echo prepared"), init=True)
    description = PodDescription(
        "probed", (prep, web, side), restart_policy="Always", backoff_ms=50, grace_s=5
    )
    vm = launch_pod(description)
    seen: list[Event] = []
    events_until(
        vm, lambda s: any(isinstance(e, Started) and (e.container, e.restarts) == ("web", 1) for e in s), seen
    )

    def index(predicate: Callable[[Event], bool]) -> int:
        return next(i for i, e in enumerate(seen) if predicate(e))

    prep_done = index(lambda e: e == Exited("prep", 0, 0, 0))
    assert index(lambda e: isinstance(e, Started) and e.container == "prep") < prep_done
    assert prep_done < index(lambda e: isinstance(e, Started) and e.container in ("web", "side"))

    web_probes = [e for e in seen if isinstance(e, ProbeResult) and e.container == "web"]
    kinds = [(e.probe, e.ok, e.state) for e in web_probes]
    # startup fails until httpd answers, and gates the others; readiness turns true, then false
    started = kinds.index(("startup", True, True))
    assert {k for k, _, _ in kinds[:started]} == {"startup"}
    startup_failure = next(e for e in web_probes if not e.ok)
    # the kubelet's wording before httpd listened; on a loaded machine the first try can time out
    refused = r'Get "http://([0-9.]+):8080/index.html": dial tcp \1:8080: connect: connection refused'
    timed_out = r'Get "http://[0-9.]+:8080/index.html": context deadline exceeded \(.*\)'
    assert re.fullmatch(refused, startup_failure.message) or re.fullmatch(
        timed_out, startup_failure.message
    ), startup_failure.message
    assert kinds.index(("readiness", True, True)) < kinds.index(("readiness", False, False))
    assert ("liveness", False, False) in kinds
    killing = index(lambda e: isinstance(e, Killing))
    assert seen[killing] == Killing("web", "liveness", True)
    web_exit = index(lambda e: isinstance(e, Exited) and e.container == "web")
    assert killing < web_exit
    assert seen[web_exit] == Exited("web", 0, 0, 0)  # its TERM trap ran (after preStop)

    side_probe = next(e for e in seen if isinstance(e, ProbeResult) and e.container == "side")
    assert (side_probe.probe, side_probe.ok, side_probe.state) == ("readiness", False, False)
    assert side_probe.message.startswith("dial tcp ")
    assert side_probe.message.endswith((":9: connect: connection refused", ":9: i/o timeout")), (
        side_probe.message
    )

    console = vm.console_log.read_text(errors="replace")
    assert "[prep] prepared" in console
    assert "[web] saw poststart" in console
    assert "[web] prestop-ran" in console  # preStop ran before SIGTERM, inside the container


def test_failing_init_container_blocks_the_app_until_the_deadline(launch_pod: LaunchPod) -> None:
    description = PodDescription(
        "blocked",
        (
            Container(ContainerName("bad"), IMAGE, ("sh", "-c", "echo nope; exit 3"), init=True),
            Container(ContainerName("app"), IMAGE, ("sleep", "600")),
        ),
        restart_policy="OnFailure",
        backoff_ms=50,
        grace_s=2,
        deadline_s=8,
    )
    vm = launch_pod(description)
    done = vm.wait_done(BOOT_TIMEOUT_S)
    assert done == PodDone("blocked", "Failed", "DeadlineExceeded")
    exits = [(e.container, e.code, e.restarts) for e in vm.events if isinstance(e, Exited)]
    assert exits[:2] == [("bad", 3, 0), ("bad", 3, 1)]  # retried (OnFailure), each time failing
    assert not any(isinstance(e, Started) and e.container == "app" for e in vm.events)
    deadline = vm.events.index(DeadlineExceeded("blocked"))
    assert not any(isinstance(e, Started) for e in vm.events[deadline:])  # nothing starts after it


def test_the_deadline_is_announced_before_a_container_ignoring_sigterm_is_killed(
    launch_pod: LaunchPod,
) -> None:
    """The kubelet reports the pod Failed at the deadline, then kills its containers with the grace
    period: pod-init's deadline event comes first, the container's SIGKILL after the grace, and a
    terminal pod's container is not restarted (restartPolicy Always notwithstanding)."""
    description = PodDescription(
        "overdue",
        # sleep is its pid namespace's init: with no handler it ignores SIGTERM, as a learner's app may
        (Container(ContainerName("app"), IMAGE, ("sleep", "600")),),
        restart_policy="Always",
        backoff_ms=50,
        grace_s=10,
        deadline_s=3,
    )
    vm = launch_pod(description)
    done = vm.wait_done(BOOT_TIMEOUT_S)
    assert done == PodDone("overdue", "Failed", "DeadlineExceeded")
    events = vm.events

    def index(predicate: Callable[[Event], bool]) -> int:
        return next(i for i, e in enumerate(events) if predicate(e))

    started = index(lambda e: isinstance(e, Started) and e.container == "app")
    deadline = events.index(DeadlineExceeded("overdue"))
    killed = events.index(Exited("app", 137, 9, 0))  # SIGKILL: the grace period ran out
    assert started < deadline < killed < events.index(done)
    assert [e for e in events if isinstance(e, Exited)] == [Exited("app", 137, 9, 0)]
    assert [e for e in events if isinstance(e, Started)] == [events[started]]  # never restarted


def test_failing_init_container_with_never_fails_the_pod(launch_pod: LaunchPod) -> None:
    description = PodDescription(
        "initfail",
        (
            Container(ContainerName("bad"), IMAGE, ("sh", "-c", "exit 5"), init=True),
            Container(ContainerName("app"), IMAGE, ("true",)),
        ),
    )
    vm = launch_pod(description)
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("initfail", "Failed")
    assert [(e.container, e.code) for e in vm.events if isinstance(e, Exited)] == [("bad", 5)]
    assert not any(isinstance(e, Started) and e.container == "app" for e in vm.events)


def test_stop_runs_pre_stop_then_sigkills_a_container_that_ignores_sigterm(launch_pod: LaunchPod) -> None:
    stubborn = Container(
        ContainerName("stubborn"),
        IMAGE,
        ("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"),
        # the container's PID 1 writes to the console: the hook's line shows it ran, and when
        pre_stop=Action("exec", ("sh", "-c", "echo pre-stop-hook > /proc/1/fd/1")),
    )
    vm = launch_pod(PodDescription("stubborn", (stubborn,), grace_s=2))
    events_until(vm, lambda s: any(isinstance(e, Started) for e in s), [])
    wait_for_console(vm, "[stubborn] ready")
    vm.channel.send_stop()
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("stubborn", "Failed")
    assert [e for e in vm.events if isinstance(e, Exited)] == [Exited("stubborn", 137, 9, 0)]  # SIGKILL
    console = vm.console_log.read_text(errors="replace")
    assert console.index("[stubborn] pre-stop-hook") > console.index("stop requested by the host")
