"""What the dashboard shows that the API does not hold, gathered on the outer machine.

- each node's power state, as ``nestlab status`` reads it (the substrate's processes: no SSH), every
  second, so a stopped host shows within about a second, long before its Node turns Unknown;
- the control plane's health: ``/readyz`` through the VIP and on each control-plane node;
- which load balancer holds the VIP, and each host's pod kernel package version, over the lab's
  SSH, sparingly (the VIP holder every 10 s; a host's kernel once, again after the host restarts).

Each source is a plain callable passed in, so tests substitute fakes; the real ones are built by
:func:`for_lab`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nestlab.api import status
from nestlab.api.client import ApiClient, Credentials
from nestlab.dashboard.model import LabFacts, Probe, SubstrateNode
from nestlab.dashboard.store import Signal

log = logging.getLogger(__name__)

POWER_EVERY_S = 1.0  # the substrate's view is a few pid checks: cheap, and it makes host stops show fast
PROBE_EVERY_S = 2.0  # /readyz of the VIP and each API server
PROBE_TIMEOUT_S = 3.0  # a readyz slower than this is reported as failing
VIP_HOLDER_EVERY_S = 10.0  # one SSH per load balancer: sparingly on a 2-core machine
KERNEL_PACKAGE = "nestlab-pod-kernel"

Nodes = Callable[[], Sequence[SubstrateNode]]
"""The lab's nodes and their power states (blocking: run in a thread)."""
RunOn = Callable[[str, list[str]], tuple[int, str]]
"""Run a command on a node over SSH: (exit code, stdout) (blocking: run in a thread)."""


@dataclass(frozen=True)
class Endpoints:
    """Where the API servers answer."""

    vip: str
    """``https://<vip>:6443``."""
    ca: Path | None
    servers: tuple[tuple[str, str], ...] = ()
    """(control-plane node, ``https://<address>:6443``)."""


class LabWatcher:
    """Keeps :attr:`facts` current; :attr:`signal` bumps when they change."""

    def __init__(self, lab: str, endpoints: Endpoints, nodes: Nodes, run_on: RunOn | None) -> None:
        self.facts = LabFacts(lab=lab, vip=endpoints.vip)
        self.signal = Signal()
        self.endpoints = endpoints
        self._nodes, self._run_on = nodes, run_on
        self._tasks: list[asyncio.Task[None]] = []
        self._kernel_seen: dict[str, str] = {}

    def _set(self, facts: LabFacts) -> None:
        if facts != self.facts:
            before = {n.name: n.state for n in self.facts.nodes}
            for node in facts.nodes:
                if before and before.get(node.name) != node.state:
                    log.info("node %s: %s -> %s", node.name, before.get(node.name), node.state)
            self.facts = facts
            self.signal.bump()

    def start(self) -> None:
        """Start polling."""
        self._tasks = [asyncio.create_task(self._power()), asyncio.create_task(self._probes())]
        if self._run_on is not None:
            self._tasks.append(asyncio.create_task(self._over_ssh(self._run_on)))

    async def close(self) -> None:
        """Stop polling."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _power(self) -> None:
        while True:
            try:
                nodes = tuple(await asyncio.to_thread(self._nodes))
            except Exception as exc:  # shown, and retried next round
                nodes = self.facts.nodes
                self._set(
                    replace(self.facts, probes=_merge(self.facts.probes, Probe("lab state", False, str(exc))))
                )
            self._set(replace(self.facts, nodes=nodes))
            await asyncio.sleep(POWER_EVERY_S)

    async def _probes(self) -> None:
        targets = [("API via VIP", self.endpoints.vip)] + [
            (f"{name} API server", url) for name, url in self.endpoints.servers
        ]
        clients = {
            url: ApiClient(Credentials(url, self.endpoints.ca), timeout=PROBE_TIMEOUT_S) for _, url in targets
        }
        try:
            while True:
                results = await asyncio.gather(*(readyz(clients[url]) for _, url in targets))
                probes = self.facts.probes
                for (name, _), (ok, detail) in zip(targets, results, strict=True):
                    probes = _merge(probes, Probe(name, ok, detail))
                self._set(replace(self.facts, probes=probes))
                await asyncio.sleep(PROBE_EVERY_S)
        finally:
            for client in clients.values():
                await client.close()

    async def _over_ssh(self, run_on: RunOn) -> None:
        last_vip = 0.0
        while True:
            kernels = dict(self.facts.kernels)
            for node in (n for n in self.facts.nodes if n.role == "host"):
                if node.state != "running":
                    kernels.pop(node.name, None)  # read again when it is back (it may be updated)
                elif node.name not in kernels:
                    code, out = await asyncio.to_thread(
                        run_on, node.name, ["dpkg-query", "-W", "-f=${Version}", KERNEL_PACKAGE]
                    )
                    if code == 0 and out.strip():
                        kernels[node.name] = f"{KERNEL_PACKAGE} {out.strip()}"
            self._set(replace(self.facts, kernels=kernels))
            if self.facts.nodes and time.monotonic() - last_vip >= VIP_HOLDER_EVERY_S:
                last_vip = time.monotonic()
                vip = self.facts.vip.removeprefix("https://").rsplit(":", 1)[0]
                holders = []
                balancers = [
                    n for n in self.facts.nodes if n.role == "load-balancer" and n.state == "running"
                ]
                for node in balancers:
                    code, out = await asyncio.to_thread(run_on, node.name, ["ip", "-4", "-o", "addr", "show"])
                    if code == 0 and f" {vip}/" in out:
                        holders.append(node.name)
                probe = Probe(
                    "VIP holder", len(holders) == 1, ", ".join(holders) or "no load balancer holds it"
                )
                self._set(replace(self.facts, probes=_merge(self.facts.probes, probe)))
            await asyncio.sleep(POWER_EVERY_S)


def _merge(probes: tuple[Probe, ...], probe: Probe) -> tuple[Probe, ...]:
    """``probes`` with ``probe`` replacing the one of the same name (appended when new)."""
    names = [p.name for p in probes]
    if probe.name in names:
        return tuple(probe if p.name == probe.name else p for p in probes)
    return (*probes, probe)


async def readyz(client: ApiClient) -> tuple[bool, str]:
    """(ready, what it said) of one API server."""
    try:
        answer = await client.request("GET", "/readyz")
    except status.ApiError as exc:
        return False, exc.message[:200]
    return True, str(answer.get("raw", "ok"))[:200]
