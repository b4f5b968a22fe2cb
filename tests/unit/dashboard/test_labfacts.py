"""The lab watcher over fake sources: power states, pod kernels and the VIP holder; probes fail visibly."""

from __future__ import annotations

import asyncio

from nestlab.dashboard.labfacts import Endpoints, LabWatcher
from nestlab.dashboard.model import LabFacts, SubstrateNode

NODES = [
    SubstrateNode("esx-01", "host", "esx-01", "198.18.100.31", "running"),
    SubstrateNode("esx-02", "host", "esx-02", "198.18.100.32", "stopped"),
    SubstrateNode("lb-1", "load-balancer", "esx-01", "198.18.100.11", "running"),
]


def run_on(node: str, command: list[str]) -> tuple[int, str]:
    if command[0] == "dpkg-query":
        return 0, "6.1+nl1"
    if node == "lb-1":
        return 0, "2: host0    inet 127.0.0.1/8 scope global secondary host0"  # the "VIP" of this test
    return 255, ""


def test_watcher_gathers_power_kernels_vip_holder_and_probe_failures() -> None:
    async def scenario() -> LabFacts:
        # Port 9 on loopback: nothing listens, so the probe fails at once and says so.
        watcher = LabWatcher(
            "unit",
            Endpoints("https://127.0.0.1:9", None, (("cp-1", "https://127.0.0.1:9"),)),
            lambda: NODES,
            run_on,
        )
        watcher.start()
        try:
            for _ in range(500):
                facts = watcher.facts
                names = {p.name for p in facts.probes}
                if facts.kernels and {"VIP holder", "API via VIP", "cp-1 API server"} <= names:
                    return facts
                await watcher.signal.wait(watcher.signal.version, 0.05)
            raise AssertionError(f"facts never complete: {watcher.facts}")
        finally:
            await watcher.close()

    facts = asyncio.run(scenario())
    assert facts.nodes == tuple(NODES)
    assert facts.kernels == {"esx-01": "nestlab-pod-kernel 6.1+nl1"}  # the stopped host is not read
    probes = {p.name: p for p in facts.probes}
    assert (probes["VIP holder"].ok, probes["VIP holder"].detail) == (True, "lb-1")
    assert probes["API via VIP"].ok is False
    assert "unreachable" in probes["API via VIP"].detail
