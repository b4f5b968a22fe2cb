"""Recognising an orphaned node container and its veth from /proc and ip(8) output."""

from __future__ import annotations

import json
from pathlib import Path

from nestlab.substrate.local import orphans

ROOT_LINE = (
    "271 199 0:65 / / rw,relatime shared:61 - overlay overlay rw,lowerdir=/cache/node-x/rootfs,"
    "upperdir=/labs/a/nodes/cp-1/upper,workdir=/labs/a/nodes/cp-1/work,uuid=on\n"
    "304 271 0:76 / /tmp rw,nosuid,nodev shared:62 - tmpfs tmpfs rw,size=2468412k\n"
)


def test_root_upperdir_of_a_node_container() -> None:
    assert orphans.root_upperdir(ROOT_LINE) == Path("/labs/a/nodes/cp-1/upper")


def test_root_upperdir_of_an_ordinary_process() -> None:
    assert orphans.root_upperdir("22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n") is None


def test_veth_peer_is_found_on_the_outer_side() -> None:
    inside = json.dumps(
        [
            {"ifindex": 1, "ifname": "lo"},
            {"ifindex": 2, "ifname": "host0", "link_index": 74, "link_netnsid": 0},
        ]
    )
    outside = json.dumps([{"ifindex": 73, "ifname": "vb-a-72vj"}, {"ifindex": 74, "ifname": "vb-a-cp-1"}])
    assert orphans.peer_ifindexes(inside) == [74]
    assert orphans.host_ifname(outside, 74) == "vb-a-cp-1"
    assert orphans.host_ifname(outside, 99) is None
