"""The pod description's names (hostname, resolv.conf, hosts): encoding pod-init reads, and refusals."""

from __future__ import annotations

import pytest

from nestlab.runtime import poddesc
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription, PodDescriptionError

WEB = Container(ContainerName("web"), DiskSerial("img-0"), ("httpd",))
RESOLV = "search demo.svc.cluster.local svc.cluster.local cluster.local\nnameserver 198.18.32.10\noptions ndots:5\n"
HOSTS = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n198.19.1.5\tweb-1\n"


def test_names_are_pod_level_lines_before_the_containers() -> None:
    desc = PodDescription(
        "web-1", (WEB,), hostname="db-0.db.demo.svc.cluster.local", resolv_conf=RESOLV, hosts=HOSTS
    )
    lines = poddesc.encode(desc).splitlines()
    assert lines[5:8] == [
        "hostname db-0.db.demo.svc.cluster.local",
        "resolv search%20demo.svc.cluster.local%20svc.cluster.local%20cluster.local%0Anameserver%20"
        "198.18.32.10%0Aoptions%20ndots:5%0A",
        "hosts %23%20Kubernetes-managed%20hosts%20file.%0A127.0.0.1%09localhost%0A198.19.1.5%09web-1%0A",
    ]
    assert lines[8] == "container web"
    # each file is one value: pod-init's decode gives back exactly the text
    assert poddesc.unquote(lines[6].split(" ", 1)[1]) == RESOLV
    assert poddesc.unquote(lines[7].split(" ", 1)[1]) == HOSTS


def test_without_names_the_description_is_unchanged() -> None:
    lines = poddesc.encode(PodDescription("web-1", (WEB,))).splitlines()
    assert not [line for line in lines if line.split(" ")[0] in ("hostname", "resolv", "hosts")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hostname": "Web"}, "hostname 'Web' must be DNS labels joined by dots"),
        ({"hostname": "a" * 65}, "at most 64 characters"),
        ({"hostname": "a..b"}, "hostname 'a..b'"),
        ({"resolv_conf": "nameserver 1.1.1.1\0"}, "resolv.conf must not contain NUL bytes"),
        ({"hosts": "\0"}, "hosts must not contain NUL bytes"),
    ],
)
def test_bad_names_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(PodDescriptionError, match=message):
        poddesc.encode(PodDescription("web-1", (WEB,), **fields))  # type: ignore[arg-type]
