"""The demo images pushed to a REAL registry and pulled back into erofs disks by the image service; the
web and client images then run together in a REAL pod VM (TCG): the client fetches from the web server
with busybox's wget and with the client's curl (the outer machine's, with its libraries)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab.agent import images
from nestlab.agent.podspec import serial_of
from nestlab.agent.registry import parse_ref
from nestlab.images import demo, oci
from nestlab.runtime import pod, proc
from nestlab.runtime.accel import Accel
from nestlab.runtime.control import Exited
from nestlab.runtime.poddesc import Container, ContainerName, PodDescription
from tests.integration.agent.conftest import Registry, start_registry

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 180.0  # generous: two cores shared with every other job; never asserted on
NAMES = ("client:1", "job:fail", "job:ok", "web:1", "web:2")
# Bounded by `timeout`, never `wget -T` (it segfaults in Debian's busybox 1.35)
PROBE = (
    "for i in $(seq 60); do timeout 5 wget -q -O- http://127.0.0.1/host && break; sleep 1; done; "
    "timeout 5 wget -q -O- http://127.0.0.1/ | grep 'Served by pod'; "
    "echo version=$(timeout 5 wget -q -O- http://127.0.0.1/version); "
    "for i in $(seq 60); do timeout 5 wget -q -O- http://127.0.0.1:8080/ >/dev/null && break; sleep 1; done; "
    "echo static=$(timeout 5 wget -q -O- http://127.0.0.1:8080/ | grep -c -e '@POD@' -e 'Hello from'); "
    "nc -w 2 127.0.0.1 80 </dev/null && echo port 80 open; echo b a b | tr ' ' '\\n' | sort | uniq | wc -l | head -1; "
    "curl -sS --max-time 10 -o /dev/null -w 'curl %{http_code}\\n' http://127.0.0.1/host"
)


@dataclass(frozen=True)
class Published:
    """A registry holding the demo images, and what ``demo.publish`` answered (image -> digest)."""

    registry: Registry
    pushed: dict[str, str]


@pytest.fixture(scope="module")
def published() -> Iterator[Published]:
    """The demo images built and pushed ONCE for the module (a build takes tens of seconds under
    load); the tests only pull from the registry, so they share it."""
    directory = Path(tempfile.mkdtemp(prefix="nestlab-registry-"))
    registry = start_registry(directory)
    try:
        yield Published(registry, demo.publish(registry.address, cache=oci.BuildCache(directory / "cache")))
    finally:
        registry.process.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_publish_pushes_every_image_and_they_pull_into_disks(published: Published, tmp_path: Path) -> None:
    registry, pushed = published.registry, published.pushed
    assert sorted(pushed) == [f"{registry.address}/nestlab/{n}" for n in NAMES]
    assert pushed[f"{registry.address}/nestlab/web:2"] != pushed[f"{registry.address}/nestlab/web:1"]
    rebuilt = demo.publish(registry.address, cache=oci.BuildCache(tmp_path / "empty-cache"))
    assert rebuilt == pushed, "a rebuild gives the same digests"

    store = images.ImageStore(tmp_path / "store")
    web = store.pull(parse_ref("nestlab/web:1", registry.address))
    assert web.config.cmd == ("sh", "-c", demo.WEB)
    listing = proc.run(["dump.erofs", "--path=/usr/share/nestlab", "--ls", str(web.disk)], timeout=30).stdout
    assert "index.html" in listing
    for version in ("1", "2"):  # a rolling update from web:1 to web:2 shows in the answers
        pulled = store.pull(parse_ref(f"nestlab/web:{version}", registry.address))
        root = tmp_path / f"web-{version}"
        proc.run(["fsck.erofs", f"--extract={root}", str(pulled.disk)], timeout=60)
        assert (root / "www" / "version").read_text() == f"{version}\n"
        assert f'Version <b id="version">{version}</b>' in (root / "www" / "index.html").read_text()
        assert "@VERSION@" not in (root / "usr" / "share" / "nestlab" / "index.html").read_text()
    ok = store.pull(parse_ref("nestlab/job:ok", registry.address))
    fail = store.pull(parse_ref("nestlab/job:fail", registry.address))
    assert dict(ok.config.env)["EXIT_CODE"] == "0"
    assert dict(fail.config.env)["EXIT_CODE"] == "3"
    assert ok.digest != fail.digest
    client = store.pull(parse_ref("nestlab/client:1", registry.address))
    assert client.config.cmd == ("sh", "-c", demo.CLIENT)
    applets = proc.run(["dump.erofs", "--path=/bin", "--ls", str(client.disk)], timeout=30).stdout
    for applet in demo.CLIENT_APPLETS:
        assert f" {applet}\n" in applets or applets.endswith(f" {applet}"), applet
    curl = proc.run(["dump.erofs", "--path=/usr/bin", "--ls", str(client.disk)], timeout=30).stdout
    assert curl.rstrip().endswith(" curl")


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_the_client_images_curl_runs_on_the_images_own_files(published: Published, tmp_path: Path) -> None:
    """Unpacked from the pulled disk and run under chroot: the loader and every library curl needs
    come from the image, none from the outer machine (a missing one fails here)."""
    registry = published.registry
    client = images.ImageStore(tmp_path / "store").pull(parse_ref("nestlab/client:1", registry.address))
    root = tmp_path / "client-root"
    proc.run(["fsck.erofs", f"--extract={root}", str(client.disk)], timeout=60)
    assert not (root / "lib64" / "ld-linux-x86-64.so.2").is_symlink()
    version = proc.run(["chroot", str(root), "/usr/bin/curl", "--version"], timeout=30).stdout
    assert version.startswith("curl ")
    assert "https" in version.split("Protocols:")[1].split()
    said = proc.run(["chroot", str(root), "/bin/sh", "-c", "echo busybox $(hostname | wc -l)"], timeout=30)
    assert said.stdout == "busybox 1\n"  # the applets still work beside curl


def test_the_client_reaches_the_web_server_which_names_its_pod(
    published: Published, pod_boot: tuple[Path, Path], tmp_path: Path
) -> None:
    registry = published.registry
    store = images.ImageStore(tmp_path / "store")
    web = store.pull(parse_ref("nestlab/web:1", registry.address))
    client = store.pull(parse_ref("nestlab/client:1", registry.address))
    description = PodDescription(
        "replica-7",
        (
            Container(ContainerName("web"), serial_of(web), web.config.cmd),
            # the e2e workloads replace the image's command: /www still holds the page
            Container(ContainerName("plain"), serial_of(web), ("httpd", "-f", "-p", "8080", "-h", "/www")),
            Container(ContainerName("probe"), serial_of(client), ("sh", "-c", PROBE)),
            Container(ContainerName("idle"), serial_of(client), client.config.cmd),
        ),
        grace_s=5,
    )
    disks = {serial_of(web): web.disk, serial_of(client): client.disk}
    vm = pod.launch(description, disks, tmp_path / "vm", pod.BootFiles(*pod_boot), Accel("tcg", "test"))
    try:
        while not any(isinstance(e, Exited) and e.container == "probe" for e in vm.events):
            assert vm.next_event(BOOT_TIMEOUT_S) is not None, "the VM closed the control channel"
    finally:
        vm.stop()  # pod-init: SIGTERM to every container, the grace period, then SIGKILL
        print(vm.console_log.read_text(errors="replace")[-4000:])  # shown when the test fails
    console = vm.console_log.read_text(errors="replace")
    assert "[probe] replica-7" in console  # /host: the pod's hostname
    assert '[probe] <p>Served by pod <b id="pod">replica-7</b>.</p>' in console
    assert "[probe] version=1" in console  # /version: web:1 says 1
    assert "[probe] static=1" in console  # "Hello from", and no unfilled @POD@
    assert "[probe] port 80 open" in console  # nc
    assert "[probe] 2" in console  # tr, sort, uniq, wc, head
    assert "[probe] curl 200" in console  # curl and its libraries start inside the pod
    exits = {e.container: e.code for e in vm.events if isinstance(e, Exited)}
    assert exits["idle"] == 0, "the client's default command ends on SIGTERM (no kill after the grace)"
