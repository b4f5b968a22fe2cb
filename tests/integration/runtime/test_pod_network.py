"""A pod's eth0 on a tap device this test creates: pod-init configures it, busybox httpd answers.

The tap and its /30 live only for the test (deleted in the finalizer, also on failure); nothing is
routed: the host talks to the pod over the point-to-point link it made.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator

import pytest

from nestlab.runtime import proc
from nestlab.runtime.control import Started
from nestlab.runtime.poddesc import Container, ContainerName, PodDescription
from nestlab.runtime.qemu import Tap
from tests.integration.runtime.conftest import IMAGE, LaunchPod

pytestmark = [pytest.mark.integration, pytest.mark.root]

HOST_IP, POD_IP = "198.18.250.1", "198.18.250.2"  # lab range, on a link that exists only here
HTTP_TIMEOUT_S = 180.0  # generous for a loaded machine; never asserted on


@pytest.fixture
def tap() -> Iterator[Tap]:
    if os.geteuid() != 0:
        pytest.skip("creating a tap device needs root")
    name = f"nlt{os.getpid() % 100000}"
    proc.run(["ip", "tuntap", "add", "dev", name, "mode", "tap"], timeout=10)
    try:
        proc.run(["ip", "addr", "add", f"{HOST_IP}/30", "dev", name], timeout=10)
        proc.run(["ip", "link", "set", name, "up"], timeout=10)
        yield Tap(name, "52:54:00:4e:4c:02")
    finally:
        proc.run(["ip", "link", "del", name], timeout=10, check=False)


def test_pod_serves_http_on_its_configured_address(launch_pod: LaunchPod, tap: Tap) -> None:
    script = "mkdir -p /tmp/www && echo hello-from-pod > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www"
    # httpd is PID 1 of its namespace and has no TERM handler: a short grace ends the test sooner
    description = PodDescription(
        "web", (Container(ContainerName("httpd"), IMAGE, ("sh", "-c", script)),), grace_s=1
    )
    start = time.monotonic()
    vm = launch_pod(description, tap=tap, cmdline=(f"nestlab.ip={POD_IP}/30", f"nestlab.gw={HOST_IP}"))
    while not isinstance(vm.next_event(HTTP_TIMEOUT_S), Started):
        pass
    body = b""
    while time.monotonic() - start < HTTP_TIMEOUT_S:
        try:
            with urllib.request.urlopen(f"http://{POD_IP}:8080/", timeout=1) as answer:
                body = answer.read()
            break
        except OSError:
            time.sleep(0.1)
    print(f"launch to HTTP answer: {time.monotonic() - start:.2f}s")
    assert body == b"hello-from-pod\n"
    assert f"pod-init: eth0 {POD_IP}/30" in vm.console_log.read_text()
