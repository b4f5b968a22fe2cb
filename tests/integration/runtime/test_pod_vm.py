"""Real pod microVMs: the pod kernel, pod-init and QEMU microvm under TCG, a busybox container.

Each test boots a VM (a few seconds under TCG on an idle machine) and checks what a Spherelet
would see: prefixed container output on the console, start/exit events on the control channel,
restart policy, the host's stop request, and QEMU gone afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nestlab.runtime import qemu
from nestlab.runtime.accel import Accel
from nestlab.runtime.control import Exited, Failed, Init, PodDone, Started
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription
from tests.integration.runtime.conftest import IMAGE, LaunchPod

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 180.0  # generous: two cores shared with every other job; never asserted on


TRAPPING = "trap 'echo got TERM; exit 0' TERM; echo ready; sleep 600 & wait"


def wait_for_line(log: Path, line: str) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while line not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{line!r} never appeared in {log}"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_containers_run_report_and_power_off(launch_pod: LaunchPod) -> None:
    description = PodDescription(
        "demo",
        (
            Container(
                ContainerName("hello"),
                IMAGE,
                ("sh", "-c", "echo hello from $(hostname); echo to-stderr >&2; exit 7"),
            ),
            Container(
                ContainerName("who"),
                IMAGE,
                ("sh", "-c", 'echo "greeting=$GREETING dir=$(pwd) uid=$(id -u) gid=$(id -g) pid=$$"'),
                env=(("GREETING", "hi there"),),
                working_dir="/tmp",
                user=(1000, 1001),
            ),
            Container(
                ContainerName("clock"),
                IMAGE,
                ("cat", "/sys/devices/system/clocksource/clocksource0/current_clocksource"),
            ),
        ),
    )
    vm = launch_pod(description)
    done = vm.wait_done(BOOT_TIMEOUT_S)

    assert done == PodDone("demo", "Failed")  # one container exited non-zero
    assert isinstance(vm.events[0], Init)
    started = {e.container for e in vm.events if isinstance(e, Started)}
    assert started == {"hello", "who", "clock"}
    exits = {e.container: (e.code, e.signal, e.restarts) for e in vm.events if isinstance(e, Exited)}
    assert exits == {"hello": (7, 0, 0), "who": (0, 0, 0), "clock": (0, 0, 0)}

    assert vm.vm.process.poll() == 0  # the guest's reset ended QEMU (-no-reboot)
    assert gone(vm.vm.pid)
    console = vm.console_log.read_text(errors="replace")
    assert "[hello] hello from demo" in console
    assert "[hello] to-stderr" in console
    # pid=1: each container is the first process of its own pid namespace, as under the kubelet
    assert "[who] greeting=hi there dir=/tmp uid=1000 gid=1001 pid=1" in console
    # Given the host TSC rate, the guest keeps time with the TSC; without it, only jiffies.
    tsc_known = qemu.default_tsc_khz(Accel("tcg", "test")) is not None
    assert ("[clock] tsc" in console) == tsc_known


def test_on_failure_restarts_with_a_fresh_layer_until_stopped(launch_pod: LaunchPod) -> None:
    script = "echo attempt; ls /tmp; touch /tmp/left-behind; exit 3"
    description = PodDescription(
        "crashloop",
        (Container(ContainerName("crash"), IMAGE, ("sh", "-c", script)),),
        restart_policy="OnFailure",
        backoff_ms=50,
        grace_s=2,
    )
    vm = launch_pod(description)
    restarts_seen = []
    while len(restarts_seen) < 3:
        event = vm.next_event(BOOT_TIMEOUT_S)
        assert event is not None, "the VM closed the control channel"
        if isinstance(event, Exited):
            assert (event.container, event.code) == ("crash", 3)
            restarts_seen.append(event.restarts)
    assert restarts_seen == [0, 1, 2]

    vm.channel.send_stop()
    done = vm.wait_done(BOOT_TIMEOUT_S)
    assert done == PodDone("crashloop", "Failed")
    assert gone(vm.vm.pid)
    console = vm.console_log.read_text(errors="replace")
    assert console.count("[crash] attempt") >= 3
    assert "[crash] left-behind" not in console  # each restart got a fresh writable layer
    assert "stop requested by the host" in console


def test_never_policy_with_a_missing_command_fails_the_pod(launch_pod: LaunchPod) -> None:
    description = PodDescription("missing", (Container(ContainerName("nope"), IMAGE, ("no-such-program",)),))
    vm = launch_pod(description)
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("missing", "Failed")
    exited = [e for e in vm.events if isinstance(e, Exited)]
    assert [(e.container, e.code, e.restarts) for e in exited] == [("nope", 127, 0)]
    assert "[nope] pod-init: exec no-such-program: No such file or directory" in vm.console_log.read_text()


def test_stop_terminates_a_long_running_container_gracefully(launch_pod: LaunchPod) -> None:
    description = PodDescription(
        "sleeper",
        (Container(ContainerName("sleep"), IMAGE, ("sh", "-c", TRAPPING)),),
        grace_s=5,
    )
    vm = launch_pod(description)
    while not isinstance(vm.next_event(BOOT_TIMEOUT_S), Started):
        pass
    wait_for_line(vm.console_log, "[sleep] ready")  # the trap is set: TERM now runs the handler
    pid = vm.vm.pid
    assert vm.stop() == 0
    assert gone(pid)
    assert PodDone("sleeper", "Succeeded") in vm.events  # the container's TERM handler exited 0
    assert "[sleep] got TERM" in vm.console_log.read_text()


def test_vmm_stop_ends_qemu_when_the_guest_does_not_cooperate(launch_pod: LaunchPod) -> None:
    description = PodDescription("stubborn", (Container(ContainerName("sleep"), IMAGE, ("sleep", "600")),))
    vm = launch_pod(description)
    while not isinstance(vm.next_event(BOOT_TIMEOUT_S), Started):
        pass
    pid = vm.vm.pid
    vm.vm.stop(grace=1.0)  # QMP: system_powerdown (no ACPI: ignored), then quit
    assert gone(pid)
    assert os.path.exists(vm.console_log)


def test_an_image_disk_that_is_no_file_system_fails_the_container(
    launch_pod: LaunchPod, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(b"\xff" * 1024 * 1024)
    serial = DiskSerial("img-garbage")
    description = PodDescription("broken", (Container(ContainerName("app"), serial, ("true",)),))
    vm = launch_pod(description, images={serial: garbage})
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("broken", "Failed")
    assert Failed("app", "rootfs") in vm.events
    assert not any(isinstance(e, Started) for e in vm.events)
    assert "is neither erofs nor ext4" in vm.console_log.read_text()


def test_always_restarts_even_after_success_until_stopped(launch_pod: LaunchPod) -> None:
    description = PodDescription(
        "always",
        (Container(ContainerName("tick"), IMAGE, ("echo", "tick")),),
        restart_policy="Always",
        backoff_ms=50,
    )
    vm = launch_pod(description)
    exits = []
    while len(exits) < 2:
        event = vm.next_event(BOOT_TIMEOUT_S)
        assert event is not None, "the VM closed the control channel"
        if isinstance(event, Exited):
            exits.append((event.code, event.restarts))
    assert exits == [(0, 0), (0, 1)]
    vm.channel.send_stop()
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("always", "Succeeded")
    assert vm.console_log.read_text().count("[tick] tick") >= 2
