"""The rows the dashboard's pages print: frozen dataclasses, no behaviour beyond a derived word.

:mod:`nestlab.dashboard.model` computes them; the templates read their fields by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SubstrateNode:
    """One node of the lab as the outer machine sees it (``nestlab status``)."""

    name: str
    role: str
    """host, control-plane, load-balancer or depot."""
    placed_on: str
    """The host whose failure domain holds it (a host is placed on itself)."""
    address: str
    state: str
    """running, stopped, orphaned or absent."""


@dataclass(frozen=True)
class Probe:
    """One health check of the control plane."""

    name: str
    """What was checked: ``API via VIP``, ``cp-1 API server``, ``VIP holder``."""
    ok: bool | None
    """None: not checked yet."""
    detail: str


@dataclass(frozen=True)
class LabFacts:
    """What the API does not hold; empty when the dashboard reads an API with no lab around it."""

    lab: str = ""
    vip: str = ""
    nodes: tuple[SubstrateNode, ...] = ()
    probes: tuple[Probe, ...] = ()
    kernels: Mapping[str, str] = field(default_factory=dict)
    """Host -> the pod kernel package it boots pods with (version), as read on the host."""


@dataclass(frozen=True)
class PodRow:
    """One pod microVM."""

    namespace: str
    name: str
    node: str
    phase: str
    ready: bool
    qemu_pid: int | None
    memory_mib: int
    kernel: str


@dataclass(frozen=True)
class Verdict:
    """A host's last attestation verdict."""

    host: str
    result: str
    """passed, FAILED or not attested yet."""
    time: str
    reasons: tuple[str, ...]
    condition: str
    """The Attested condition's status and reason (``True AttestationPassed``), or empty."""


@dataclass(frozen=True)
class HostRow:
    """One host and what runs on it."""

    name: str
    power: str
    """The substrate's state (running/stopped/...), or ``unknown`` without a lab around the API."""
    ready: str
    """The Node's Ready condition: Ready, NotReady, Unknown (not responding), or absent."""
    schedulable: bool
    address: str
    cpu: str
    memory: str
    heartbeat: str
    """The Node Lease's renewTime."""
    infra: tuple[SubstrateNode, ...]
    """Control-plane, load-balancer and depot nodes placed on it."""
    pods: tuple[PodRow, ...]
    verdict: Verdict

    @property
    def state(self) -> str:
        """One word for the inventory: stopped, stopping, not-responding, not-ready, maintenance or ok."""
        if self.power in ("stopped", "orphaned", "absent"):
            return "stopped"
        if self.power == "stopping":  # a substrate that reports a stop in progress
            return "stopping"
        if self.ready == "Unknown":
            return "not-responding"
        if self.ready != "Ready":
            return "not-ready"
        return "ok" if self.schedulable else "maintenance"


@dataclass(frozen=True)
class QuotaRow:
    """One resource of one ResourceQuota."""

    quota: str
    resource: str
    used: str
    hard: str
    percent: int | None


@dataclass(frozen=True)
class EventRow:
    """One Event."""

    type: str
    reason: str
    object: str
    message: str
    count: int
    last: str


@dataclass(frozen=True)
class NamespaceRow:
    """One namespace in the inventory."""

    name: str
    phase: str
    pods: int
    running: int
    quotas: tuple[QuotaRow, ...]


@dataclass(frozen=True)
class NamespaceView:
    """The namespace page."""

    summary: NamespaceRow
    pods: tuple[PodRow, ...]
    events: tuple[EventRow, ...]


@dataclass(frozen=True)
class Inventory:
    """The inventory page (and the control-plane page)."""

    lab: str
    hosts: tuple[HostRow, ...]
    unplaced: tuple[PodRow, ...]
    """Pods with no host yet (Pending)."""
    namespaces: tuple[NamespaceRow, ...]
    probes: tuple[Probe, ...]
    leaders: tuple[tuple[str, str], ...]
    """(lease, holder) of the control plane's leader-elected services."""
    unplaced_infra: tuple[SubstrateNode, ...] = ()
