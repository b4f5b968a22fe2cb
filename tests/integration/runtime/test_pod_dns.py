"""A real pod VM with the names the agent forms: pod-init writes resolv.conf and hosts into each container.

Booted with the cached pod kernel and a freshly built pod-init under TCG, as the other runtime tests;
the containers print what they find, and the console shows it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nestlab.agent import poddns
from nestlab.runtime import disks
from nestlab.runtime.control import PodDone
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription
from tests.integration.runtime.conftest import IMAGE, LaunchPod

pytestmark = pytest.mark.integration

BOOT_TIMEOUT_S = 180.0  # generous: two cores shared with every other job; never asserted on

SHOW = "cat /etc/resolv.conf /etc/hosts; echo hostname=$(hostname); ls -l /etc/resolv.conf"


def test_every_container_gets_the_pods_resolv_conf_and_hosts(launch_pod: LaunchPod) -> None:
    spec = poddns.spec_of(
        {
            "metadata": {"name": "web-1", "namespace": "demo"},
            "spec": {
                "hostname": "db-0",
                "subdomain": "db",
                "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local"]}],
            },
        }
    )
    names = poddns.pod_names(spec, poddns.ClusterDns(("198.18.32.10",)), None, "198.19.1.5")
    description = PodDescription(
        "web-1",
        (
            Container(ContainerName("show"), IMAGE, ("sh", "-c", SHOW)),
            Container(ContainerName("other"), IMAGE, ("sh", "-c", "cat /etc/resolv.conf"), user=(1000, 1000)),
        ),
        hostname=names.hostname,
        resolv_conf=names.resolv_conf,
        hosts=names.hosts,
    )
    vm = launch_pod(description)
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("web-1", "Succeeded")

    console = vm.console_log.read_text(errors="replace")
    shown = [line.removeprefix("[show] ") for line in console.splitlines() if line.startswith("[show] ")]
    expected = (names.resolv_conf + names.hosts).splitlines()
    assert shown[: len(expected)] == expected
    assert "search demo.svc.cluster.local svc.cluster.local cluster.local" in shown
    assert "198.19.1.5\tdb-0.db.demo.svc.cluster.local\tdb-0" in shown
    assert "10.1.2.3\tfoo.local" in shown
    assert "hostname=db-0" in shown
    assert shown[-1].startswith("-rw-r--r--")  # a regular file, 0644, as the kubelet's
    # a non-root container reads it too
    assert "[other] nameserver 198.18.32.10" in console


def test_without_names_the_images_files_stay(launch_pod: LaunchPod) -> None:
    description = PodDescription(
        "plain",
        (Container(ContainerName("show"), IMAGE, ("sh", "-c", "ls /etc; echo hostname=$(hostname)")),),
    )
    vm = launch_pod(description)
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("plain", "Succeeded")
    console = vm.console_log.read_text(errors="replace")
    assert "[show] hostname=plain" in console
    assert "[show] resolv.conf" not in console  # the busybox image has an empty /etc


def test_a_symlink_is_replaced_inside_the_root_and_a_missing_etc_is_created(
    launch_pod: LaunchPod, tmp_path: Path
) -> None:
    linked = disks.busybox_root(tmp_path / "linked", applets=("sh", "cat", "ls"))
    (linked / "etc" / "resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    bare = disks.busybox_root(tmp_path / "bare", applets=("sh", "cat", "ls"))
    shutil.rmtree(bare / "etc")
    images = {
        DiskSerial("img-linked"): disks.make_image(linked, tmp_path / "linked.erofs"),
        DiskSerial("img-bare"): disks.make_image(bare, tmp_path / "bare.erofs"),
    }
    show = ("sh", "-c", "ls -l /etc/resolv.conf; cat /etc/resolv.conf")
    description = PodDescription(
        "odd",
        (
            Container(ContainerName("linked"), DiskSerial("img-linked"), show),
            Container(ContainerName("bare"), DiskSerial("img-bare"), show),
        ),
        resolv_conf="nameserver 198.18.32.10\n",
        hosts="127.0.0.1\tlocalhost\n",
    )
    vm = launch_pod(description, images)
    assert vm.wait_done(BOOT_TIMEOUT_S) == PodDone("odd", "Succeeded")
    console = vm.console_log.read_text(errors="replace")
    for name in ("linked", "bare"):
        assert f"[{name}] nameserver 198.18.32.10" in console
        ls = next(
            line for line in console.splitlines() if line.startswith(f"[{name}] ") and "resolv.conf" in line
        )
        assert ls.split()[1].startswith("-rw-r--r--"), ls  # a regular file now, not the image's symlink
